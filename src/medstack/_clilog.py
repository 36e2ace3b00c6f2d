"""The ``medstack`` command's messages: its log on stderr, one line per notice, warning or
error (held back until the work begins, so that a run stopped by an error before that prints
its one error line), and the Python warnings of the libraries it uses as log lines."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

from .options import NOTICE

__all__ = ["configure_logging", "quiet_astropy_log", "route_library_warnings"]


class _HeldBack(logging.Handler):
    """Holds log records back until :meth:`show_held` (once the work is under way, or at the
    end), so that a run stopped by an error before that prints its one error line and nothing
    else; :meth:`drop` forgets them. (Not ``release``: that is the handler's lock.)"""

    def __init__(self, target: logging.Handler, live: bool) -> None:
        super().__init__()
        self.target = target
        self.live = live
        self.held: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.live or record.levelno == NOTICE:  # a notice says what comes next: now
            self.target.handle(record)
        else:
            self.held.append(record)

    def show_held(self) -> None:
        self.live = True
        held, self.held = self.held, []
        for record in held:
            self.target.handle(record)

    def drop(self) -> None:
        self.held = []


def configure_logging(verbose: int, quiet: bool, hold: bool = False
                       ) -> tuple[Callable[[], None], _HeldBack]:
    """Send medstack's log to stderr, one line per record (held back with ``hold``, see
    :class:`_HeldBack`); returns a function that restores the previous set-up (so that
    ``main()`` called from Python leaves the caller's logging as it was) and the handler."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else
                                         logging.INFO if verbose else NOTICE)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(_Formatter())
    handler = _HeldBack(stream, live=not hold)
    root = logging.getLogger("medstack")
    saved = (root.handlers[:], root.level, root.propagate)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

    def restore() -> None:
        root.handlers[:], root.level, root.propagate = saved

    return restore, handler


class _Formatter(logging.Formatter):
    """``medstack: LEVEL: message``; a notice is just ``medstack: message``. Notices, warnings
    and errors are one line each (a message or a name with a newline in it included)."""

    def __init__(self) -> None:
        super().__init__("medstack: %(levelname)s: %(message)s")
        self._plain = logging.Formatter("medstack: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = self._plain.format(record) if record.levelno == NOTICE else super().format(record)
        if record.levelno >= NOTICE:  # a notice, warning or error is one line (-v's tables
            return " ".join(text.splitlines())  # may take several)
        return text


def _log_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the command: a library's warning becomes one medstack
    log line (astropy's logger would print several, in its own format)."""
    logging.getLogger("medstack").warning("%s: %s", category.__name__,
                                          " ".join(str(message).split()))


def quiet_astropy_log() -> None:
    """Turn off astropy's logger's capture of Python warnings, where astropy has been imported
    (it turns the capture on as it is set up): :func:`_log_warning` shows them instead, one
    line each. Most runs never import astropy (plain inputs and their headers are read
    without it), so the command calls this before its run, as the work begins and after it
    (before the caller's ``warnings.showwarning`` is restored), not at import."""
    if "astropy" not in sys.modules:
        return
    try:
        from astropy import log as astropy_log

        if astropy_log.warnings_logging_enabled():
            astropy_log.disable_warnings_logging()
    except Exception:  # pragma: no cover - astropy's logger set up differently
        pass


def route_library_warnings() -> None:
    """Show Python warnings as medstack log lines (:func:`_log_warning`), not through
    astropy's logger (:func:`quiet_astropy_log`); restored by the ``warnings.catch_warnings``
    around the run."""
    quiet_astropy_log()
    warnings.showwarning = _log_warning
