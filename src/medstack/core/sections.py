"""Row sections: pure planning, no I/O. How many rows a section reads comes from the memory
model (:mod:`medstack.core.memory`); minmed's grow box needs ``grow`` rows of context on each
side, so a section reads ``grow`` extra rows (halo) above and below the rows it outputs, and
always holds at least ``2·grow + 1`` rows.

Notes
-----
drizzlepac silently shrinks ``grow`` when the buffer holds fewer than ``2·grow + 1`` rows, so its
result depends on ``combine_bufsize`` and on the image height (docs/spec.md Q18). medstack
instead lets such a section exceed the buffer; the result never depends on the buffer size.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Section", "plan_sections", "section_rows"]


@dataclass(frozen=True)
class Section:
    """One row section.

    Attributes
    ----------
    index : int
        Position in the plan, from 0.
    read : (int, int)
        Image rows ``[start, stop)`` read from every input (output rows plus halo).
    out : (int, int)
        Image rows ``[start, stop)`` this section writes.
    """

    index: int
    read: tuple[int, int]
    out: tuple[int, int]

    @property
    def local(self) -> tuple[int, int]:
        """The output rows relative to the rows read."""
        return self.out[0] - self.read[0], self.out[1] - self.read[0]

    @property
    def nrows(self) -> int:
        """Rows read."""
        return self.read[1] - self.read[0]


def section_rows(ny: int, nx: int, bufsize_bytes: int, grow: int = 0, itemsize: int = 4) -> int:
    """Rows per section: as many as fit in ``bufsize_bytes`` per input, at least 1 and at least
    ``2·grow + 1``, at most ``ny``.

    Parameters
    ----------
    ny, nx : int
        Image shape.
    bufsize_bytes : int
        Buffer per input image, in bytes (``combine_bufsize`` × 1 MiB).
    grow : int
        minmed grow radius in pixels (0 for other types).
    itemsize : int
        Bytes per science pixel (4 for float32). Default is 4.
    """
    rows = bufsize_bytes // (nx * itemsize)
    rows = max(rows, 1, 2 * grow + 1)
    return min(rows, ny)


def plan_sections(ny: int, rows: int, grow: int = 0) -> list[Section]:
    """Cut ``ny`` image rows into sections reading at most ``rows`` rows each.

    Each section outputs ``rows − 2·grow`` rows (the last one fewer) and reads ``grow`` rows of
    halo on each side where the image has them. Output ranges tile ``[0, ny)`` exactly.
    """
    if ny <= 0:
        return []
    if rows >= ny:
        return [Section(0, (0, ny), (0, ny))]
    step = rows - 2 * grow
    if step < 1:
        raise ValueError(f"section of {rows} rows cannot hold grow={grow} (needs {2 * grow + 1})")
    sections: list[Section] = []
    start = 0
    while start < ny:
        stop = min(start + step, ny)
        read = (max(0, start - grow), min(ny, stop + grow))
        sections.append(Section(len(sections), read, (start, stop)))
        start = stop
    return sections
