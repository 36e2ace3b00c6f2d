"""The command line through main(argv): exit codes, the error line, outputs."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from conftest import random_stack, same_bits, write_stack

from medstack import __version__, median_image
from medstack.cli import main


@pytest.fixture()
def stack(tmp_path):
    sci, wht = random_stack(np.random.default_rng(2), 4, 30, 20)
    return write_stack(tmp_path, sci, wht)


def test_default_output_beside_first_input(stack, tmp_path):
    assert main([*stack, "-q"]) == 0
    out = tmp_path / "img000_med.fits"
    assert same_bits(fits.getdata(out), median_image(stack).data)


def test_options_reach_the_engine(stack, tmp_path):
    argv = [*stack, "-o", str(tmp_path / "x"), "--combine-type", "median", "--combine-nhigh",
            "1", "--no-median-newmasks", "--combine-bufsize", "0.001", "--workers", "1", "-q"]
    assert main(argv) == 0
    expected = median_image(stack, combine_type="median", combine_nhigh=1,
                            median_newmasks=False).data
    assert same_bits(fits.getdata(tmp_path / "x_med.fits"), expected)
    assert fits.getheader(tmp_path / "x_med.fits")["MEDNEWMK"] is False


def test_nsigma_pair_and_glob(stack, tmp_path):
    pattern = str(tmp_path / "img*_single_sci.fits")
    assert main([pattern, "-o", str(tmp_path / "g"), "--combine-nsigma", "3 2", "-q"]) == 0
    assert same_bits(fits.getdata(tmp_path / "g_med.fits"),
                     median_image(stack, combine_nsigma="3 2").data)


def test_error_is_one_line_exit_2(stack, tmp_path, capsys):
    assert main([*stack, "--combine-type", "middle"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("medstack: error: combine_type: unknown value 'middle'; choose one "
                          "of: minmed, iminmed, median")
    assert main([str(tmp_path / "missing_single_sci.fits")]) == 2
    assert "missing_single_sci.fits: file not found" in capsys.readouterr().err
    assert not list(tmp_path.glob("*_med.fits"))


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--no-such-option"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("medstack: error: unrecognized arguments")
    assert main([]) == 2
    assert "no INPUT given" in capsys.readouterr().err


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"medstack {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in ("--combine-type", "--combine-nsigma", "--combine-maskpt", "--combine-nlow",
                   "--combine-nhigh", "--combine-lthresh", "--combine-hthresh",
                   "--combine-grow", "--combine-bufsize", "--median-newmasks", "--fillval",
                   "--output", "--verbose", "--quiet"):
        assert option in text


def test_debug_shows_traceback(stack):
    with pytest.raises(Exception, match="combine_type"):
        main([*stack, "--combine-type", "middle", "--debug"])


def test_verbose_logs_the_plan(stack, tmp_path, capsys):
    assert main([*stack, "-o", str(tmp_path / "v"), "-v"]) == 0
    err = capsys.readouterr().err
    assert "4 inputs of 30x20" in err and "sections of" in err and "worker" in err
