"""The ``medstack`` console script's entry point.

It imports nothing but :mod:`sys` before it catches Ctrl-C: an interrupt while the command's
own modules are still being imported (NumPy and astropy come later, inside
:func:`medstack.cli.main`, which catches it too) gives the command's one line and status 130,
not a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["command"]


def command() -> None:
    """Run :func:`medstack.cli.command` (which exits), catching Ctrl-C while it is imported."""
    try:
        from .cli import command as run
    except KeyboardInterrupt:
        sys.stderr.write("medstack: interrupted; no output written\n")
        raise SystemExit(130) from None
    run()
