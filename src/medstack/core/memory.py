"""Memory planning: how many bytes a run holds at its peak, from its plan alone, and the plan
that keeps a run within a total budget (``--max-memory``).

The model counts what grows with the stack (not the interpreter, libraries and kernels): the
``workers + 1`` sections in flight (the workers and one read ahead), the weight pass before
them (never the peak: at most two sections' rows at 4 bytes a pixel) and the arrays kept for
the caller.

Notes
-----
drizzlepac's ``combine_bufsize`` bounds only the science rows of one input (and its real use
is 20–35 times that); ``max_memory`` bounds the total. When both are given, sections obey
both: ``combine_bufsize`` stays drizzlepac's per-input cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParameterError
from ..params import DEFAULT_BUFSIZE_MIB, MIB
from .sections import section_rows

__all__ = ["MemoryPlan", "peak_bytes", "plan_memory", "section_bytes", "weight_chunk_rows",
           "weight_pass_bytes"]

#: Bytes per input pixel of one section held by the work unit and the fast kernel: the float32
#: science and weight buffers (4 + 4).
BUFFER_BYTES_PER_PIXEL = 8
#: Bytes per output pixel of one section: the float32 result, uint16 count, uint8 flag and
#: minmed's per-pixel temporaries (a few float64 planes).
OUTPUT_BYTES_PER_PIXEL = 48
#: Bytes per input the weight pass reads at a time (each chunk mapped, then unmapped: fewer,
#: larger mappings cost less than many small ones).
WEIGHT_CHUNK_BYTES = 1 << 22
#: Bytes per output pixel of the arrays a run keeps for its caller (median 4, maps 2 + 1).
KEPT_BYTES_PER_PIXEL = 4
MAP_BYTES_PER_PIXEL = 3


def section_bytes(n_images: int, rows: int, nx: int) -> int:
    """Bytes one section in flight holds: input buffers plus per-pixel outputs/temporaries."""
    return rows * nx * (n_images * BUFFER_BYTES_PER_PIXEL + OUTPUT_BYTES_PER_PIXEL)


def peak_bytes(n_images: int, rows: int, nx: int, in_flight: int) -> int:
    """Bytes of ``in_flight`` sections at once (the executor's workers plus its read-ahead)."""
    return in_flight * section_bytes(n_images, rows, nx)


def weight_chunk_rows(nx: int, section_rows: int) -> int:
    """Rows per input the weight pass reads at a time: at most :data:`WEIGHT_CHUNK_BYTES` and
    at most two sections' rows (chunks of any size give the same sums, bit for bit)."""
    return max(1, min(2 * section_rows, WEIGHT_CHUNK_BYTES // (4 * nx)))


def weight_pass_bytes(n_images: int, nx: int, section_rows: int) -> int:
    """Bytes the weight pass holds: one chunk of every input."""
    return n_images * 4 * nx * weight_chunk_rows(nx, section_rows)


@dataclass(frozen=True)
class MemoryPlan:
    """Rows per section and sections in flight that fit a run's budget.

    Attributes
    ----------
    section_rows : int
        Rows read per section.
    workers : int
        Worker threads (``in_flight - 1``, at least 1).
    in_flight : int
        Sections held at once.
    peak_bytes : int
        The model's peak for this plan: the larger of the weight pass and the sections in
        flight, plus the kept arrays.
    max_memory_bytes : int or None
        The run's total budget (``max_memory``), if it has one. Default is None.
    """

    section_rows: int
    workers: int
    in_flight: int
    peak_bytes: int
    max_memory_bytes: int | None = None


def _fixed_bytes(n_images: int, shape: tuple[int, int], keep_data: bool, maps: bool) -> int:
    ny, nx = shape
    kept = ny * nx * (KEPT_BYTES_PER_PIXEL + (MAP_BYTES_PER_PIXEL if maps else 0))
    return kept if keep_data else 0


def plan_memory(
    n_images: int,
    shape: tuple[int, int],
    *,
    workers: int,
    grow: int = 0,
    bufsize_bytes: int | None = None,
    max_memory_bytes: int | None = None,
    keep_data: bool = False,
    maps: bool = False,
) -> MemoryPlan:
    """Plan the sections of a run from the memory model.

    Parameters
    ----------
    n_images : int
        Inputs.
    shape : (int, int)
        ``(ny, nx)`` of the images.
    workers : int
        Worker threads wanted (fewer are planned when the budget needs it).
    grow : int
        minmed's grow radius: a section holds at least ``2·grow + 1`` rows. Default is 0.
    bufsize_bytes : int, optional
        ``combine_bufsize`` in bytes: the science rows of one input per section. Default is
        4 MiB (:data:`medstack.params.DEFAULT_BUFSIZE_MIB`) when ``max_memory_bytes`` is not
        given, else no per-input cap.
    max_memory_bytes : int, optional
        The total the run may hold (the model's peak, without the baseline). Default is none.
    keep_data, maps : bool
        Whether the median (and the maps) are kept as arrays. Default is False.

    Returns
    -------
    MemoryPlan

    Raises
    ------
    ParameterError
        ``max_memory_bytes`` below what one section of ``2·grow + 1`` rows (or one row) and
        the kept arrays need, naming that minimum.
    """
    ny, nx = shape
    least = min(ny, max(1, 2 * grow + 1))
    if bufsize_bytes is None and max_memory_bytes is None:
        bufsize_bytes = int(DEFAULT_BUFSIZE_MIB * MIB)
    cap = ny if bufsize_bytes is None else section_rows(ny, nx, bufsize_bytes, grow)
    workers = max(1, int(workers))
    fixed = _fixed_bytes(n_images, shape, keep_data, maps)
    if max_memory_bytes is None:
        in_flight = workers + 1
        rows = cap
    else:
        per_row = section_bytes(n_images, 1, nx)
        rows, in_flight = 0, workers + 1
        while in_flight >= 1:
            rows = min(cap, (max_memory_bytes - fixed) // (in_flight * per_row))
            if rows >= least:
                break
            in_flight -= 1
        if in_flight < 1 or rows < least:
            need = fixed + per_row * least
            raise ParameterError(
                f"max_memory: {max_memory_bytes / 2**20:.4g} MiB is too small for "
                f"{n_images} inputs of {ny}x{nx}; it needs at least {need / 2**20:.4g} MiB"
            )
        workers = max(1, min(workers, in_flight - 1)) if in_flight > 1 else 1
    weight = weight_pass_bytes(n_images, nx, rows)
    n_sections = -(-ny // max(1, rows - 2 * grow)) if rows < ny else 1
    peak = max(weight, peak_bytes(n_images, rows, nx, min(in_flight, n_sections))) + fixed
    return MemoryPlan(section_rows=int(rows), workers=workers, in_flight=in_flight,
                      peak_bytes=int(peak), max_memory_bytes=max_memory_bytes)
