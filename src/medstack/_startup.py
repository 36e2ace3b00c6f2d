"""Ctrl-C while the ``medstack`` command starts: the process ends at once.

Until the command starts its work (reading inputs, creating files: :func:`work_begins`), the
console script (:mod:`medstack._entry`) has Ctrl-C end the process at once with the command's
one line and status 130. An interrupt raised as an exception there, while modules are imported
or the arguments parsed, can come out of the library code it lands in as another error (Python
wraps one raised in a class body's ``__set_name__`` in a RuntimeError; argparse's clean-up
raises an AttributeError over it), and there is nothing to clean up yet. From
:func:`work_begins` on, Ctrl-C is an exception again, caught by :func:`medstack.cli.main`,
which removes what the run had begun.
"""

from __future__ import annotations

import os
import signal

__all__ = ["end_on_interrupt", "work_begins"]


def _interrupted_while_starting(signum: int, frame: object) -> None:
    try:
        os.write(2, b"medstack: interrupted; no output written\n")
    finally:
        os._exit(130)


def end_on_interrupt() -> None:
    """Have Ctrl-C end the process at once (unless SIGINT is ignored or handled by others)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted_while_starting)


def work_begins() -> None:
    """From now on Ctrl-C raises KeyboardInterrupt again (where :func:`end_on_interrupt` had
    made it end the process; otherwise nothing changes)."""
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
