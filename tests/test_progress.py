"""Seeing the run: a tqdm bar over sections on stderr, the plan at INFO with -v, --quiet."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
from conftest import random_stack, write_stack

from medstack import median_image
from medstack.cli import main
from medstack.progress import make_progress

NY, NX = 40, 10
ONE_ROW = NX * 4 / 2**20


@pytest.fixture
def names(tmp_path):
    sci, wht = random_stack(np.random.default_rng(0), 3, NY, NX)
    return write_stack(tmp_path / "in", sci, wht)


def test_make_progress_disabled_gives_none():
    with make_progress(enabled=False) as progress:
        assert progress is None


def test_make_progress_draws_a_bar_and_closes_it():
    stream = io.StringIO()
    with make_progress(file=stream, desc="median", unit="section") as progress:
        for done in range(1, 8):
            progress(done, 7)
        drawn = stream.getvalue()
    assert "median:" in drawn and "/7" in drawn and "section" in drawn
    assert stream.getvalue().endswith("\r")  # leave=False: the bar line is cleared at the end


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


def test_bar_when_stderr_is_a_terminal(capsys, monkeypatch, names, tmp_path):
    assert _has_bar(_run(capsys, monkeypatch, names, tmp_path, tty=True))


def test_progress_forces_a_bar(capsys, monkeypatch, names, tmp_path):
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
    assert any(line.startswith(f"medstack: INFO: wrote {tmp_path / 'p'}_med.fits") for line in lines)


def test_no_info_without_verbose(capsys, monkeypatch, names, tmp_path):
    err = _run(capsys, monkeypatch, names, tmp_path, "--workers", "2")
    assert "INFO" not in err
