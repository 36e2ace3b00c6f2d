"""The plan of a run: the stack checked against the parameters, its sections and kernel
spec, before any pixel is read (:func:`prepare`; :func:`prepare_frames` for the frames door).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, ParameterError, StepAbortedError
from ..io.framestore import FrameStore
from ..io.inputs import InputImage
from ..io.outputs import output_name, rootname
from ..kernels import CombineSpec, ImageScalars
from ..params import MedianParams, validate
from .memory import MemoryPlan, plan_memory
from .sections import Section, plan_sections

__all__ = ["StackPlan", "default_workers", "output_name", "prepare", "prepare_frames",
           "rootname"]

log = logging.getLogger(__name__)


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class StackPlan:
    """Everything needed to combine a checked stack, derived from inputs and parameters."""

    images: tuple[InputImage, ...]
    params: MedianParams
    spec: CombineSpec
    scalars: ImageScalars | None
    shape: tuple[int, int]
    section_rows: int
    sections: tuple[Section, ...]
    needs_weights: bool
    memory: MemoryPlan | None = None
    frames: FrameStore | None = None  # the frames door's inputs (then ``images`` is empty)

    @property
    def n_images(self) -> int:
        """Number of inputs."""
        return len(self.images) if self.frames is None else self.frames.n_frames


def prepare(images: Sequence[InputImage], params: MedianParams, *, workers: int | None = None,
            max_memory_bytes: int | None = None, keep_data: bool = False,
            maps: bool = False) -> StackPlan:
    """Check the stack against the parameters and plan the run; no pixel is read.

    The sections come from the memory model (:func:`medstack.core.memory.plan_memory`); the
    result never depends on their size.

    Parameters
    ----------
    images : sequence of InputImage
        The checked inputs.
    params : MedianParams
        The validated parameters.
    workers : int, optional
        Threads the run will use (sections in flight: ``workers + 1``). Default is all cores.
    max_memory_bytes : int, optional
        Total bytes the run may hold (sections of all inputs, sections in flight, kept
        arrays). Default is no total budget.
    keep_data, maps : bool
        Whether the median (and the maps) will be kept as arrays (counted in the budget).
        Default is False.

    Raises
    ------
    ParameterError
        minmed with one image; ``combine_nlow + combine_nhigh >= N`` for median/mean;
        ``max_memory_bytes`` too small for one section (naming the minimum).
    InputError
        minmed with an exposure time missing or not positive (naming the file).
    """
    if not images:
        raise InputError("no input images")
    n, kind = len(images), params.kind
    if kind == "minmed" and n < 2:
        raise ParameterError(f"combine_type={params.combine_type} needs two or more input "
                             "images, got 1; use median, mean or sum")
    if kind in ("median", "mean") and n - params.combine_nlow - params.combine_nhigh < 1:
        raise StepAbortedError(f"combine_nlow + combine_nhigh = "
                               f"{params.combine_nlow + params.combine_nhigh} rejects every one "
                               f"of the {n} input images; it must be less than {n}")
    if params.median_newmasks and params.combine_maskpt > 1:
        log.warning(
            "combine_maskpt = %g is a fraction of each image's mean weight, not a percentage: "
            "a pixel is masked where its weight is below %g times the mean, which masks most "
            "pixels (did you mean %g?)", params.combine_maskpt, params.combine_maskpt,
            params.combine_maskpt / 100)
    scalars = None
    if kind == "minmed":
        for img in images:
            if img.exptime is None:
                raise InputError(f"{img.sci}: EXPTIME missing; minmed needs the exposure time")
            if not img.exptime > 0:
                raise InputError(f"{img.sci}: EXPTIME = {img.exptime:g}; minmed needs a positive "
                                 "exposure time")
            if img.sky is None:
                log.warning("%s: MDRIZSKY missing; sky taken as 0", img.sci)
            if img.readnoise is None:
                log.warning("%s: READNSE* missing; readnoise taken as 0", img.sci)
        scalars = ImageScalars.of([img.exptime or 0.0 for img in images],
                                  [img.sky or 0.0 for img in images],
                                  [img.readnoise or 0.0 for img in images])
    ny, nx = images[0].shape
    bufsize_bytes = None if params.combine_bufsize is None and max_memory_bytes is not None \
        else params.budget_bytes  # combine_bufsize stays drizzlepac's per-input cap when given
    memory = plan_memory(n, (ny, nx), workers=default_workers() if workers is None else workers,
                         grow=params.grow_px, bufsize_bytes=bufsize_bytes,
                         max_memory_bytes=max_memory_bytes, keep_data=keep_data, maps=maps)
    rows = memory.section_rows
    return StackPlan(images=tuple(images), params=params, spec=CombineSpec.from_params(params),
                     scalars=scalars, shape=(ny, nx), section_rows=rows,
                     sections=tuple(plan_sections(ny, rows, params.grow_px)),
                     needs_weights=params.median_newmasks or kind == "minmed", memory=memory)


def prepare_frames(store: FrameStore, *, workers: int, read_bytes: int) -> StackPlan:
    """Plan NumPy's ``nanmedian`` of a frame store (the frames door): row sections that each
    hold at most ``read_bytes`` of stored frame values and output rows (at least one row).

    Raises
    ------
    InputError
        No frame added.
    """
    if store.n_frames == 0:
        raise InputError("no frames added")
    ny, nx = store.shape
    out_row = nx * (np.dtype(store.dtype).itemsize + 2)  # the median and its count
    peak_row = int(store.row_bytes().max(initial=0)) + out_row
    rows = max(1, min(ny, read_bytes // peak_row))
    memory = MemoryPlan(section_rows=rows, workers=workers, in_flight=workers + 1,
                        peak_bytes=(workers + 1) * rows * peak_row)
    return StackPlan(
        images=(), params=validate({"median_newmasks": False}),
        spec=CombineSpec(kind="nanmedian", weight_masks=False, fillval=float("nan"),
                         dtype=store.dtype),
        scalars=None, shape=(ny, nx), section_rows=rows,
        sections=tuple(plan_sections(ny, rows)), needs_weights=False, memory=memory,
        frames=store)
