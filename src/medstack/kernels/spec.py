"""The kernels' contract: what to compute (:class:`CombineSpec`), the per-image scalars of
minmed's noise model (:class:`ImageScalars`) and one section's output rows
(:class:`SectionResult`). Both implementations, and their callers, share these types."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Weights below this do not count in an image's mean weight (drizzlepac's ImageStats
#: ``lower=1e-8``), in every implementation of the weight pass.
MIN_WEIGHT = np.float32(1e-8)

__all__ = ["CombineSpec", "ImageScalars", "SectionResult"]


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
    def from_params(cls, params) -> CombineSpec:  # type: ignore[no-untyped-def]
        """Build from :class:`medstack.params.MedianParams`."""
        return cls(
            kind=params.kind,
            fill=params.fill,
            nlow=params.combine_nlow,
            nhigh=params.combine_nhigh,
            lthresh=params.combine_lthresh,
            hthresh=params.combine_hthresh,
            nsigma1=params.combine_nsigma[0],
            nsigma2=params.combine_nsigma[1],
            grow=params.grow_px,
            weight_masks=params.median_newmasks,
            fillval=params.fillval,
        )


@dataclass(frozen=True)
class ImageScalars:
    """Per-image scalars for minmed's noise model (length-N float64 arrays).

    ``exptime`` in seconds, ``sky`` in electrons, ``readnoise`` in electrons.
    """

    exptime: np.ndarray
    sky: np.ndarray
    readnoise: np.ndarray

    @classmethod
    def of(cls, exptime, sky, readnoise) -> ImageScalars:  # type: ignore[no-untyped-def]
        """Build from three sequences."""
        return cls(
            np.asarray(exptime, dtype=np.float64),
            np.asarray(sky, dtype=np.float64),
            np.asarray(readnoise, dtype=np.float64),
        )


@dataclass
class SectionResult:
    """Output rows of one section.

    Attributes
    ----------
    median : ndarray (rows, nx) float32
        The combined image.
    ngood : ndarray (rows, nx) uint16
        Number of good inputs per pixel (after masks, NaN and thresholds).
    minchosen : ndarray (rows, nx) uint8 or None
        minmed only: 1 where the minimum was chosen over the median.
    """

    median: np.ndarray
    ngood: np.ndarray
    minchosen: np.ndarray | None = None
