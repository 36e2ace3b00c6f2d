"""Interrupt safety: SIGINT/SIGTERM in the middle of a run, on a real subprocess.

The run is made long on purpose (a tall stack cut into one-output-row sections, the reference
kernel); the signal is sent as soon as the temporary output file appears, i.e. while sections
are being written. The process must exit 130 (SIGINT) or 143 (SIGTERM) with one message, remove
its temporary files, and leave the earlier product byte for byte as it was.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import write_stack

NY, NX, N = 12000, 32, 6  # about 8 s uninterrupted with the reference kernel
CONSOLE_SCRIPT = Path(sys.executable).with_name("medstack")


@pytest.fixture(scope="module")
def tall_stack(tmp_path_factory):
    rng = np.random.default_rng(1)
    sci = rng.normal(10.0, 1.0, (N, NY, NX)).astype(np.float32)
    wht = np.full((N, NY, NX), 100.0, dtype=np.float32)
    return write_stack(tmp_path_factory.mktemp("tall"), sci, wht)


def _default_sigint():  # a shell's background job may inherit SIGINT ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how, signum, status, word", [
    ("module", signal.SIGINT, 130, "interrupted"),
    ("module", signal.SIGTERM, 143, "terminated"),
    ("script", signal.SIGINT, 130, "interrupted"),
    ("script", signal.SIGTERM, 143, "terminated"),
])
def test_signal_mid_run_removes_the_temporary_file(tall_stack, tmp_path, how, signum, status,
                                                   word):
    if how == "script" and not CONSOLE_SCRIPT.exists():
        pytest.skip("console script not installed beside this interpreter")
    earlier = tmp_path / "visit_med.fits"
    fits.PrimaryHDU(np.arange(12, dtype=np.float32).reshape(3, 4)).writeto(earlier)
    before = earlier.read_bytes()
    command = [sys.executable, "-m", "medstack.cli"] if how == "module" else [str(CONSOLE_SCRIPT)]
    one_row = NX * 4 / 2**20
    command += [*tall_stack, "-o", str(tmp_path / "visit"), "--save-maps", "--kernel",
                "reference", "--combine-bufsize", str(one_row), "--workers", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".visit_med*.tmp")):
            assert proc.poll() is None, f"exited early: {proc.communicate()}"
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(0.02)
        time.sleep(0.2)  # well inside the section loop
        assert proc.poll() is None, "the run finished before the signal: make it longer"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, err
    assert err.splitlines() == [f"medstack: {word}; no output written"]
    assert "Traceback" not in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["visit_med.fits"]
    assert earlier.read_bytes() == before


@pytest.mark.parametrize("delay", [0.08, 0.15, 0.3, 0.5])
def test_ctrl_c_while_the_command_starts(tall_stack, tmp_path, delay):
    """Ctrl-C in the first half second, while the command is still importing its own modules
    (the console script's entry, medstack._entry, catches it from about 20 ms on), NumPy or
    astropy: the one line and status 130, no traceback."""
    if not CONSOLE_SCRIPT.exists():
        pytest.skip("console script not installed beside this interpreter")
    command = [str(CONSOLE_SCRIPT), *tall_stack, "-o", str(tmp_path / "visit"), "--kernel",
               "reference", "--combine-bufsize", str(NX * 4 / 2**20), "--workers", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["medstack: interrupted; no output written"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum, when", [(signal.SIGINT, "starting"),
                                          (signal.SIGINT, "running"),
                                          (signal.SIGTERM, "running")])
def test_dask_local_stops_with_one_line(tall_stack, tmp_path, signum, when):
    """A terminal's Ctrl-C goes to the whole process group, the cluster's workers included;
    SIGTERM to the command only. Either way: one line, no worker tracebacks, no distributed
    WARNINGs, no file."""
    pytest.importorskip("distributed")
    import os

    command = [str(CONSOLE_SCRIPT) if CONSOLE_SCRIPT.exists() else sys.executable,
               *([] if CONSOLE_SCRIPT.exists() else ["-m", "medstack.cli"]),
               *tall_stack[:4], "-o", str(tmp_path / "visit"), "--scheduler", "dask-local",
               "--workers", "2", "--kernel", "reference", "--combine-bufsize",
               str(NX * 4 / 2**20)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_sigint)
    try:
        if when == "starting":
            time.sleep(1.2)  # the LocalCluster is starting its workers
        else:
            deadline = time.monotonic() + 120
            while not list(tmp_path.glob(".visit_med*.tmp")):
                assert proc.poll() is None, f"exited early: {proc.communicate()}"
                assert time.monotonic() < deadline, "no temporary file appeared"
                time.sleep(0.05)
            time.sleep(0.3)
        assert proc.poll() is None, "the run finished before the signal: make it longer"
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # as the terminal does
        else:
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    status, word = (130, "interrupted") if signum == signal.SIGINT else (143, "terminated")
    assert proc.returncode == status, err
    assert err.splitlines() == [f"medstack: {word}; no output written"]
    assert list(tmp_path.iterdir()) == []
