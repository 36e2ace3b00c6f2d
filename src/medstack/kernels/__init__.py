"""Combine kernels: pure numerics on one row section of the stack (no I/O, no logging).

Two implementations share one contract, :func:`combine_section`:

- :mod:`.reference` — plain, readable NumPy, written from docs/spec.md §6–§7; the yardstick.
- :mod:`.fast` — compiled C (``_fast.c``, built at installation, loaded with ctypes), fused
  per section; bit-identical to the reference.

Use :func:`combine_section` (or ``kernel="reference"``/``"fast"``) rather than the modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import MedstackError
from .spec import CombineSpec, ImageScalars, SectionResult

__all__ = ["CombineSpec", "ImageScalars", "KernelsNotBuilt", "SectionResult", "choose_kernel",
           "combine_section", "count_nonfinite", "fast_unavailable", "weight_sums"]

KERNELS = ("fast", "reference")

#: Images whose sequential weight sums one call of the fast weight kernel runs side by side.
WEIGHT_LANES = 6


class KernelsNotBuilt(MedstackError):
    """The compiled kernels' library is missing or cannot be loaded (it is built when medstack
    is installed with a C compiler present; ``medstack-compile`` builds it later)."""


def fast_unavailable() -> str | None:
    """Why the compiled kernels cannot run here (one line), or None when they can."""
    try:
        from . import fast  # noqa: F401
    except KernelsNotBuilt as err:
        return str(err)
    return None


def choose_kernel(kernel: str) -> str:
    """The implementation a run uses: ``kernel`` itself, or for ``"auto"`` the compiled
    kernels, and the reference ones where the compiled library is not built (the same bits,
    several times slower).

    Raises
    ------
    KernelsNotBuilt
        ``kernel="fast"`` where the compiled library is not built.
    """
    if kernel == "auto":
        return "fast" if fast_unavailable() is None else "reference"
    if kernel not in KERNELS:
        raise ValueError(f"kernel: unknown value {kernel!r}; choose one of: auto, "
                         f"{', '.join(KERNELS)}")
    if kernel == "fast":
        why = fast_unavailable()
        if why is not None:
            raise KernelsNotBuilt(f"kernel: fast: {why}")
    return kernel


def _impl(kernel: str):  # type: ignore[no-untyped-def]
    if kernel == "reference":
        from . import reference as impl
    elif kernel == "fast":
        from . import fast as impl  # type: ignore[no-redef]
    else:
        raise ValueError(f"kernel: unknown value {kernel!r}; choose one of: {', '.join(KERNELS)}")
    return impl


def weight_sums(blocks: Sequence[np.ndarray], totals: Sequence[float], kernel: str = "fast"
                ) -> tuple[list[float], list[int], list[int]]:
    """Per image: the running sequential float64 sum of its finite weights >= float32(1e-8)
    from ``totals``, how many it added, how many were NaN/±inf (see
    :func:`medstack.kernels.fast.weight_sums`); the same bits with either kernel."""
    return _impl(kernel).weight_sums(blocks, totals)


def count_nonfinite(values: np.ndarray, kernel: str = "fast") -> int:
    """How many NaN/±inf values a float32 array (either byte order) holds."""
    return int(_impl(kernel).count_nonfinite(values))


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
    impl = _impl(kernel)
    n_rows = sci.shape[1] if isinstance(sci, np.ndarray) else np.shape(sci[0])[0]
    lo, hi = (0, n_rows) if rows is None else rows
    if spec.kind == "minmed" and (wht is None or scalars is None):
        raise ValueError("minmed needs weights and per-image scalars")
    if thresholds is not None and wht is None:
        raise ValueError("weight masks need weights")
    return impl.combine_section(
        sci, wht, spec, thresholds=thresholds, scalars=scalars, rows=(lo, hi)
    )
