"""Every door (the CLI, median_image, createMedian.median, createMedian.createMedian) resolves
inputs, per-image values and parameters the same way."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from conftest import random_stack, same_bits, write_stack

from medstack import createMedian, median_image
from medstack.cli import main
from medstack.config import read_config, write_config
from medstack.errors import ParameterError
from medstack.params import validate

EXPTIMES = [100.0, 100.0, 200.0, 300.0]  # a, a again (as its exposure name), b, c


@pytest.fixture
def repeated(tmp_path):
    """[a_single_sci, a_flt (the same image), b, c] and four exposure times."""
    sci, wht = random_stack(np.random.default_rng(8), 3, 20, 18)
    names = write_stack(tmp_path / "in", sci, wht, exptime=[100.0, 200.0, 300.0])
    inputs = [names[0], names[0].replace("_single_sci", "_flt"), names[1], names[2]]
    return tmp_path, inputs, names


def _through_every_door(tmp_path, inputs, exptimes=EXPTIMES, **params):
    """The median (data, header) each door makes of ``inputs`` with ``exptimes``."""
    EXPTIMES = exptimes  # noqa: N806
    out = {}
    result = median_image(inputs, tmp_path / "api", exptime=EXPTIMES, **params)
    out["median_image"] = result.path
    out["createMedian.median"] = createMedian.median(
        inputs, output=str(tmp_path / "task"), exptime=EXPTIMES, **params).path
    out["createMedian.createMedian"] = createMedian.createMedian(
        inputs, {"output": str(tmp_path / "step"), "exptime": EXPTIMES, **params}).path
    table = tmp_path / "stack.csv"
    table.write_text("sci,exptime\n" + "".join(f"{n},{t}\n" for n, t in zip(inputs, EXPTIMES)))
    argv = ["--table", str(table), "-o", str(tmp_path / "cli"), "-q"]
    for name, value in params.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    assert main(argv) == 0
    out["cli"] = tmp_path / "cli_med.fits"
    return {door: (fits.getdata(path), fits.getheader(path)) for door, path in out.items()}


def test_a_repeated_input_and_its_value_are_dropped_by_every_door(repeated):
    tmp_path, inputs, names = repeated
    made = _through_every_door(tmp_path, inputs, combine_type="minmed")
    expected = median_image(names, exptime=[100.0, 200.0, 300.0], combine_type="minmed")
    for door, (data, header) in made.items():
        assert header["NCOMBINE"] == 3, door
        assert same_bits(data, expected.data), door


def test_every_door_refuses_the_same_per_image_values(repeated, capsys):
    tmp_path, inputs, _ = repeated
    bad = [100.0, 100.0, 0.0, 300.0]
    message = "exptime: exposure times must be > 0, got 0"
    with pytest.raises(ParameterError, match=message):
        median_image(inputs, exptime=bad, combine_type="minmed")
    with pytest.raises(ParameterError, match=message):
        createMedian.median(inputs, exptime=bad, combine_type="minmed")
    with pytest.raises(ParameterError, match=message):
        createMedian.createMedian(inputs, {"exptime": bad, "combine_type": "iminmed"})
    table = tmp_path / "bad.csv"
    table.write_text("sci,exptime\n" + "".join(f"{n},{t}\n" for n, t in zip(inputs, bad)))
    assert main(["--table", str(table), "--combine-type", "minmed", "-q"]) == 2
    assert message.split(", got")[0] in capsys.readouterr().err
    assert not list(tmp_path.glob("**/*_med.fits"))


def test_every_door_runs_a_median_whatever_the_exposure_times(repeated):
    """Only minmed uses the per-image values: a median is not refused for exposure times,
    read noise or sky that minmed could not use (drizzlepac runs it)."""
    tmp_path, inputs, names = repeated
    made = _through_every_door(tmp_path, inputs, exptimes=[0.0, 0.0, -1.0, -5.0],
                               combine_type="median")
    expected = median_image(names, combine_type="median", readnoise=[-1.0, 0.0, float("inf")])
    for door, (data, _) in made.items():
        assert same_bits(data, expected.data), door


def test_parameters_keep_every_digit_through_every_door(repeated, tmp_path):
    _, inputs, _ = repeated
    made = _through_every_door(tmp_path, inputs, combine_type="minmed",
                               combine_nsigma="4.1234567 2.5")
    for door, (_, header) in made.items():
        assert header["MEDNSIG"] == "4.1234567 2.5", door
    params = validate(combine_nsigma="4.1234567 2.5")
    assert params.combine_nsigma == (4.1234567, 2.5)
    written = write_config(tmp_path / "p.cfg", params, input=inputs[0])
    assert read_config(written).params.combine_nsigma == (4.1234567, 2.5)
