"""Progress reporting: an injected ``progress(done, total)`` callable.

The engines call the callable after each section; only the CLI chooses to show a bar.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["make_progress"]


@contextmanager
def make_progress(enabled: bool = True, *, desc: str = "median", unit: str = "section",
                  file: TextIO | None = None) -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm progress bar as a ``progress(done, total)`` callable, or None when disabled.

    Parameters
    ----------
    enabled : bool
        Whether to show a bar. Default is True.
    desc, unit : str
        Bar label and unit.
    file : text stream, optional
        Where to draw. Default is ``sys.stderr``.
    """
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=desc, unit=unit, file=file or sys.stderr,
                            leave=False, dynamic_ncols=True))
        bar[0].update(done - bar[0].n)

    try:
        yield progress
    finally:
        if bar:
            bar[0].close()
