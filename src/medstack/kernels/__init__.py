"""Combine kernels: pure numerics on one row section of the stack (no I/O, no logging).

Two implementations of one contract, :class:`Kernels`, give the same bits: :mod:`.reference`,
plain NumPy written from docs/spec.md §6–§7 (the yardstick), and :mod:`.fast`, compiled C
(``_fast.c``, built at installation, loaded with ctypes). A run picks one once
(:func:`choose_kernel`); the module functions take it by name, for one-off calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module

import numpy as np

from ..errors import MedstackError
from .spec import CombineSpec, ImageScalars, Planes, SectionResult, WeightSums

__all__ = ["CombineSpec", "ImageScalars", "Kernels", "KernelsNotBuilt", "SectionResult",
           "choose_kernel", "combine_section", "fast_unavailable", "weight_sums"]

KERNELS = ("fast", "reference")

#: Images whose sequential weight sums one call of the fast weight kernel runs side by side.
WEIGHT_LANES = 6


class KernelsNotBuilt(MedstackError):
    """The compiled kernels' library is missing or cannot be loaded (it is built when medstack
    is installed with a C compiler present; ``medstack-compile`` builds it later)."""


class Kernels:
    """One implementation of the kernels, by name: ``"fast"``, ``"reference"`` (the same bits
    either way), or ``"auto"``: the compiled kernels, and the reference ones where the compiled
    library is not built (several times slower).

    Pickles as its name (a Dask task carries a few bytes; the worker imports the
    implementation when it unpickles it).

    Raises
    ------
    KernelsNotBuilt
        ``"fast"`` where the compiled library is not built.
    ValueError
        Another name.
    """

    __slots__ = ("name", "_module")

    def __init__(self, name: str) -> None:
        if name == "auto":
            name = "fast" if fast_unavailable() is None else "reference"
        if name not in KERNELS:
            raise ValueError(f"kernel: unknown value {name!r}; choose one of: auto, "
                             f"{', '.join(KERNELS)}")
        self.name = name
        try:
            self._module = import_module(f".{name}", __name__)
        except KernelsNotBuilt as err:
            raise KernelsNotBuilt(f"kernel: fast: {err}") from err

    def __reduce__(self) -> tuple[type[Kernels], tuple[str]]:
        return (Kernels, (self.name,))

    def __repr__(self) -> str:
        return f"Kernels({self.name!r})"

    def __str__(self) -> str:  # (as a log line names it: "fast kernels")
        return self.name

    def combine_section(self, sci: Planes, wht: Planes | None, spec: CombineSpec, *,
                        thresholds: np.ndarray | None = None,
                        scalars: ImageScalars | None = None,
                        rows: tuple[int, int] | None = None) -> SectionResult:
        """Combine one section of the stack.

        Parameters
        ----------
        sci : ndarray, shape (N, r, nx), or sequence of N ndarrays of shape (r, nx); float32
            Science rows of the N images, electrons/s, native or big-endian (FITS) byte order
            (planes may be views of N files). NaN and ±inf are masked.
        wht : same layout as ``sci``, or None
            Weight rows, for weight masks and minmed; NaN and ±inf weights are bad pixels and
            count as 0 in minmed's noise model.
        spec : CombineSpec
            What to compute.
        thresholds : ndarray, shape (N,), float64, optional
            Per-image weight thresholds (``combine_maskpt × mean weight``); a pixel is bad
            where its weight is below its image's threshold (compared in float64). Default is
            None: no weight masks.
        scalars : ImageScalars, optional
            Per-image exptime/sky/readnoise (minmed only). Default is None.
        rows : (int, int), optional
            Local rows ``[lo, hi)`` to return (the rest is grow halo). Default is all rows.

        Returns
        -------
        SectionResult
            With ``nonfinite`` counted; ``masked`` is None.
        """
        if rows is None:
            rows = (0, sci.shape[1] if isinstance(sci, np.ndarray) else np.shape(sci[0])[0])
        if spec.kind == "minmed" and (wht is None or scalars is None):
            raise ValueError("minmed needs weights and per-image scalars")
        if thresholds is not None and wht is None:
            raise ValueError("weight masks need weights")
        return self._module.combine_section(sci, wht, spec, thresholds=thresholds,
                                            scalars=scalars, rows=rows)

    def weight_sums(self, blocks: Sequence[np.ndarray], totals: Sequence[float]) -> WeightSums:
        """Per image: the running sequential float64 sum, from ``totals``, of its block's finite
        weights >= float32(1e-8) (drizzlepac's ImageStats mean), how many it added and how many
        were NaN/±inf."""
        return self._module.weight_sums(blocks, totals)


def fast_unavailable() -> str | None:
    """Why the compiled kernels cannot run here (one line), or None when they can."""
    try:
        from . import fast  # noqa: F401
    except KernelsNotBuilt as err:
        return str(err)
    return None


#: The implementation a run uses, by name (``"auto"`` too), chosen once.
choose_kernel = Kernels


def weight_sums(blocks: Sequence[np.ndarray], totals: Sequence[float],
                kernel: str | Kernels = "fast") -> WeightSums:
    """:meth:`Kernels.weight_sums` of the implementation ``kernel``. Default is ``"fast"``."""
    return (Kernels(kernel) if isinstance(kernel, str) else kernel).weight_sums(blocks, totals)


def combine_section(sci: Planes, wht: Planes | None, spec: CombineSpec, *,
                    thresholds: np.ndarray | None = None, scalars: ImageScalars | None = None,
                    rows: tuple[int, int] | None = None,
                    kernel: str | Kernels = "fast") -> SectionResult:
    """:meth:`Kernels.combine_section` of the implementation ``kernel``. Default is
    ``"fast"``."""
    return (Kernels(kernel) if isinstance(kernel, str) else kernel).combine_section(
        sci, wht, spec, thresholds=thresholds, scalars=scalars, rows=rows)
