"""The run skeleton (:func:`run`): one path from a plan to its products, whatever computes
the sections. An :class:`Executor` only schedules: it computes the weight statistics and the
sections (on this machine's threads or a Dask cluster) and hands back :class:`Piece` s.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.outputs import Products
from ..kernels import Kernels, SectionResult, choose_kernel, fast_unavailable
from ..options import RunOptions
from .plan import StackPlan
from .products import MedianResult, OutputSinks, median_header, pending_result
from .report import check_coverage, image_table
from .sections import Section
from .weights import WeightStats, thresholds_of

__all__ = ["Executor", "Piece", "Progress", "run"]

log = logging.getLogger(__name__)

#: A progress callback: ``progress(done, total)`` after each section.
Progress = Callable[[int, int], None]


@dataclass
class Piece:
    """What an executor hands back for some finished sections.

    Attributes
    ----------
    section : Section
        The output rows they cover (``section.out``).
    result : SectionResult or None
        Their output rows, for the sinks; None when the executor wrote them into the output's
        files itself.
    sections : int
        How many plan sections they are (for progress).
    nonfinite : ndarray of int
        Per image, NaN/inf science values in their output rows.
    no_good : int
        Their output pixels with no good input.
    masked : ndarray of int or None
        Per image, output-row pixels its weight mask rejects (counted only for ``-v``).
    integer : tuple of str
        Input files read as integer data (converted to float32).
    """

    section: Section
    result: SectionResult | None
    sections: int
    nonfinite: np.ndarray
    no_good: int
    masked: np.ndarray | None = None
    integer: tuple[str, ...] = ()


class Executor:
    """Where a run's work is done; :func:`run` uses one as a context manager.

    Subclasses implement :meth:`open` (returning the context that holds their resources:
    threads and readers, or a Dask client), :meth:`weight_stats` and :meth:`sections`.
    """

    def open(self, plan: StackPlan, *, kernel: Kernels, out_path: Path | None
             ) -> AbstractContextManager[Executor]:
        """Start: open the inputs or connect; the context closes everything."""
        raise NotImplementedError

    def weight_stats(self) -> list[WeightStats]:
        """Every image's mean weight, in input order."""
        raise NotImplementedError

    def sections(self, thresholds: np.ndarray | None, sinks: OutputSinks,
                 count_masked: bool) -> Iterator[Piece]:
        """Compute every section of the plan, yielding pieces as they finish (any order)."""
        raise NotImplementedError


def run(
    plan: StackPlan,
    executor: Executor,
    options: RunOptions | None = None,
    *,
    path: str | os.PathLike[str] | Products | None = None,
) -> MedianResult:
    """Run a prepared plan on an executor.

    Parameters
    ----------
    plan : StackPlan
        From :func:`medstack.core.plan.prepare`.
    executor : Executor
        Where to compute (:class:`medstack.executors.threads.ThreadExecutor`,
        :class:`medstack.executors.dask.DaskExecutor`). Same result, bit for bit.
    options : RunOptions, optional
        The run options (where to compute is the executor's). Default is every option's
        default.
    path : path-like or Products, optional
        Median file to write, with the maps (``save_maps``) beside it; or every product of
        the run, a :class:`~medstack.io.outputs.Products` (named and checked here, against
        the inputs and each other, and committed together, last). Default is no file.

    Returns
    -------
    MedianResult
    """
    start = time.perf_counter()
    o = options if options is not None else RunOptions()
    keep_data = o.keep_data
    # the implementation, chosen once for the whole run (the same bits either way)
    kernel = choose_kernel(o.kernel)
    if kernel.name != o.kernel and kernel.name == "reference":
        log.warning("%s: the NumPy reference kernels run instead (the same image, several "
                    "times slower)", fast_unavailable())
    products = path if isinstance(path, Products) else Products(path)
    products.resolve(plan.images, maps=(("ngood", "minchosen") if plan.spec.kind == "minmed"
                                        else ("ngood",)) if o.save_maps else ())
    out_path = products.median
    header = median_header(plan)  # without astropy where the first input's is plain
    count_masked = log.isEnabledFor(logging.INFO) and plan.params.median_newmasks
    n = plan.n_images
    nonfinite = np.zeros(n, dtype=np.int64)
    masked = np.zeros(n, dtype=np.int64)
    no_good = 0
    stats: list[WeightStats] | None = None
    sinks: OutputSinks | None = None
    with executor.open(plan, kernel=kernel, out_path=out_path) as work:
        try:
            thresholds = None
            if plan.params.median_newmasks and plan.needs_weights:
                t_weights = time.perf_counter()
                stats = work.weight_stats()
                thresholds = thresholds_of(plan, stats)
                log.debug("mean weights of %d images: %.2f s", n,
                          time.perf_counter() - t_weights)
            t_combine = time.perf_counter()
            sinks = OutputSinks(plan, header, products, keep_data, o.save_maps, o.keep_maps,
                                o.quicklook)
            done, total = 0, len(plan.sections)
            warned: set[str] = set()
            for piece in work.sections(thresholds, sinks, count_masked):
                for name in piece.integer:
                    if name not in warned:
                        log.warning("%s: integer data converted to float32", name)
                        warned.add(name)
                if piece.result is not None:
                    sinks.put(piece.section, piece.result)
                nonfinite += piece.nonfinite
                no_good += piece.no_good
                if piece.masked is not None:
                    masked += piece.masked
                done += piece.sections
                if o.progress is not None:
                    o.progress(done, total)
            log.debug("%d sections combined: %.2f s", total, time.perf_counter() - t_combine)
            for img, count in zip(plan.images, nonfinite):
                if count:
                    log.warning("%s: %d NaN/inf science pixels, treated as masked", img.sci, count)
            if o.before_commit is not None:
                t_hook = time.perf_counter()
                o.before_commit(pending_result(sinks, header, plan, no_good))
                start += time.perf_counter() - t_hook  # the caller's own time, not the run's
            t_commit = time.perf_counter()
            sinks.commit()
            log.debug("files synced and renamed into place: %.2f s",
                      time.perf_counter() - t_commit)
        except BaseException:
            if sinks is not None:
                sinks.abort()
            products.abort()
            raise
    if plan.frames is None:  # (a mosaic's frames have no per-image values, nor need cover it)
        if log.isEnabledFor(logging.INFO):
            log.info("per-image values:\n%s", image_table(
                plan, stats, masked.tolist() if count_masked else None))
        check_coverage(plan, no_good)
    arrays = sinks.arrays
    return MedianResult(
        data=arrays.get("median"),
        header=header,
        path=products.median,
        ngood=arrays.get("ngood"),
        minchosen=arrays.get("minchosen"),
        map_paths=list(products.maps.values()),
        seconds=time.perf_counter() - start,
        plan=plan,
        no_good=no_good,
        quicklook=sinks.quicklook,
    )

