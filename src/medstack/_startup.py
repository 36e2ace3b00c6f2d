"""The ``medstack`` command's signals and exit, in one place.

One handler, :func:`_on_signal`, for SIGINT (Ctrl-C) and SIGTERM:

- until the command's work begins (reading inputs, creating files: :func:`work_begins`), the
  console script (:mod:`medstack._entry`, :func:`end_on_signal`) has it end the process at once
  with the command's one line and status 130 (SIGINT) or 143 (SIGTERM). An interrupt raised as
  an exception there, while modules are imported or the arguments parsed, can come out of the
  library code it lands in as another error (Python wraps one raised in a class body's
  ``__set_name__`` in a RuntimeError; argparse's clean-up raises an AttributeError over it),
  and there is nothing to clean up yet;
- from then on (and always for :func:`medstack.cli.main` called in a Python session, through
  :func:`signals_raise`) it raises :class:`KeyboardInterrupt` or :class:`Terminated` in the
  main thread, which :func:`medstack.cli.main` catches after the run has removed what it had
  begun. One raised where Python can only print and ignore it (a garbage-collector callback or
  a ``__del__``, such as distributed's) is sent again until it is raised elsewhere.

:func:`leave` ends the process once the command is done. :func:`dask_setup` makes the
workers of a ``dask-local`` run deaf to Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

__all__ = ["Terminated", "dask_setup", "end_on_signal", "leave", "signals_raise",
           "work_begins"]

_WORDS: dict[int, str] = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
_starting = False  # set by end_on_signal, cleared by work_begins


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (as KeyboardInterrupt for SIGINT)."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _starting:
        try:
            os.write(2, f"medstack: {_WORDS[signum]}; no output written\n".encode())
        finally:
            os._exit(128 + signum)
    while frame is not None:
        if frame.f_code is _unraisable.__code__:
            return  # it would be lost here too: _resend sends it again
        frame = frame.f_back
    _delivered.set()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated


_lost: queue.SimpleQueue[int] = queue.SimpleQueue()  # put() is safe in any callback
_delivered = threading.Event()


def _resend() -> None:
    """A thread: each lost signal is sent to the main thread again, every 50 ms, until
    :func:`_on_signal` raises it there (if that raise is lost too, the hook puts it back)."""
    while True:
        signum = _lost.get()
        _delivered.clear()
        signal.pthread_kill(threading.main_thread().ident or 0, signum)
        while not _delivered.wait(0.05):
            signal.pthread_kill(threading.main_thread().ident or 0, signum)


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """An exception of :func:`_on_signal` that Python could only ignore (raised inside a
    garbage-collector callback or a ``__del__``, such as distributed's) is not lost: its signal
    is sent again (:func:`_resend`), to be raised where the run can clean up. Any other goes
    to Python's own hook."""
    if not isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)):
        sys.__unraisablehook__(unraisable)
        return
    _lost.put(signal.SIGINT if isinstance(unraisable.exc_value, KeyboardInterrupt)
              else signal.SIGTERM)
    if not any(t.name == "medstack-signal" for t in threading.enumerate()):
        threading.Thread(target=_resend, name="medstack-signal", daemon=True).start()


def _install() -> dict[int, Any]:
    """Our handler for SIGTERM, and for SIGINT unless something else than Python's default
    handles or ignores it (a background job's SIGINT stays ignored); the handlers replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    replaced = {}
    for signum in _WORDS:
        old = signal.getsignal(signum)
        if old in (signal.default_int_handler, signal.SIG_DFL, _on_signal):
            replaced[signum] = signal.signal(signum, _on_signal)
    sys.unraisablehook = _unraisable
    return replaced


def end_on_signal() -> None:
    """Have SIGINT and SIGTERM end the process at once, until :func:`work_begins`."""
    global _starting
    _starting = True
    _install()


def work_begins() -> None:
    """From now on SIGINT and SIGTERM raise exceptions, so that the run cleans up."""
    global _starting
    _starting = False


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt and SIGTERM :class:`Terminated` (in the main thread)
    while the block runs; the earlier handlers are put back afterwards."""
    hook = sys.unraisablehook
    replaced = _install()
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for signum, old in replaced.items():
            signal.signal(signum, old)


def leave(status: int) -> NoReturn:
    """End the process with ``status`` once the command is done.

    Its files are synced and renamed into place and every message is out; the interpreter's own
    teardown (unloading astropy and NumPy, a few tenths of a second) would only add time. So the
    streams and logging are flushed and the process leaves at once (``os._exit``), unless other
    threads are still alive or Dask was used (its processes and their clean-up are left to the
    normal exit).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the normal exit deals with it
            sys.exit(status)
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    children = sys.modules.get("multiprocessing")
    if "distributed" in sys.modules or others or (
            children is not None and children.active_children()):
        if "distributed" in sys.modules:
            # the command's last line is out; what Dask's objects print as the interpreter
            # tears them down (a Future's __del__ after its client closed) would follow it
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stderr.fileno())
                os.close(devnull)
            except (OSError, ValueError):  # no file behind stderr: nothing to silence
                pass
        sys.exit(status)
    logging.shutdown()
    os._exit(status)


def dask_setup(worker: object) -> None:
    """Dask's preload hook in each worker process of a ``dask-local`` run's LocalCluster
    (:mod:`medstack.executors.dask`): Ctrl-C at a terminal goes to the whole process group,
    and the run closes its cluster itself, so the workers ignore it rather than each print a
    traceback."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
