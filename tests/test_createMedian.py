"""The drizzlepac-compatible module: median(), createMedian(), getHelpAsString(), help()."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits
from conftest import SHARED_DATA, random_stack, same_bits, write_stack
from test_config import astrodrizzle_cfg

from medstack import __version__, createMedian, median_image
from medstack.config import read_config, write_config
from medstack.errors import InputError, ParameterError
from medstack.io.inputs import open_inputs
from medstack.params import PARAMETERS, format_value, validate


@pytest.fixture()
def stack(tmp_path):
    sci, wht = random_stack(np.random.default_rng(11), 4, 26, 19)
    return write_stack(tmp_path, sci, wht)


@pytest.fixture()
def flt_dir(tmp_path, monkeypatch):
    """A directory as AstroDrizzle leaves it: exposures, their singles and other products."""
    sci, wht = random_stack(np.random.default_rng(5), 3, 22, 17)
    singles = write_stack(tmp_path, sci, wht, prefix="j8bt06n")
    for name in singles:
        root = name.replace("_single_sci.fits", "")
        fits.PrimaryHDU().writeto(f"{root}_flt.fits")
        fits.PrimaryHDU().writeto(f"{root}_sci1_blt.fits")
    fits.PrimaryHDU().writeto(tmp_path / "final_drz.fits")
    monkeypatch.chdir(tmp_path)
    return singles


def _shared_cases() -> list[dict]:
    path = SHARED_DATA / "cases.json"
    return json.loads(path.read_text())["cases"] if path.exists() else []


def _cfg_value(value) -> str:
    if isinstance(value, str):
        return value  # unquoted, as configobj and drizzlepac write them
    return "None" if value is None else str(value)


# ------------------------------------------------------------------------------------------
# parity through a whole AstroDrizzle .cfg

_CASE_KEYS = {"combine_type": "combine_type", "nsigma": "combine_nsigma", "grow": "combine_grow",
              "maskpt": "combine_maskpt", "nlow": "combine_nlow", "nhigh": "combine_nhigh",
              "lthresh": "combine_lthresh", "hthresh": "combine_hthresh",
              "newmasks": "median_newmasks", "bufsize": "combine_bufsize"}


@pytest.mark.parametrize("case", _shared_cases(), ids=lambda c: c["name"])
def test_astrodrizzle_cfg_reproduces_drizzlepac(hrc_data, case, tmp_path):
    step4 = {_CASE_KEYS[k]: _cfg_value(v) for k, v in case.items() if k in _CASE_KEYS}
    cfg = tmp_path / "astrodrizzle.cfg"
    cfg.write_text(astrodrizzle_cfg(step4, output=str(tmp_path / "visit")))
    result = createMedian.median(hrc_data["sci"], configObj=str(cfg))
    assert result.path == tmp_path / "visit_med.fits"
    with fits.open(result.path) as hdul:
        assert len(hdul) == 1
        assert same_bits(hdul[0].data, fits.getdata(SHARED_DATA / case["expected"]))


def test_seed_example_in_an_astrodrizzle_directory(flt_dir, caplog):
    caplog.set_level(logging.INFO, logger="medstack")
    result = createMedian.median("*flt.fits")
    assert result.path.name == "j8bt06n000_med.fits"  # the first input's rootname
    assert same_bits(fits.getdata(result.path), median_image(flt_dir).data)
    assert "USER INPUT PARAMETERS for Create Median Step" in caplog.text
    assert result.plan.n_images == 3 and result.data is None  # image not kept in memory


def test_flt_names_map_to_singles_and_missing_single_is_named(flt_dir, tmp_path):
    flts = sorted(str(p) for p in tmp_path.glob("*_flt.fits"))
    result = createMedian.median(flts, output="visit")
    assert result.path.name == "visit_med.fits"
    assert [img.sci for img in result.plan.images] == flt_dir
    os.remove(flt_dir[1])
    os.remove(tmp_path / "visit_med.fits")
    with pytest.raises(InputError) as err:
        createMedian.median(flts, output="visit")
    assert str(err.value).startswith(f"{flts[1]}: its singly drizzled image {flt_dir[1]} does "
                                     "not exist")
    assert not (tmp_path / "visit_med.fits").exists()


def test_list_file_and_output_forms(flt_dir, tmp_path):
    (tmp_path / "in.lst").write_text("\n".join(os.path.basename(s) for s in flt_dir) + "\n")
    result = createMedian.median("@in.lst", output="final_drz.fits")
    assert result.path.name == "final_med.fits"  # AstroDrizzle's naming


# ------------------------------------------------------------------------------------------
# configObj and inputDict


def test_inputdict_beats_cfg_beats_defaults(stack, tmp_path):
    cfg = tmp_path / "task.cfg"
    cfg.write_text(textwrap.dedent("""\
        _task_name_ = createMedian
        input = ""
        [STEP 4: CREATE MEDIAN IMAGE]
        combine_type = median
        combine_nhigh = 1
        combine_maskpt = 0.5
        """))
    out = str(tmp_path / "o")
    createMedian.median(stack, configObj=str(cfg), output=out, combine_type="mean")
    expected = median_image(stack, combine_type="mean", combine_nhigh=1, combine_maskpt=0.5)
    assert same_bits(fits.getdata(out + "_med.fits"), expected.data)
    createMedian.median(stack, configObj=read_config(cfg).values, output=out)
    expected = median_image(stack, combine_type="median", combine_nhigh=1, combine_maskpt=0.5)
    assert same_bits(fits.getdata(out + "_med.fits"), expected.data)


def test_per_image_lists_override_headers(stack, tmp_path):
    n = len(stack)
    lists = {"exptime": [40.0] * n, "sky": [5e4 * (i + 1) for i in range(n)],
             "readnoise": [9.0] * n}
    result = createMedian.median(stack, output=str(tmp_path / "p"), **lists)
    got = fits.getdata(result.path)
    assert same_bits(got, median_image(stack, **lists).data)
    assert not same_bits(got, median_image(stack).data)
    with pytest.raises(ParameterError, match="sky: 2 values given for 4 input images"):
        createMedian.median(stack, output=str(tmp_path / "q"), sky=[1.0, 2.0])
    assert not (tmp_path / "q_med.fits").exists()


def test_median_false_skips_the_step(stack, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="medstack")
    assert createMedian.median(stack, output=str(tmp_path / "s"), median=False) is None
    assert "Median combination step not performed." in caplog.text
    assert not list(tmp_path.glob("*_med.fits"))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("combine_type", "average2", "combine_type: unknown value 'average2'; choose one of: minmed, "
                                 "iminmed, median, imedian, mean, imean, average, iaverage, sum"),
    ("combine_nsigma", "4 x", "combine_nsigma: expected one or two non-negative numbers"),
    ("combine_nsigma", "", "combine_nsigma: expected one or two non-negative numbers"),
    ("combine_maskpt", "high", "combine_maskpt: expected a number"),
    ("combine_nlow", -1, "combine_nlow: must be >= 0"),
    ("combine_nhigh", 0.5, "combine_nhigh: expected an integer"),
    ("combine_lthresh", "nan", "combine_lthresh: expected a finite number"),
    ("combine_hthresh", [1], "combine_hthresh: expected a number or None"),
    ("combine_grow", "one", "combine_grow: expected an integer"),
    ("combine_bufsize", -2, "combine_bufsize: must be > 0"),
    ("median", "perhaps", "median: expected True or False"),
    ("median_newmasks", 3, "median_newmasks: expected True or False"),
    ("fillval", None, "fillval: expected a number"),
    ("exptime", [1, 2, -3, 4], "exptime: exposure times must be > 0"),
    ("readnoise", "x", "readnoise: expected numbers"),
    ("num_cores", 1.5, "num_cores: expected an integer or None"),
    ("proc_unit", "counts", "proc_unit: unknown value 'counts'; choose one of: native, "
                            "electrons"),
])
def test_every_invalid_value_is_named_and_nothing_is_written(stack, tmp_path, key, value,
                                                              message):
    with pytest.raises(ParameterError) as err:
        createMedian.median(stack, output=str(tmp_path / "bad"), **{key: value})
    assert str(err.value).startswith(f"inputDict: {message}")
    cfg = tmp_path / "bad.cfg"
    if key in {p.name for p in PARAMETERS} and value is not None:
        cfg.write_text(astrodrizzle_cfg({key: str(value)}))
        with pytest.raises(ParameterError, match=f"^{re.escape(str(cfg))}: {key}: "):
            createMedian.createMedian(stack, str(cfg))
    assert not list(tmp_path.glob("*_med.fits"))


def test_unknown_key_lists_the_valid_names(stack, tmp_path):
    with pytest.raises(ParameterError) as err:
        createMedian.median(stack, output=str(tmp_path / "u"), combine_sigma="4 3")
    message = str(err.value)
    assert message.startswith("inputDict: unknown parameter 'combine_sigma'; valid names: ")
    for name in [p.name for p in PARAMETERS] + ["input", "output", "exptime", "readnoise"]:
        assert name in message
    with pytest.raises(ParameterError, match="input: please supply an input image"):
        createMedian.median(None)
    with pytest.raises(ParameterError, match="configObj: expected None, a .cfg file name"):
        createMedian.median(stack, configObj=42)
    assert not list(tmp_path.glob("*_med.fits"))


def test_run_takes_input_from_the_configuration(stack, tmp_path):
    cfg = write_config(tmp_path / "r.cfg", validate(combine_type="sum"), input=stack,
                       output=str(tmp_path / "r"))
    result = createMedian.run(str(cfg))
    assert same_bits(fits.getdata(result.path), median_image(stack, combine_type="sum").data)
    with pytest.raises(ParameterError, match="input: please supply an input image"):
        createMedian.run({"combine_type": "sum"})


# ------------------------------------------------------------------------------------------
# createMedian(imgObjList, configObj, procSteps)


class Steps:
    """Records calls as drizzlepac's ProcSteps receives them."""

    def __init__(self):
        self.calls = []

    def addStep(self, key):
        self.calls.append(("add", key))

    def endStep(self, key, reason="ended", delay_msg=False):
        self.calls.append(("end", key, reason, delay_msg))


def test_createmedian_with_image_objects_and_procsteps(stack, tmp_path):
    images = open_inputs(stack)
    steps = Steps()
    config = {"combine_type": "median", "combine_nhigh": 1, "output": str(tmp_path / "ad"),
              "num_cores": 1}
    result = createMedian.createMedian(images, config, procSteps=steps)
    assert steps.calls == [("add", "Create Median"), ("end", "Create Median", "ended", False)]
    assert result.path == tmp_path / "ad_med.fits"
    assert same_bits(fits.getdata(result.path),
                     median_image(stack, combine_type="median", combine_nhigh=1).data)
    # filenames work too, mixed with image objects
    result = createMedian.createMedian([images[0], *stack[1:]], config)
    assert same_bits(fits.getdata(result.path),
                     median_image(stack, combine_type="median", combine_nhigh=1).data)


def test_createmedian_step_off_and_aborted(stack, tmp_path):
    steps = Steps()
    off = astrodrizzle_cfg({"median": "False"})
    path = tmp_path / "off.cfg"
    path.write_text(off)
    assert createMedian.createMedian(stack, str(path), procSteps=steps) is None
    assert steps.calls == [("add", "Create Median"), ("end", "Create Median", "off", True)]
    steps = Steps()
    with pytest.raises(ParameterError, match="rejects every one of the 4 input images"):
        createMedian.createMedian(stack, {"combine_type": "median", "combine_nlow": 2,
                                          "combine_nhigh": 2, "output": str(tmp_path / "x")},
                                  procSteps=steps)
    assert steps.calls[-1] == ("end", "Create Median", "aborted", True)
    with pytest.raises(ParameterError, match="imgObjList: please provide"):
        createMedian.createMedian(None, None)
    assert not list(tmp_path.glob("*_med.fits"))


# ------------------------------------------------------------------------------------------
# editpars


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _editor(tmp_path, body: str) -> str:
    """An $EDITOR command: a Python script run with the file to edit as its argument."""
    script = tmp_path / "editor.py"
    script.write_text(textwrap.dedent(body))
    return f"{sys.executable} {script}"


def test_editpars_with_a_scripted_editor(stack, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Terminal())
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", _editor(tmp_path, """\
        import sys
        path = sys.argv[1]
        text = open(path).read()
        assert "combine_type = minmed" in text and "combine_nhigh = 0" in text
        text = text.replace("combine_type = minmed", "combine_type = median")
        text = text.replace("combine_nhigh = 0", "combine_nhigh = 1")
        open(path, "w").write(text)
        """))
    result = createMedian.median(stack, editpars=True, output=str(tmp_path / "e"))
    expected = median_image(stack, combine_type="median", combine_nhigh=1)
    assert same_bits(fits.getdata(result.path), expected.data)


def test_editpars_reopens_on_error_and_stops_on_editor_failure(stack, tmp_path, monkeypatch,
                                                                caplog):
    monkeypatch.setattr(sys, "stdin", _Terminal())
    counter = str(tmp_path / "count")
    monkeypatch.setenv("VISUAL", _editor(tmp_path, f"""\
        import os, sys
        path = sys.argv[1]
        count = {counter!r}
        n = int(open(count).read()) if os.path.exists(count) else 0
        open(count, "w").write(str(n + 1))
        text = open(path).read()
        if n == 0:
            text = text.replace("combine_type = minmed", "combine_type = middle")
        else:
            assert text.startswith("# medstack: ERROR: "), text[:200]
            assert "combine_type: unknown value 'middle'" in text.splitlines()[0]
            text = text.replace("combine_type = middle", "combine_type = sum")
        open(path, "w").write(text)
        """))
    result = createMedian.median(stack, editpars=True, output=str(tmp_path / "r"))
    assert (tmp_path / "count").read_text() == "2"
    assert "re-opening the editor" in caplog.text
    assert same_bits(fits.getdata(result.path), median_image(stack, combine_type="sum").data)
    # an editor that fails (e.g. :cq in vim) cancels the run
    monkeypatch.setenv("VISUAL", f"{sys.executable} -c 'import sys; sys.exit(3)'")
    with pytest.raises(ParameterError, match="exited with status 3; nothing was run"):
        createMedian.median(stack, editpars=True, output=str(tmp_path / "c"))
    # a file saved unchanged after an error gives up instead of looping
    monkeypatch.setenv("VISUAL", _editor(tmp_path, """\
        import sys
        path = sys.argv[1]
        text = open(path).read()
        if not text.startswith("# medstack: ERROR"):
            open(path, "w").write(text.replace("combine_grow = 1", "combine_grow = -4"))
        """))
    with pytest.raises(ParameterError, match="combine_grow: must be >= 0.*giving up"):
        createMedian.median(stack, editpars=True, output=str(tmp_path / "g"))
    assert not (tmp_path / "c_med.fits").exists() and not (tmp_path / "g_med.fits").exists()


def test_editpars_without_a_terminal(stack, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setenv("EDITOR", "true")
    with pytest.raises(ParameterError, match="editpars=True needs an interactive terminal"):
        createMedian.median(stack, editpars=True, output=str(tmp_path / "n"))
    assert not list(tmp_path.glob("*_med.fits"))


# ------------------------------------------------------------------------------------------
# help


def test_help_text_names_every_parameter_with_default():
    text = createMedian.getHelpAsString()
    assert text.startswith(f"Task: 'createMedian'. 'medstack' version: {__version__}\n")
    for p in PARAMETERS:
        assert f"{p.name} : " in text
        assert f"(Default = {format_value(p, p.default)})" in text
        assert " ".join(p.help.split()[:6]) in " ".join(text.split())
    for key in ("input", "output", "num_cores", "exptime", "sky", "readnoise", "proc_unit"):
        assert f"\n{key} : " in text
    assert __version__ not in createMedian.getHelpAsString(show_ver=False)
    description = textwrap.dedent(createMedian.__doc__).strip()
    assert description in createMedian.getHelpAsString(docstring=True)
    assert description.splitlines()[0] not in text
    doc = createMedian.median.__doc__
    assert "{PARAMETERS}" not in doc and "combine_grow : int (Default = 1)" in doc


def test_help_prints_or_replaces_a_file(tmp_path, capsys):
    createMedian.help()
    printed = capsys.readouterr().out
    assert printed.startswith("Task: 'createMedian'") and "combine_nsigma" in printed
    target = tmp_path / "help.txt"
    target.write_text("x" * 100000)
    createMedian.help(file=str(target))
    assert target.read_text() == createMedian.getHelpAsString(docstring=True, show_ver=True)
