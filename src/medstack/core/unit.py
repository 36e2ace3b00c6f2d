"""The work unit: one row section read from every input and combined (:func:`compute_section`),
the same code on threads or on Dask workers, so the result is the same bit for bit."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ..io.readers import RawReader, Reader
from ..kernels import Kernels, SectionResult, combine_section
from ..kernels.framemedian import FrameRows, combine_frames
from .plan import StackPlan
from .sections import Section

__all__ = ["SectionBuffers", "compute_frames_section", "compute_section"]


class SectionBuffers:
    """Read buffers reused from section to section, so that each section does not map and zero
    fresh pages (at most one set per thread that computes at the same time)."""

    def __init__(self) -> None:
        self._free: list[dict[str, np.ndarray]] = []
        self._lock = threading.Lock()

    def take(self) -> dict[str, np.ndarray]:
        with self._lock:
            return self._free.pop() if self._free else {}

    def give(self, buffers: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._free.append(buffers)


def compute_section(
    plan: StackPlan,
    section: Section,
    sci_readers: Sequence[Reader],
    wht_readers: Sequence[Reader] | None,
    thresholds: np.ndarray | None,
    kernel: Kernels,
    buffers: SectionBuffers | None = None,
    count_masked: bool = False,
) -> tuple[SectionResult, list[int]]:
    """Read one section from every input and combine it.

    Inputs read by a :class:`RawReader` go to the kernel as views of their memory-mapped files
    (big-endian float32, byte-swapped by the fast kernel as it loads them), so they are never
    copied; other inputs are read into buffers.

    Parameters
    ----------
    kernel : Kernels
        The implementation the run chose (:func:`medstack.kernels.choose_kernel`).
    buffers : SectionBuffers, optional
        Read buffers to reuse (for inputs that are not memory-mapped). Default is fresh ones.
    count_masked : bool, optional
        Also count, per image, the output-row pixels its weight mask rejects (``result.masked``,
        for ``-v``). Default is False.

    Returns
    -------
    result : SectionResult
        The output rows of the section, with their ``nonfinite`` and ``masked`` counts.
    nonfinite : list of int
        Per image, the NaN/inf (masked) science values in the section's output rows.
    """
    if plan.frames is not None:
        return compute_frames_section(plan, section, kernel)
    (r0, r1), (lo, hi) = section.read, section.local
    shape = (plan.n_images, r1 - r0, plan.shape[1])  # of a read buffer
    size = shape[0] * shape[1] * shape[2]
    bufs = buffers.take() if buffers is not None else {}

    def planes(readers: Sequence[Reader], key: str) -> list[np.ndarray]:
        out = []
        for i, reader in enumerate(readers):
            if isinstance(reader, RawReader) and reader.mappable:
                out.append(reader.rows(r0, r1))
                continue
            if key not in bufs or bufs[key].size < size:
                bufs[key] = np.empty(size, dtype=np.float32)
            out.append(reader.read(r0, r1, out=bufs[key][:size].reshape(shape)[i]))
        return out

    try:
        sci = planes(sci_readers, "sci")
        wht = planes(wht_readers, "wht") if wht_readers is not None else None
        result = combine_section(sci, wht, plan.spec, thresholds=thresholds,
                                 scalars=plan.scalars, rows=(lo, hi), kernel=kernel)
        if count_masked and thresholds is not None and wht is not None:
            # the mask's own test: bad where not float64(w) >= threshold (NaN weights too)
            result.masked = np.array([plane[lo:hi].size - np.count_nonzero(
                plane[lo:hi] >= np.float64(t)) for plane, t in zip(wht, thresholds)], np.int64)
    finally:
        sci, wht = [], None  # the mapped rows go with their views
        if buffers is not None:
            buffers.give(bufs)
    return result, [int(c) for c in result.nonfinite]


def compute_frames_section(plan: StackPlan, section: Section, kernel: Kernels
                           ) -> tuple[SectionResult, list[int]]:
    """One section of a frames plan: the rows of the frames that cover it (views of frames in
    memory, spilled ones read), combined by :func:`medstack.kernels.framemedian.combine_frames`
    rectangle by rectangle of constant cover, so the work follows the covered pixels."""
    assert plan.frames is not None
    r0, r1 = section.out
    parts = [FrameRows(f.index, f.rows(r0, r1), max(f.box[0], r0) - r0, f.box[2])
             for f in plan.frames.covering(r0, r1)]
    out = np.empty((r1 - r0, plan.shape[1]), dtype=plan.spec.dtype)
    ngood = np.empty(out.shape, dtype=np.uint16)
    combine_frames(parts, out, ngood, plan.frames.n_frames, kernel.name)
    return SectionResult(median=out, ngood=ngood), [0] * plan.n_images
