"""The ``medstack`` console script's entry point: until the command's work begins, Ctrl-C or
SIGTERM end it at once with its one line and status 130 or 143 (see :mod:`medstack._startup`)."""

from __future__ import annotations

import sys

from ._startup import end_on_signal

__all__ = ["command"]


def command() -> None:
    """Run :func:`medstack.cli.command` (which exits)."""
    end_on_signal()
    if sys.argv[1:] == ["--version"]:  # the answer needs nothing of the command line's
        from ._version import version_text

        print(version_text())
        sys.exit(0)
    from .cli import command as run

    run()
