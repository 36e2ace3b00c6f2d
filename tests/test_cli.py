"""The command line through main(argv): exit codes, the error line, outputs."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

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
    import astropy

    line = capsys.readouterr().out.strip()
    assert line == (f"medstack {__version__} (numpy {np.__version__}, astropy "
                    f"{astropy.__version__}, Python {platform.python_version()})")
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


def test_success_is_one_line_on_stdout(stack, tmp_path, capsys):
    assert main([*stack, "-o", str(tmp_path / "s"), "--combine-type", "median"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    (line,) = captured.out.splitlines()
    assert re.fullmatch(rf"medstack: wrote {re.escape(str(tmp_path / 's_med.fits'))} "
                        r"\(median of 4 images, 30x20, \d+\.\d\d s\)", line), line


def test_success_line_names_maps_and_png(stack, tmp_path, capsys):
    argv = [*stack, "-o", str(tmp_path / "m"), "--save-maps", "--png", str(tmp_path / "m.png")]
    assert main(argv) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert f"wrote {tmp_path / 'm_med.fits'} (minmed of 4 images" in line
    assert f"; {tmp_path / 'm_med_ngood.fits'}; {tmp_path / 'm_med_minchosen.fits'}" in line
    assert re.search(rf"; quick-look {re.escape(str(tmp_path / 'm.png'))} \(\d+\.\d\d s\)$",
                     line)


def test_quiet_prints_nothing(stack, tmp_path, capsys):
    assert main([*stack, "-o", str(tmp_path / "q"), "-q", "--png", str(tmp_path / "q.png")]) == 0
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "q_med.fits").is_file() and (tmp_path / "q.png").is_file()


def test_quiet_still_reports_errors(stack, tmp_path, capsys):
    assert main([*stack, "-q", "--combine-type", "middle"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("medstack: error: combine_type")


def test_debug_detail_with_vv(stack, tmp_path, capsys):
    assert main([*stack, "-o", str(tmp_path / "d"), "-v"]) == 0
    assert "DEBUG" not in capsys.readouterr().err
    assert main([*stack, "-o", str(tmp_path / "d"), "-vv", "--combine-bufsize", "0.0002"]) == 0
    err = capsys.readouterr().err
    assert f"DEBUG: {stack[0]}: read memory-mapped" in err
    assert "DEBUG: section: reads rows 0-" in err
    assert re.search(r"DEBUG: mean weights of 4 images: \d+\.\d\d s", err)
    assert re.search(r"DEBUG: \d+ sections combined: \d+\.\d\d s", err)


def _stack_with_weights(tmp_path, wht):
    sci = np.random.default_rng(5).normal(10, 1, (3, 40, 50)).astype(np.float32)
    return write_stack(tmp_path / "cov", sci, wht)


def test_warning_when_few_pixels_have_a_good_input(tmp_path, capsys):
    wht = np.zeros((3, 40, 50), dtype=np.float32)
    wht[:, :4, :10] = 100.0  # 40 of 2000 pixels covered
    names = _stack_with_weights(tmp_path, wht)
    assert main([*names, "-o", str(tmp_path / "few"), "--combine-type", "median"]) == 0
    err = capsys.readouterr().err
    assert err == ("medstack: WARNING: only 40 of 2000 output pixels (2%) have a good input "
                   "(check the weight images and combine_maskpt = 0.7)\n")


def test_warning_when_no_pixel_has_a_good_input(tmp_path, capsys):
    names = _stack_with_weights(tmp_path, np.zeros((3, 40, 50), dtype=np.float32))
    assert main([*names, "-o", str(tmp_path / "none"), "--combine-type", "median"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("medstack: WARNING: no output pixel has a good input: every pixel is "
                       "fillval = 0 (check the weight images and combine_maskpt = 0.7)")


def test_provenance_names_the_versions(stack, tmp_path):
    import astropy

    assert main([*stack, "-o", str(tmp_path / "p"), "-q"]) == 0
    history = [str(h) for h in fits.getheader(tmp_path / "p_med.fits")["HISTORY"]]
    assert history[0] == f"medstack {__version__} median of 4 images"
    assert history[1] == (f"with numpy {np.__version__}, astropy {astropy.__version__}, "
                          f"Python {platform.python_version()}")


def test_the_command_exits_at_once_with_its_status_and_all_its_output(stack, tmp_path):
    """The console script leaves without the interpreter's teardown, its lines all out and
    its exit status kept (0 on success, 2 on an error)."""

    from astropy.io import fits

    script = Path(sys.executable).with_name("medstack")
    if not script.exists():
        pytest.skip("the medstack console script is not installed beside this Python")
    done = subprocess.run([str(script), *stack, "-o", str(tmp_path / "c")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"medstack: wrote {tmp_path / 'c'}_med.fits (minmed of ")
    assert done.stdout.endswith(" s)\n")
    assert fits.getdata(tmp_path / "c_med.fits").shape == fits.getdata(stack[0]).shape
    bad = subprocess.run([str(script), *stack, "-o", str(tmp_path / "d"), "--workers", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr == "medstack: error: workers: must be >= 1, got 0\n"
    piped = subprocess.run(f"{script} {' '.join(stack)} -o {tmp_path / 'e'} | head -c 0",
                           shell=True, capture_output=True, text=True)
    assert "Traceback" not in piped.stderr


@pytest.mark.parametrize("given", [None, "3"])
def test_the_command_starts_no_blas_threads_unless_told(given):
    """The command sets OPENBLAS_NUM_THREADS=1 before NumPy is imported (medstack calls no
    BLAS routine), unless the environment sets it."""
    import subprocess

    code = ("import os, sys, medstack.cli as c\n"
            "def fake_main():\n"
            "    print(os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in sys.modules)\n"
            "    return 0\n"
            "c.main = fake_main\n"
            "c.command()\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == [given or "1", "False"], done.stderr


def test_the_console_script_answers_version_before_importing_the_command_line():
    """``medstack --version`` (the console script's entry point) prints what ``main``'s
    ``--version`` prints, with neither argparse, the parameter spec nor numpy imported."""
    code = ("import sys; sys.argv = ['medstack', '--version']\n"
            "from medstack._entry import command\n"
            "try:\n"
            "    command()\n"
            "except SystemExit as end:\n"
            "    print(end.code, sorted({'argparse', 'numpy', 'medstack.params', 'medstack.cli'}"
            " & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    from medstack.cli import version_text

    assert done.stdout.splitlines() == [version_text(), "0 []"], done.stderr


_NO_ASTROPY = ("import sys; from medstack.cli import main; status = main(sys.argv[1:]); "
               "print(status, sorted({m.split('.')[0] for m in sys.modules} & {'astropy'}))")


@pytest.mark.parametrize("flags", [[], ["--save-maps", "-v"], ["--combine-type", "median",
                                                              "--combine-nsigma", "4 3"]],
                         ids=["default", "maps-verbose", "median"])
def test_a_plain_run_never_imports_astropy(stack, tmp_path, monkeypatch, flags):
    """Plain float32 singles: the whole run (inputs, header, products) without astropy, and
    every file the same bytes as astropy's header makes (today's way, run here)."""
    done = subprocess.run([sys.executable, "-c", _NO_ASTROPY, *stack, "-o", str(tmp_path / "a"),
                           "-q", *flags], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "[]"], done.stderr
    from medstack.io.fitsheader import OutputHeader

    monkeypatch.setattr(OutputHeader, "from_cards", classmethod(lambda cls, images: None))
    assert main([*stack, "-o", str(tmp_path / "b"), "-q", *flags]) == 0
    made = sorted(p.name for p in tmp_path.glob("a_med*.fits"))
    assert made and made == [n.replace("b_", "a_", 1) for n in
                             sorted(p.name for p in tmp_path.glob("b_med*.fits"))]
    for name in made:
        assert (tmp_path / name).read_bytes() == (tmp_path / name.replace("a_", "b_", 1)
                                                  ).read_bytes(), name


def test_the_command_process_imports_no_astropy(stack, tmp_path):
    """``python -X importtime -m medstack.cli``: the command's own process, its quick exit
    included, lists no astropy module."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "medstack.cli", *stack,
                           "-o", str(tmp_path / "i"), "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    assert "numpy" in imported and "medstack.core.run" in imported
    assert not [m for m in imported if m.split(".")[0] == "astropy"]
    assert (tmp_path / "i_med.fits").exists()


def test_astropy_imported_during_a_run_leaves_warnings_to_medstack(stack, tmp_path):
    """A gzipped input needs astropy: imported during the run, its logger's capture of Python
    warnings is turned off again (medstack shows warnings, one line each), and after the run
    the caller's warnings.showwarning is back and astropy's logger consistent with it (no
    import hook involved)."""
    import gzip

    zipped = []
    for sci in stack:
        for name in (sci, sci.replace("_single_sci", "_single_wht")):
            Path(name + ".gz").write_bytes(gzip.compress(Path(name).read_bytes()))
        zipped.append(sci + ".gz")
    code = ("import sys, warnings; from medstack.cli import main; before = warnings.showwarning; "
            "status = main(sys.argv[1:]); from astropy import log; "
            "print(status, 'astropy' in sys.modules, log.warnings_logging_enabled(), "
            "warnings.showwarning is before, "
            "[type(f).__name__ for f in sys.meta_path if 'Astropy' in type(f).__name__])")
    done = subprocess.run([sys.executable, "-c", code, *zipped, "-o", str(tmp_path / "z"), "-q"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "True", "False", "True", "[]"], done.stderr
    assert fits.getdata(tmp_path / "z_med.fits").tobytes() == median_image(stack).data.astype(
        ">f4").tobytes()


def test_names_after_the_end_of_options_marker_are_inputs(tmp_path, monkeypatch, capsys):
    """``medstack -- -x000_single_sci.fits ...``: after ``--`` every argument is an INPUT
    name, even one that starts with a dash, wherever the options stand before it."""
    sci, wht = random_stack(np.random.default_rng(5), 3, 14, 10)
    names = write_stack(tmp_path, sci, wht, prefix="-x")
    monkeypatch.chdir(tmp_path)
    dashed = [Path(n).name for n in names]
    assert dashed[0] == "-x000_single_sci.fits"
    expected = median_image(names).data
    assert main(["--", *dashed]) == 0
    assert same_bits(fits.getdata(tmp_path / "-x000_med.fits"), expected)
    assert main(["-o", "two", "--combine-type", "minmed", "--", *dashed]) == 0
    assert same_bits(fits.getdata(tmp_path / "two_med.fits"), expected)
    capsys.readouterr()
    assert main(["-q", "--", *dashed, "-v"]) == 2  # -v after -- is a name, not an option
    assert "-v: not a singly drizzled science file" in capsys.readouterr().err
