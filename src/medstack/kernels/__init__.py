"""Combine kernels: pure numerics on one row section of the stack (no I/O, no logging).

Two implementations share one contract, :func:`combine_section`:

- :mod:`.reference` — plain, readable NumPy, written from docs/spec.md §6–§7; the yardstick.
- :mod:`.fast` — compiled (numba), fused per section; bit-identical to the reference.

Use :func:`combine_section` (or ``kernel="reference"``/``"fast"``) rather than the modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CombineSpec", "ImageScalars", "SectionResult", "combine_section"]

KERNELS = ("fast", "reference")


@dataclass(frozen=True)
class CombineSpec:
    """What to compute, independent of the data.

    Attributes
    ----------
    kind : str
        ``minmed``, ``median``, ``mean`` or ``sum``.
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


def combine_section(
    sci: np.ndarray | Sequence[np.ndarray],
    wht: np.ndarray | Sequence[np.ndarray] | None,
    spec: CombineSpec,
    *,
    thresholds: np.ndarray | None = None,
    scalars: ImageScalars | None = None,
    rows: tuple[int, int] | None = None,
    kernel: str = "fast",
) -> SectionResult:
    """Combine one section of the stack.

    Parameters
    ----------
    sci : ndarray, shape (N, r, nx), or sequence of N ndarrays of shape (r, nx); float32
        Science rows of the N images, electrons/s, native or big-endian (FITS) byte order; a
        sequence lets the planes be views of N different files. NaN and ±inf are treated as
        masked.
    wht : same layout as ``sci``, or None
        Weight rows. Needed for weight masks and for minmed; NaN and ±inf weights are bad
        pixels and count as 0 in minmed's noise model.
    spec : CombineSpec
        What to compute.
    thresholds : ndarray, shape (N,), float64, optional
        Per-image weight thresholds (``combine_maskpt × mean weight``); a pixel is bad where its
        weight is below its image's threshold (compared in float64). None: no weight masks.
    scalars : ImageScalars, optional
        Per-image exptime/sky/readnoise (minmed only).
    rows : (int, int), optional
        Local rows ``[lo, hi)`` to return (the rest is grow halo). Default is all rows.
    kernel : {"fast", "reference"}
        Implementation. Both give the same bits.

    Returns
    -------
    SectionResult
    """
    if kernel == "reference":
        from . import reference as impl
    elif kernel == "fast":
        from . import fast as impl  # type: ignore[no-redef]
    else:
        raise ValueError(f"kernel: unknown value {kernel!r}; choose one of: {', '.join(KERNELS)}")
    n_rows = sci.shape[1] if isinstance(sci, np.ndarray) else np.shape(sci[0])[0]
    lo, hi = (0, n_rows) if rows is None else rows
    if spec.kind == "minmed" and (wht is None or scalars is None):
        raise ValueError("minmed needs weights and per-image scalars")
    if thresholds is not None and wht is None:
        raise ValueError("weight masks need weights")
    return impl.combine_section(
        sci, wht, spec, thresholds=thresholds, scalars=scalars, rows=(lo, hi)
    )
