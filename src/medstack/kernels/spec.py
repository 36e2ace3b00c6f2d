"""The kernels' contract: what to compute (:class:`CombineSpec`), the per-image scalars of
minmed's noise model (:class:`ImageScalars`) and one section's output rows
(:class:`SectionResult`). Both implementations, and their callers, share these types."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

if TYPE_CHECKING:
    from ..params import MedianParams

#: Weights below this do not count in an image's mean weight (drizzlepac's ImageStats
#: ``lower=1e-8``), in every implementation of the weight pass.
MIN_WEIGHT = np.float32(1e-8)

__all__ = ["CombineSpec", "ImageScalars", "Planes", "SectionResult", "WeightSums"]

#: A stack of float32 planes: an (N, r, nx) array, or N arrays of shape (r, nx).
Planes: TypeAlias = "np.ndarray | Sequence[np.ndarray]"
#: What a weight pass returns: per image, the running sum, the weights added, the NaN/±inf.
WeightSums: TypeAlias = "tuple[list[float], list[int], list[int]]"


@dataclass(frozen=True)
class CombineSpec:
    """What to compute, independent of the data.

    Attributes
    ----------
    kind : str
        ``minmed``, ``median``, ``mean``, ``sum`` or ``nanmedian``.
    fill : bool
        ``i`` types: where no input is good, use the first non-zero value in stack order.
    nlow, nhigh : int
        Lowest/highest good values rejected per pixel (median and mean).
    lthresh, hthresh : float or None
        Values ``< lthresh`` or ``>= hthresh`` are rejected (median and mean), compared in
        float32.
    nsigma1, nsigma2 : float
        minmed significance thresholds.
    grow : int
        minmed grow radius in pixels.
    weight_masks : bool
        Whether weight masks are in use; selects drizzlepac's readnoise model (float64 sum over
        good images with masks, a float32 constant without).
    fillval : float
        Output where no input is good.
    dtype : str
        The output's dtype: ``float32``, or for ``nanmedian`` (the frames door: NumPy's
        ``nanmedian``) the frames' own. Default is float32.
    """

    kind: str
    fill: bool = False
    nlow: int = 0
    nhigh: int = 0
    lthresh: float | None = None
    hthresh: float | None = None
    nsigma1: float = 4.0
    nsigma2: float = 3.0
    grow: int = 1
    weight_masks: bool = True
    fillval: float = 0.0
    dtype: str = "float32"

    @classmethod
    def from_params(cls, params: MedianParams) -> CombineSpec:
        """Build from :class:`medstack.params.MedianParams`."""
        return cls(kind=params.kind, fill=params.fill, nlow=params.combine_nlow,
                   nhigh=params.combine_nhigh, lthresh=params.combine_lthresh,
                   hthresh=params.combine_hthresh, nsigma1=params.combine_nsigma[0],
                   nsigma2=params.combine_nsigma[1], grow=params.grow_px,
                   weight_masks=params.median_newmasks, fillval=params.fillval)


@dataclass(frozen=True)
class ImageScalars:
    """Per-image scalars for minmed's noise model (length-N float64 arrays): ``exptime`` in
    seconds, ``sky`` and ``readnoise`` in electrons."""

    exptime: np.ndarray
    sky: np.ndarray
    readnoise: np.ndarray

    @classmethod
    def of(cls, exptime: Sequence[float] | np.ndarray, sky: Sequence[float] | np.ndarray,
           readnoise: Sequence[float] | np.ndarray) -> ImageScalars:
        """Build from three sequences."""
        return cls(*(np.asarray(v, dtype=np.float64) for v in (exptime, sky, readnoise)))


@dataclass(slots=True)
class SectionResult:
    """Output rows of one section, and what was counted on the way (slots: no other attribute
    can be set on one).

    Attributes
    ----------
    median : ndarray (rows, nx) float32
        The combined image.
    ngood : ndarray (rows, nx) uint16
        Number of good inputs per pixel (after masks, NaN and thresholds).
    minchosen : ndarray (rows, nx) uint8 or None
        minmed only: 1 where the minimum was chosen over the median. Default is None.
    nonfinite : ndarray (N,) int64
        Per image, the NaN/±inf science values in the output rows (they are masked); both
        kernels count them. Default is empty (not counted: rows put together from pieces).
    masked : ndarray (N,) int64 or None
        Per image, the output-row pixels its weight mask rejects, counted only when asked for
        (:func:`medstack.core.unit.compute_section`, ``count_masked``). Default is None.
    """

    median: np.ndarray
    ngood: np.ndarray
    minchosen: np.ndarray | None = None
    nonfinite: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    masked: np.ndarray | None = None
