"""Weight masks (``median_newmasks``, ``combine_maskpt``), docs/spec.md §4, with
docs/deviations.md Q16/Q17.

A pixel of image *i* is bad where its weight is below ``combine_maskpt × mean_i``, where
``mean_i`` is the mean of that image's finite weights ≥ float32(1e-8), summed sequentially in
float64 and rounded to float32, exactly as drizzlepac's ImageStats does. The comparison is
made in float64.

Notes
-----
drizzlepac lets one NaN weight switch masking off for its whole image (Q16), lets one +inf
weight make the mean infinite and so mask the whole image, and leaves an all-zero weight image
unmasked (Q17). medstack leaves NaN and ±inf weights out of the mean and masks them, and
masks an image with no finite weight ≥ 1e-8 entirely.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .kernels import reference

__all__ = ["MIN_WEIGHT", "WeightMean", "WeightStats", "mask_threshold", "weight_mask"]

#: Weights below this are not counted in an image's mean weight (ImageStats ``lower=1e-8``).
MIN_WEIGHT = np.float32(1e-8)


@dataclass
class WeightMean:
    """Accumulates one image's mean weight over row sections, in stack row order.

    The sum is sequential in float64, as drizzlepac's C ``computeMean`` does, so the result is
    the same whatever the section size.
    """

    total: float = 0.0
    count: int = 0
    nan_count: int = 0

    def add(self, weights: np.ndarray) -> None:
        """Add a block of weights (any shape, float32 of either byte order), in C order."""
        WeightMean.add_blocks([self], [weights])

    @staticmethod
    def add_blocks(accs: list[WeightMean], blocks: list[np.ndarray]) -> None:
        """Add one block of weights to each accumulator: a compiled sequential pass per image,
        up to six images side by side, reading float32 of either byte order where it lies."""
        from .kernels.fast import weight_sums

        flat = [np.ravel(np.asarray(b)) for b in blocks]
        flat = [b if b.dtype.kind == "f" and b.dtype.itemsize == 4 else b.astype(np.float32)
                for b in flat]
        sizes = {b.size for b in flat}
        if len(sizes) > 1:  # blocks of different sizes: one image at a time
            for acc, block in zip(accs, flat):
                WeightMean.add_blocks([acc], [block])
            return
        if not sizes or 0 in sizes:
            return
        totals, counts, nans = weight_sums(flat, [acc.total for acc in accs])
        for acc, total, count, nan in zip(accs, totals, counts, nans):
            acc.total = total
            acc.count += count
            acc.nan_count += nan

    @property
    def mean(self) -> float | None:
        """The mean weight as drizzlepac sees it (a float32 value), or None if no weight ≥ 1e-8."""
        if self.count == 0:
            return None
        return float(np.float32(self.total / self.count))


@dataclass(frozen=True)
class WeightStats:
    """What the masks of one image need: its mean weight and the resulting threshold."""

    mean: float | None
    nan_count: int

    def threshold(self, maskpt: float) -> float:
        """Pixels with weight below this are bad; +inf masks everything (no usable weight)."""
        return mask_threshold(self.mean, maskpt)


def mask_threshold(mean: float | None, maskpt: float) -> float:
    """``mean × maskpt`` in float64; +inf when the image has no weight ≥ 1e-8 (Q17)."""
    if mean is None:
        return float("inf")
    return float(mean) * float(maskpt)


def weight_mask(weights: np.ndarray, thresholds: Iterable[float] | np.ndarray) -> np.ndarray:
    """Bad-pixel mask of a section: ``weight < threshold`` (float64 compare), or a NaN or ±inf
    weight.

    Parameters
    ----------
    weights : ndarray, shape (N, rows, nx), float32
        Weight section of the N images.
    thresholds : sequence of float, length N
        Per-image thresholds from :func:`mask_threshold`.

    Returns
    -------
    ndarray of bool, shape (N, rows, nx)
        True where the pixel is bad.
    """
    return reference.weight_mask(weights, np.asarray(list(thresholds), dtype=np.float64))
