"""Interrupt safety: SIGINT/SIGTERM while the command starts and in the middle of a run, on a
real subprocess.

The run is made long on purpose (a tall stack cut into one-output-row sections, the reference
kernel). Each signal is sent on an event the process shows (its temporary output file
appearing, a line it prints), never after a fixed delay. The process must exit 130 (SIGINT) or
143 (SIGTERM) with medstack's one line last, remove its temporary files, leave the earlier
product byte for byte as it was, and leave no process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import write_stack

import medstack

NY, NX, N = 12000, 32, 6  # about 8 s uninterrupted with the reference kernel
CONSOLE_SCRIPT = Path(sys.executable).with_name("medstack")
ONE_ROW = str(NX * 4 / 2**20)  # --combine-bufsize of one-row sections


@pytest.fixture(scope="module")
def tall_stack(tmp_path_factory):
    rng = np.random.default_rng(1)
    sci = rng.normal(10.0, 1.0, (N, NY, NX)).astype(np.float32)
    wht = np.full((N, NY, NX), 100.0, dtype=np.float32)
    return write_stack(tmp_path_factory.mktemp("tall"), sci, wht)


def _default_sigint():
    """A shell's background job inherits SIGINT ignored, and medstack (as Python) then leaves
    it ignored: the tests that send SIGINT give their process the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(command, **kwargs):
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint, **kwargs)


def _wait_for_file(proc, folder, pattern):
    """Return once a file matching ``pattern`` is in ``folder`` (looked for every 10 ms),
    failing if the process ends first."""
    while not list(folder.glob(pattern)):
        assert proc.poll() is None, f"exited early: {proc.communicate()}"
        time.sleep(0.01)


def _read_until(proc, wanted):
    """The lines of stderr up to and including the first that contains ``wanted`` (or, for
    ``import time:`` lines, ends with the module name ``wanted``)."""
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == wanted:
            return lines
        if wanted in line and not line.startswith("import time:"):
            return lines
    pytest.fail(f"{wanted!r} never printed: {''.join(lines)}")


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


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
    command += [*tall_stack, "-o", str(tmp_path / "visit"), "--save-maps", "--kernel",
                "reference", "--combine-bufsize", ONE_ROW, "--workers", "1"]
    proc = _start(command)
    try:
        _wait_for_file(proc, tmp_path, ".visit_med*.tmp")  # the sections are being computed
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    assert proc.returncode == status, err
    assert err.splitlines() == [f"medstack: {word}; no output written"]
    assert "Traceback" not in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["visit_med.fits"]
    assert earlier.read_bytes() == before


@pytest.mark.parametrize("signum, status, word", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")])
@pytest.mark.parametrize("module", ["argparse", "medstack.cli", "numpy", "medstack.core.plan",
                                    "medstack.api", "medstack.executors.threads"])
def test_signal_while_the_command_starts(tall_stack, tmp_path, module, signum, status, word):
    """A signal as soon as the console script has imported ``module`` (Python's
    ``PYTHONPROFILEIMPORTTIME`` prints a line as each import ends): while it imports its own
    modules, NumPy, and plans, the one line and the status, no traceback, no file."""
    if not CONSOLE_SCRIPT.exists():
        pytest.skip("console script not installed beside this interpreter")
    command = [str(CONSOLE_SCRIPT), *tall_stack, "-o", str(tmp_path / "visit"), "--kernel",
               "reference", "--combine-bufsize", ONE_ROW, "--workers", "1"]
    proc = _start(command, env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    try:
        lines = _read_until(proc, module)
        proc.send_signal(signum)
        lines += proc.stderr.read().splitlines(keepends=True)
        proc.wait(60)
    finally:
        _stop(proc)
    said = [line.rstrip("\n") for line in lines if not line.startswith("import time:")]
    assert proc.returncode == status, said
    assert said == [f"medstack: {word}; no output written"]
    assert list(tmp_path.iterdir()) == []


def _group(pgid):
    """The live (not zombie) processes of process group ``pgid``."""
    psutil = pytest.importorskip("psutil")
    found = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (ProcessLookupError, psutil.Error):
            pass
    return found


@pytest.mark.parametrize("signum, when", [(signal.SIGINT, "starting"),
                                          (signal.SIGINT, "running"),
                                          (signal.SIGTERM, "starting"),
                                          (signal.SIGTERM, "running")])
def test_dask_local_stops_with_one_line(tall_stack, tmp_path, signum, when):
    """A terminal's Ctrl-C goes to the whole process group, the cluster's workers included;
    SIGTERM to the command only. Either way: medstack's line last (Dask may print its own
    lines as its cluster closes, but no traceback through medstack's code), the status, no
    file, and none of the cluster's processes left."""
    pytest.importorskip("distributed")
    psutil = pytest.importorskip("psutil")
    command = [str(CONSOLE_SCRIPT) if CONSOLE_SCRIPT.exists() else sys.executable,
               *([] if CONSOLE_SCRIPT.exists() else ["-m", "medstack.cli"]),
               *tall_stack[:4], "-o", str(tmp_path / "visit"), "--scheduler", "dask-local",
               "--workers", "2", "--kernel", "reference", "--combine-bufsize", ONE_ROW, "-v"]
    proc = _start(command, start_new_session=True)
    try:
        # -v's lines: the cluster is starting; the bands are being submitted
        lines = _read_until(proc, "starting a Dask LocalCluster" if when == "starting"
                            else "band(s)")
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # as the terminal does
        else:
            proc.send_signal(signum)
        lines += proc.stderr.read().splitlines(keepends=True)
        proc.wait(90)
        _, alive = psutil.wait_procs(_group(proc.pid), timeout=60)
    finally:
        _stop(proc)
        for p in _group(proc.pid):
            p.kill()
    status, word = (130, "interrupted") if signum == signal.SIGINT else (143, "terminated")
    assert proc.returncode == status, "".join(lines)
    assert lines[-1] == f"medstack: {word}; no output written\n"
    # Dask may print its own lines, but no traceback through medstack's code (wherever the
    # checkout is: its folder may well be called medstack too)
    assert str(Path(medstack.__file__).parent) not in "".join(lines)
    assert alive == []
    assert list(tmp_path.iterdir()) == []


def test_a_signal_python_would_ignore_is_raised_again():
    """A Ctrl-C whose KeyboardInterrupt is raised inside a garbage-collector callback (Python
    can only print and ignore it there; distributed installs such a callback) is raised again
    in the main flow, where the run cleans up. In a fresh interpreter: what the suite's earlier
    tests leave in this one (collector callbacks, threads) must not decide it."""
    script = textwrap.dedent("""
        import gc, signal, threading
        from medstack._startup import signals_raise

        armed, fired = [], []

        def interrupt_once(phase, info):
            if phase == "start" and armed and not fired:
                fired.append(True)
                signal.raise_signal(signal.SIGINT)  # the handler runs inside this callback

        gc.callbacks.append(interrupt_once)
        try:
            with signals_raise():
                armed.append(True)  # from here on: with medstack's handler
                gc.collect()
                assert fired  # the first raise was lost inside the callback ...
                threading.Event().wait(60)  # ... and the second one ends this wait
        except KeyboardInterrupt:
            print("raised again")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, preexec_fn=_default_sigint)
    assert proc.returncode == 0 and proc.stdout == "raised again\n", proc.stderr


def test_a_signal_inside_a_dask_future_leaves_our_line_last(tall_stack, tmp_path):
    """SIGTERM that lands while distributed builds a Future (before its ``__init__`` ends):
    the half-made Future's finalizer fails as the exception holding its frame is freed, and
    what it prints must come before medstack's line, which stays last. The signal is sent from
    inside the constructor (its id counter), not raced with the clock."""
    pytest.importorskip("distributed")
    script = textwrap.dedent(f"""
        import itertools, os, signal, sys
        import distributed.client

        class Counter:
            def __init__(self):
                self.count = itertools.count()

            def __next__(self):
                n = next(self.count)
                if sys._getframe(1).f_code.co_name == "__init__" and n == 3:
                    os.kill(os.getpid(), signal.SIGTERM)  # handled before __init__ returns
                return n

        distributed.client.Future._counter = Counter()
        sys.argv = ["medstack", *{tall_stack[:4]!r}, "-o", {str(tmp_path / "visit")!r},
                    "--scheduler", "dask-local", "--workers", "1", "--kernel", "reference"]
        from medstack.cli import command
        command()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=180, preexec_fn=_default_sigint)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.splitlines()[-1] == "medstack: terminated; no output written"
    assert list(tmp_path.iterdir()) == []
