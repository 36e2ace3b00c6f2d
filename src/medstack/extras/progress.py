"""Progress reporting: an injected ``progress(done, total)`` callable.

The run (:func:`medstack.core.run.run`) calls it as sections finish, whatever the executor;
only the CLI chooses to show a bar.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["DEFAULT_COLUMNS", "DEFAULT_ROWS", "columns", "make_progress"]

#: Seconds a run takes before its bar appears (shorter runs draw nothing).
DELAY = 1.0
#: Columns of a bar where the terminal reports none or 0 (as some CI consoles and ``script`` do).
DEFAULT_COLUMNS = 80
#: Rows told to tqdm, whatever the terminal reports: tqdm hides a bar below the last row, all of
#: them where a terminal reports 0 rows (as ``script`` does).
DEFAULT_ROWS = 24


def columns(stream: TextIO | None = None) -> int:
    """The width of the terminal behind ``stream`` (default: stderr), in columns;
    :data:`DEFAULT_COLUMNS` where it reports none or 0."""
    try:
        return os.get_terminal_size((stream or sys.stderr).fileno()).columns or DEFAULT_COLUMNS
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return DEFAULT_COLUMNS


@contextmanager
def make_progress(enabled: bool = True, *, desc: str = "median", unit: str = "section",
                  file: TextIO | None = None, delay: float | None = None
                  ) -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm progress bar as a ``progress(done, total)`` callable, or None when disabled.

    The bar appears once the run has taken ``delay`` seconds (a shorter run draws nothing) and
    stays on screen, complete, when the run ends.

    Parameters
    ----------
    enabled : bool
        Whether to show a bar. Default is True.
    desc, unit : str
        Bar label and unit. Default is "median" and "section".
    file : text stream, optional
        Where to draw. Default is ``sys.stderr``.
    delay : float, optional
        Seconds before the bar first appears. Default is :data:`DELAY` (1 s).
    """
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar: list[tqdm] = []
    stream = file or sys.stderr

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=desc, unit=unit, file=stream, leave=True,
                            delay=DELAY if delay is None else delay, mininterval=0.1,
                            ncols=columns(stream), nrows=DEFAULT_ROWS))
        bar[0].update(done - bar[0].n)

    try:
        yield progress
    finally:
        if bar:
            bar[0].close()
