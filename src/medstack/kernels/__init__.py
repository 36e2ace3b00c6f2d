"""Combine kernels: pure numerics on one row section of the stack (no I/O, no logging).

Two implementations share one contract, :func:`combine_section`:

- :mod:`.reference` — plain, readable NumPy, written from docs/spec.md §6–§7; the yardstick.
- :mod:`.fast` — compiled (numba), fused per section; bit-identical to the reference.

Use :func:`combine_section` (or ``kernel="reference"``/``"fast"``) rather than the modules.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from .spec import CombineSpec, ImageScalars, SectionResult

__all__ = ["CombineSpec", "ImageScalars", "SectionResult", "choose_kernel", "combine_section",
           "count_nonfinite", "weight_sums"]

KERNELS = ("fast", "reference")

#: Stacks of at most this many input values (images × rows × columns; 4 × 512², 4 MiB of
#: float32) take the reference kernels when the kernel is ``"auto"`` and the compiled ones are
#: not loaded yet: NumPy combines them in well under 0.1 s, less than numba takes to import
#: and load its cache (about half a second), and a process that only runs such stacks never
#: imports numba. Either way the image is the same, bit for bit.
SMALL_STACK_VALUES = 4 * 512 * 512

#: Images whose sequential weight sums one call of the fast weight kernel runs side by side.
WEIGHT_LANES = 6


def choose_kernel(kernel: str, n_values: int, budgeted: bool = False) -> str:
    """The implementation a run uses: ``kernel`` itself, or for ``"auto"`` the reference kernels
    on a stack of at most :data:`SMALL_STACK_VALUES` values while the compiled kernels are not
    loaded in this process, and the fast ones otherwise, and always when the run has a memory
    budget (the memory model is the fast kernels')."""
    if kernel == "auto":
        loaded = sys.modules.get(f"{__name__}.fast") is not None
        small = n_values <= SMALL_STACK_VALUES and not budgeted and not loaded
        return "reference" if small else "fast"
    if kernel not in KERNELS:
        raise ValueError(f"kernel: unknown value {kernel!r}; choose one of: auto, "
                         f"{', '.join(KERNELS)}")
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
