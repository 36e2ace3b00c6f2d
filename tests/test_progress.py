"""Seeing the run: a tqdm bar over sections on stderr, the plan at INFO with -v, --quiet."""

from __future__ import annotations

import io
import os
import re
import sys

import numpy as np
import pytest
from astropy.io import fits
from conftest import random_stack, write_stack

from medstack import median_image
from medstack.cli import main
from medstack.extras import progress as progress_module
from medstack.extras.progress import make_progress

NY, NX = 40, 10
ONE_ROW = NX * 4 / 2**20


@pytest.fixture
def names(tmp_path):
    sci, wht = random_stack(np.random.default_rng(0), 3, NY, NX)
    return write_stack(tmp_path / "in", sci, wht)


def test_make_progress_disabled_gives_none():
    with make_progress(enabled=False) as progress:
        assert progress is None


@pytest.fixture
def no_delay(monkeypatch):
    """Bars appear at once (a test's run is shorter than the 1 s delay)."""
    monkeypatch.setattr(progress_module, "DELAY", 0.0)


def test_make_progress_draws_a_bar_that_stays(no_delay):
    stream = io.StringIO()
    with make_progress(file=stream, desc="median", unit="section") as progress:
        for done in range(1, 8):
            progress(done, 7)
    drawn = stream.getvalue()
    assert "median:" in drawn and "section" in drawn
    last = drawn.rstrip("\n").split("\r")[-1]  # what stays on screen when the run is over
    assert drawn.endswith("\n") and re.search(r"100%\|#+\| 7/7 \[", last), last


def test_short_run_draws_nothing():
    stream = io.StringIO()
    with make_progress(file=stream, delay=5.0) as progress:
        for done in range(1, 8):
            progress(done, 7)
    assert stream.getvalue() == ""


def test_bar_appears_after_the_delay(monkeypatch):
    import tqdm.std

    clock = [1000.0]  # tqdm's clock, moved by hand
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])
    stream = io.StringIO()
    with make_progress(file=stream, delay=0.2) as progress:
        progress(1, 3)
        assert stream.getvalue() == ""  # not yet
        clock[0] += 0.3
        progress(2, 3)
        progress(3, 3)
    assert "3/3" in stream.getvalue()


def test_zero_columns_terminal_still_draws(monkeypatch, no_delay):
    """A terminal that reports 0 columns (some CI consoles) gets a bar of 80 columns."""
    class Tty(io.StringIO):
        def fileno(self):
            return 2

    monkeypatch.setattr(progress_module.os, "get_terminal_size",
                        lambda fd: os.terminal_size((0, 0)))
    stream = Tty()
    assert progress_module.columns(stream) == progress_module.DEFAULT_COLUMNS
    with make_progress(file=stream) as progress:
        for done in range(1, 5):
            progress(done, 4)
    last = stream.getvalue().rstrip("\n").split("\r")[-1]
    assert "4/4" in last and "|#" in last and len(last) <= 80


def test_engine_reports_every_section_in_order(names):
    calls = []
    result = median_image(names, combine_type="median", combine_bufsize=4 * ONE_ROW,
                          workers=2, progress=lambda done, total: calls.append((done, total)))
    total = len(result.plan.sections)
    assert total == 10
    assert calls == [(k, total) for k in range(1, total + 1)]


def _run(capsys, monkeypatch, names, tmp_path, *extra, tty=False):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
    capsys.readouterr()
    argv = [*names, "-o", str(tmp_path / "p"), "--combine-type", "median",
            "--combine-bufsize", str(4 * ONE_ROW), *extra]
    assert main(argv) == 0
    return capsys.readouterr().err


def _has_bar(err):
    return re.search(r"median:.*\|.*/10 \[", err) is not None


def test_no_bar_when_stderr_is_not_a_terminal(capsys, monkeypatch, names, tmp_path):
    assert _run(capsys, monkeypatch, names, tmp_path) == ""


def test_bar_when_stderr_is_a_terminal(capsys, monkeypatch, names, tmp_path, no_delay):
    assert _has_bar(_run(capsys, monkeypatch, names, tmp_path, tty=True))


def test_progress_forces_a_bar(capsys, monkeypatch, names, tmp_path, no_delay):
    assert _has_bar(_run(capsys, monkeypatch, names, tmp_path, "--progress"))


@pytest.mark.parametrize("extra", [["--quiet"], ["--quiet", "--progress"], ["--no-progress"]])
def test_no_bar_with_quiet_or_no_progress(capsys, monkeypatch, names, tmp_path, extra):
    assert _run(capsys, monkeypatch, names, tmp_path, *extra, tty=True) == ""


def test_verbose_logs_the_plan(capsys, monkeypatch, names, tmp_path):
    err = _run(capsys, monkeypatch, names, tmp_path, "-v", "--workers", "2")
    lines = [line for line in err.splitlines() if line.startswith("medstack: INFO: ")]
    plan = next(line for line in lines if "inputs of" in line)
    assert "3 inputs of 40x10" in plan
    assert "sections of 4 rows (10 sections)" in plan
    assert f"budget {4 * ONE_ROW:.3g} MiB per input" in plan
    assert "2 worker(s)" in plan
    table = err[err.index("per-image values:"):].splitlines()[1:5]
    assert table[0].split() == ["#", "image", "exptime/s", "sky/e-", "readnoise/e-",
                                "mean", "weight", "masked"]
    for i, row in enumerate(table[1:]):
        cells = row.split()
        assert cells[:5] == [str(i + 1), f"img{i:03d}_single_sci.fits", "100", "50", "4"]
        wht = fits.getdata(names[i].replace("_single_sci", "_single_wht")).astype(np.float64)
        mean = float(np.float32(wht[wht >= np.float32(1e-8)].mean()))
        assert float(cells[5]) == pytest.approx(mean, rel=1e-5)
        assert cells[6] == f"{100 * np.mean(wht < 0.7 * mean):.1f}%"


def test_no_info_without_verbose(capsys, monkeypatch, names, tmp_path):
    err = _run(capsys, monkeypatch, names, tmp_path, "--workers", "2")
    assert "INFO" not in err


def test_a_real_terminal_of_zero_rows_still_draws(no_delay, monkeypatch):
    """A pty that reports 100 columns and 0 rows: tqdm reads that size itself and would
    hide the bar; it draws, 80 columns wide, and stays."""
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 100, 0, 0))  # 0 rows
    stream = os.fdopen(slave, "w")
    monkeypatch.setattr(sys, "stderr", stream)  # tqdm asks stderr's terminal for its size
    try:
        assert os.get_terminal_size(slave) == os.terminal_size((100, 0))
        with make_progress() as progress:
            for done in range(1, 5):
                progress(done, 4)
        stream.flush()
        import select

        text = ""
        while select.select([master], [], [], 0.2)[0]:
            text += os.read(master, 65536).decode()
    finally:
        stream.close()
        os.close(master)
    assert "4/4" in text and "100%" in text
