"""The frames' median: NumPy's ``nanmedian`` over a cube of frames, computed from the frames
that cover each pixel (pure numerics, no I/O).

A section's rows are cut into rectangles over which the same frames hold data; each
rectangle is combined from those frames alone (the others are NaN there, and NaN is no data),
so the work follows the covered pixels, not the number of frames times the mosaic. The
compiled kernel (``medstack_nanmedian_f32``/``_f64`` in ``_fast.c``) reads each frame where it
lies; the reference (:func:`medstack.kernels.reference.nanmedian`) stacks them into a dense
block. Both give the same bits.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import reference

__all__ = ["BIG_STACK", "FrameRows", "combine_frames"]

#: From this many frames on, NumPy's ``nanmedian`` takes its other path (``np.median`` per
#: pixel instead of the masked median), which rounds an odd count's middle value differently.
BIG_STACK = 600


@dataclass(frozen=True)
class FrameRows:
    """One frame's values in a section's rows.

    Attributes
    ----------
    index : int
        The frame's number, from 0 (frames are combined in this order).
    values : ndarray, 2-D
        Its values there (rows of its footprint), unit column stride.
    row0 : int
        The section-local row of ``values[0]``.
    col0 : int
        The image column of ``values[:, 0]``.
    """

    index: int
    values: np.ndarray
    row0: int
    col0: int

    @property
    def row1(self) -> int:
        return self.row0 + self.values.shape[0]

    @property
    def col1(self) -> int:
        return self.col0 + self.values.shape[1]


def _cuts(edges: Sequence[int], lo: int, hi: int) -> list[int]:
    return sorted({lo, hi, *(e for e in edges if lo < e < hi)})


def rectangles(parts: Sequence[FrameRows], rows: int, cols: int
               ) -> list[tuple[int, int, int, int, list[FrameRows]]]:
    """The rectangles ``(r0, r1, c0, c1, frames)`` of ``rows × cols`` over which the same
    frames (in frame order) hold data; pixels no frame covers are left out."""
    out = []
    row_cuts = _cuts([e for p in parts for e in (p.row0, p.row1)], 0, rows)
    for r0, r1 in zip(row_cuts, row_cuts[1:]):
        band = [p for p in parts if p.row0 <= r0 and p.row1 >= r1]
        col_cuts = _cuts([e for p in band for e in (p.col0, p.col1)], 0, cols)
        for c0, c1 in zip(col_cuts, col_cuts[1:]):
            cover = sorted((p for p in band if p.col0 <= c0 and p.col1 >= c1),
                           key=lambda p: p.index)
            if cover:
                out.append((r0, r1, c0, c1, cover))
    return out


@lru_cache(maxsize=2)
def _kernel(dtype: str) -> Any:
    from . import fast  # raises KernelsNotBuilt where the library is not built

    p, i, q = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    fn = getattr(fast._lib, f"medstack_nanmedian_{'f32' if dtype == 'float32' else 'f64'}")
    fn.argtypes = (p, p, i, q, q, p, q, p, q, i, i)
    fn.restype = ctypes.c_int
    return fn


def combine_frames(parts: Sequence[FrameRows], out: np.ndarray, ngood: np.ndarray,
                   n_frames: int, kernel: str = "fast") -> None:
    """Fill a section's output rows with NumPy's ``nanmedian`` of the frames.

    Parameters
    ----------
    parts : sequence of FrameRows
        The frames that hold data in these rows (all other frames are NaN here).
    out : ndarray, shape (rows, nx), float32 or float64, C-contiguous
        The median; the frames' dtype.
    ngood : ndarray, shape (rows, nx), uint16, C-contiguous
        The number of non-NaN values per pixel (at most 65535).
    n_frames : int
        Frames in the whole stack (NumPy's path depends on it: :data:`BIG_STACK`).
    kernel : {"fast", "reference"}
        Implementation; the same bits. Default is "fast".
    """
    out.fill(np.nan)  # the canonical NaN, as NumPy gives where no frame has data
    ngood.fill(0)
    big = n_frames >= BIG_STACK
    item = out.itemsize
    for r0, r1, c0, c1, cover in rectangles(parts, out.shape[0], out.shape[1]):
        nan_last = big and cover[-1].index == n_frames - 1
        views = [p.values[r0 - p.row0:r1 - p.row0, c0 - p.col0:c1 - p.col0] for p in cover]
        if kernel == "reference":
            block = np.stack(views)
            med, count = reference.nanmedian(block, n_frames, block[-1] if nan_last else None)
            out[r0:r1, c0:c1] = med
            ngood[r0:r1, c0:c1] = np.minimum(count, 65535)
            continue
        for v in views:
            if v.dtype != out.dtype or v.strides[1] != item or v.strides[0] % item:
                raise TypeError(f"frame rows: {v.dtype} with strides {v.strides}; expected "
                                f"{out.dtype} with unit column stride")
        ptrs = np.array([v.ctypes.data for v in views], dtype=np.int64)
        strides = np.array([v.strides[0] // item for v in views], dtype=np.int64)
        status = _kernel(out.dtype.name)(
            ptrs.ctypes.data, strides.ctypes.data, len(views), r1 - r0, c1 - c0,
            out[r0:, c0:].ctypes.data, out.shape[1], ngood[r0:, c0:].ctypes.data,
            ngood.shape[1], int(big), int(nan_last))
        if status != 0:
            raise MemoryError("medstack_nanmedian: no memory for the kernel's scratch buffer")
