"""The frames' median: NumPy's ``nanmedian`` over a cube of frames, computed from the frames
that cover each pixel (pure numerics, no I/O), so the work follows the covered pixels, not the
number of frames times the mosaic. The compiled kernel reads each frame where it lies; the
reference (:func:`medstack.kernels.reference.nanmedian`) stacks them per rectangle over which
the same frames hold data (:func:`rectangles`). Both give the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import reference
from .networks import median_network

__all__ = ["BIG_STACK", "FrameRows", "combine_frames", "footprint"]

#: From this many frames on, NumPy's ``nanmedian`` takes its other path (``np.median`` per
#: pixel instead of the masked median), which rounds an odd count's middle value differently.
BIG_STACK = 600
#: Up to this many covering frames the compiled kernel sorts blocks of pixels with a comparator
#: network; beyond, it selects each pixel's middle values one pixel at a time (``NM_NET_MAX``
#: in ``_fast.c``).
NETWORK_MAX = 64
#: The suffix of the compiled kernels for each element type.
_SUFFIX = {"float32": "f32", "float64": "f64"}


@dataclass(frozen=True)
class FrameRows:
    """One frame's values in a section's rows: the frame's number ``index`` (from 0, the
    order frames are combined in), its ``values`` there (2-D, the rows of its footprint, unit
    column stride), the section-local row of ``values[0]`` and the image column of
    ``values[:, 0]``."""

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


@lru_cache(maxsize=1)
def _networks() -> tuple[np.ndarray, np.ndarray]:
    """For k = 0 … NETWORK_MAX values, the comparators that sort the positions of a padded
    median (:func:`medstack.kernels.networks.median_network`), end to end, and where each
    network starts (pairs; ``offsets[k + 1] - offsets[k]`` of them)."""
    nets = [np.zeros((0, 2), np.int32)] + [median_network(k, (k + 1) // 2)
                                           for k in range(1, NETWORK_MAX + 1)]
    offsets = np.cumsum([0] + [len(n) for n in nets]).astype(np.int32)
    return np.ascontiguousarray(np.concatenate(nets), dtype=np.int32), offsets


def footprint(valid: np.ndarray, kernel: str = "fast") -> tuple[int, int, int, int] | None:
    """The bounding box ``(y0, y1, x0, x1)`` of a frame's valid pixels, or None when it has
    none. ``valid`` is a boolean array (True: valid) or the frame itself (valid: not NaN; the
    compiled kernel scans it where it lies)."""
    step = valid.itemsize
    if (valid.dtype != bool and kernel == "fast" and valid.dtype.isnative
            and valid.strides[1] == step and valid.strides[0] >= 0 and valid.strides[0] % step == 0):
        from . import fast  # raises KernelsNotBuilt where the library is not built

        (ny, nx), stride = valid.shape, valid.strides[0] // step
        # the memory the kernel reads, ny rows of nx values stride values apart, as one array
        span = as_strided(valid, ((ny - 1) * stride + nx,), (step,), writeable=False)
        box = np.zeros(4, dtype=np.int64)
        fast._call(f"medstack_footprint_{_SUFFIX[valid.dtype.name]}", data=span, ny=ny, nx=nx,
                   stride=stride, box=box)
        y0, y1, x0, x1 = (int(v) for v in box)
        return (y0, y1, x0, x1) if y1 > y0 else None
    if valid.dtype != bool:
        valid = ~np.isnan(valid)
    rows = np.flatnonzero(valid.any(axis=1))
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(valid[y0:y1].any(axis=0))
    return y0, y1, int(cols[0]), int(cols[-1]) + 1


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
    big = n_frames >= BIG_STACK
    parts = sorted(parts, key=lambda p: p.index)
    if kernel != "reference":
        from . import fast

        item = out.itemsize
        for p in parts:  # (the kernel reads them by address)
            v = p.values
            if v.dtype != out.dtype or v.strides[1] != item or v.strides[0] % item:
                raise TypeError(f"frame rows: {v.dtype} with strides {v.strides}; expected "
                                f"{out.dtype} with unit column stride")
        if ngood.shape != out.shape:
            raise TypeError(f"combine_frames: ngood {ngood.shape} and out {out.shape} differ")
        nets, offsets = _networks()
        fast._call(f"medstack_nanmedian_tiles_{_SUFFIX[out.dtype.name]}",
                   ptrs=np.array([p.values.ctypes.data for p in parts], dtype=np.int64),
                   strides=np.array([p.values.strides[0] // item for p in parts], np.int64),
                   box=np.array([(p.row0, p.row1, p.col0, p.col1) for p in parts],
                                dtype=np.int64).reshape(-1, 4),
                   last_frame=np.array([p.index == n_frames - 1 for p in parts], np.uint8),
                   ntiles=len(parts), rows=out.shape[0], cols=out.shape[1], out=out,
                   ngood=ngood, big=big, nets=nets, offs=offsets)
        return
    out.fill(np.nan)  # the canonical NaN, as NumPy gives where no frame has data
    ngood.fill(0)
    for r0, r1, c0, c1, cover in rectangles(parts, out.shape[0], out.shape[1]):
        nan_last = big and cover[-1].index == n_frames - 1
        block = np.stack([p.values[r0 - p.row0:r1 - p.row0, c0 - p.col0:c1 - p.col0]
                          for p in cover])
        med, count = reference.nanmedian(block, n_frames, block[-1] if nan_last else None)
        out[r0:r1, c0:c1] = med
        ngood[r0:r1, c0:c1] = np.minimum(count, 65535)
