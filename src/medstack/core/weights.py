"""Weight masks (``median_newmasks``, ``combine_maskpt``; docs/spec.md §4).

A pixel of image *i* is bad where its weight is below ``combine_maskpt × mean_i`` (compared in
float64), ``mean_i`` being the mean of that image's finite weights ≥ float32(1e-8), summed
sequentially in float64 and rounded to float32, as drizzlepac's ImageStats does. The weight
pass (:func:`weight_stats_many`) reads each image's weights once for these means.

Notes
-----
drizzlepac lets one NaN weight switch masking off for its whole image (docs/deviations.md
Q16), one +inf weight mask its whole image, and leaves an all-zero weight image unmasked (Q17).
medstack leaves NaN and ±inf weights out of the mean and masks them, and masks an image with
no finite weight ≥ 1e-8 entirely.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..io.readers import RawReader, Reader
from ..kernels import WEIGHT_LANES, Kernels, weight_sums
from ..kernels.spec import MIN_WEIGHT
from .memory import weight_chunk_rows
from .plan import StackPlan

__all__ = ["MIN_WEIGHT", "WeightMean", "WeightStats", "mask_threshold", "thresholds_of",
           "weight_groups", "weight_stats", "weight_stats_many"]

log = logging.getLogger(__name__)


@dataclass
class WeightMean:
    """Accumulates one image's mean weight over row sections, in stack row order: a
    sequential float64 sum, as drizzlepac's C ``computeMean``, the same whatever the sections.
    """

    total: float = 0.0
    count: int = 0
    nan_count: int = 0

    def add(self, weights: np.ndarray, kernel: Kernels | str = "fast") -> None:
        """Add a block of weights (any shape, float32 of either byte order), in C order."""
        WeightMean.add_blocks([self], [weights], kernel)

    @staticmethod
    def add_blocks(accs: list[WeightMean], blocks: list[np.ndarray],
                   kernel: Kernels | str = "fast") -> None:
        """Add one block of weights to each accumulator: a sequential pass per image (the fast
        kernel: compiled, up to six images side by side, reading float32 of either byte order
        where it lies; the same bits with the reference one)."""
        flat = [np.ravel(np.asarray(b)) for b in blocks]
        flat = [b if b.dtype.kind == "f" and b.dtype.itemsize == 4 else b.astype(np.float32)
                for b in flat]
        sizes = {b.size for b in flat}
        if len(sizes) > 1:  # blocks of different sizes: one image at a time
            for acc, block in zip(accs, flat):
                WeightMean.add_blocks([acc], [block], kernel)
            return
        if not sizes or 0 in sizes:
            return
        totals, counts, nans = weight_sums(flat, [acc.total for acc in accs], kernel)
        for acc, total, count, nan in zip(accs, totals, counts, nans):
            acc.total = total
            acc.count += count
            acc.nan_count += nan

    @property
    def mean(self) -> float | None:
        """The mean weight as drizzlepac sees it (a float32 value), or None if no weight ≥ 1e-8."""
        return float(np.float32(self.total / self.count)) if self.count else None


@dataclass(frozen=True)
class WeightStats:
    """What the masks of one image need: its mean weight and its count of NaN/inf weights."""

    mean: float | None
    nan_count: int


def mask_threshold(mean: float | None, maskpt: float) -> float:
    """``mean × maskpt`` in float64; +inf (all masked) when the image has no weight ≥ 1e-8
    (Q17)."""
    return float("inf") if mean is None else float(mean) * float(maskpt)


def weight_stats(reader: Reader, rows: int, kernel: Kernels | str = "fast") -> WeightStats:
    """One image's mean weight, reading ``rows`` rows at a time, in order."""
    return weight_stats_many([reader], rows, kernel)[0]


def weight_stats_many(readers: Sequence[Reader], rows: int, kernel: Kernels | str = "fast"
                      ) -> list[WeightStats]:
    """The mean weights of several images of one shape, read together ``rows`` rows at a time
    (their sequential sums run side by side, see :meth:`WeightMean.add_blocks`).

    Plain float32 files (a mappable :class:`RawReader` each) are summed where they lie, chunk
    by chunk, the next chunk prefetched meanwhile: cheaper than copying the rows into a
    buffer, which other inputs are read into."""
    accs = [WeightMean() for _ in readers]
    ny, nx = readers[0].shape
    # the sums are sequential, so no chunk size changes a bit
    rows = weight_chunk_rows(nx, rows)
    mapped = all(isinstance(r, RawReader) and r.mappable for r in readers)
    bufs = None if mapped else np.empty((len(readers), min(rows, ny), nx), dtype=np.float32)
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        if mapped:
            if y1 < ny:
                for reader in readers:
                    reader.prefetch(y1, min(ny, y1 + rows))  # type: ignore[union-attr]
            blocks = [reader.rows(y0, y1) for reader in readers]  # type: ignore[union-attr]
        else:
            assert bufs is not None
            blocks = [reader.read(y0, y1, out=bufs[i, : y1 - y0])
                      for i, reader in enumerate(readers)]
        WeightMean.add_blocks(accs, blocks, kernel)
        blocks = []  # (the mapped rows go with their views)
    return [WeightStats(acc.mean, acc.nan_count) for acc in accs]


def weight_groups(n: int, workers: int) -> list[range]:
    """Images split into groups of at most :data:`~medstack.kernels.WEIGHT_LANES` (whose
    sums one kernel call runs side by side), a multiple of ``workers`` groups if possible (so
    that every thread gets as many images)."""
    groups = min(n, -(-n // (WEIGHT_LANES * workers)) * workers)  # ceil(ceil(n / lanes) / workers)
    size, extra = divmod(n, groups)
    return [range(g * size + min(g, extra), (g + 1) * size + min(g + 1, extra))
            for g in range(groups)]


def thresholds_of(plan: StackPlan, stats: Sequence[WeightStats]) -> np.ndarray | None:
    """Per-image mask thresholds, with a warning for each image that needs one."""
    if not plan.params.median_newmasks:
        return None
    for img, st in zip(plan.images, stats):
        if st.mean is None:
            log.warning("%s: no weight >= 1e-8; the whole image is masked", img.wht)
        if st.nan_count:
            log.warning("%s: %d NaN/inf weights, treated as bad pixels (left out of the mean "
                        "weight)", img.wht, st.nan_count)
    return np.array([mask_threshold(st.mean, plan.params.combine_maskpt) for st in stats],
                    dtype=np.float64)

