"""Combine kernels: pure numerics on one row section of the stack (no I/O, no logging).

Two implementations share one contract, :func:`combine_section`:

- :mod:`.reference` — plain, readable NumPy, written from docs/spec.md §6–§7; the yardstick.
- :mod:`.fast` — compiled (numba), fused per section; bit-identical to the reference.

Use :func:`combine_section` (or ``kernel="reference"``/``"fast"``) rather than the modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .spec import CombineSpec, ImageScalars, SectionResult

__all__ = ["CombineSpec", "ImageScalars", "SectionResult", "combine_section"]

KERNELS = ("fast", "reference")


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
