"""The thread executor: a run's weight statistics and sections on this machine's threads.

It opens every input once (raising the open-file limit when a stack needs it, else reading
each file only while it reads it), runs the weight pass in groups whose sums one kernel call
runs side by side, and keeps ``workers + 1`` sections in flight (the workers and one read
ahead); everything else is :func:`medstack.core.run.run`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..core.memory import peak_bytes
from ..core.plan import StackPlan, default_workers
from ..core.products import OutputSinks
from ..core.run import Executor, Piece
from ..core.sections import Section
from ..core.unit import SectionBuffers, compute_section
from ..core.weights import WeightStats, weight_groups, weight_stats_many
from ..io.openfiles import descriptors_needed, ensure_open_files
from ..io.readers import ArrayReader, RawReader, Reader, image_reader
from ..kernels import Kernels

__all__ = ["ThreadExecutor"]

log = logging.getLogger("medstack.core.run")  # the run's own voice


class ThreadExecutor(Executor):
    """Compute on ``workers`` threads of this process.

    Parameters
    ----------
    workers : int, optional
        Threads (>= 1, as the run options check it). Default is all cores this process may
        use.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self.in_flight = self.workers + 1
        self._plan: StackPlan | None = None
        self._kernel: Kernels | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._sci: list[Reader] = []
        self._wht: list[Reader] | None = None

    @contextmanager
    def open(self, plan: StackPlan, *, kernel: Kernels, out_path: Path | None
             ) -> Iterator[ThreadExecutor]:
        self._plan, self._kernel = plan, kernel
        if plan.memory is not None:  # a memory budget may allow fewer sections in flight
            self.in_flight = min(self.in_flight, plan.memory.in_flight)
            self.workers = min(self.workers, plan.memory.workers)
        ny, nx = plan.shape
        log.info(
            "%d inputs of %dx%d; %s; sections of %d rows (%d sections); budget %.3g MiB per "
            "input; %d worker(s); %s kernels; peak section memory about %.0f MiB",
            plan.n_images, ny, nx, plan.params.combine_type, plan.section_rows,
            len(plan.sections), plan.section_rows * nx * 4 / 2**20, self.workers, kernel,
            peak_bytes(plan.n_images, plan.section_rows, nx, self.in_flight) / 2**20,
        )
        n_files = plan.n_images * (2 if plan.needs_weights else 1)
        keep_open = ensure_open_files(descriptors_needed(n_files, self.in_flight))
        if not keep_open:
            log.warning("%d input files need more open files than this process may hold "
                        "(ulimit -n); reading each file only while it is read (slower, same "
                        "result)", n_files)
        scratch = out_path.parent if out_path is not None else None  # for compressed inputs
        self._sci, self._wht = [], [] if plan.needs_weights else None
        try:
            for img in plan.images:
                self._sci.append(image_reader(img, "sci", scratch, keep_open))
                if self._wht is not None:
                    self._wht.append(image_reader(img, "wht", scratch, keep_open))
            if log.isEnabledFor(logging.DEBUG):
                for reader in self._readers():
                    how = ("memory-mapped, as it lies" if isinstance(reader, RawReader) else
                           "from memory" if isinstance(reader, ArrayReader) else
                           "through astropy")
                    log.debug("%s: read %s", reader.path, how)
                for section in plan.sections:
                    log.debug("section: reads rows %d-%d, writes rows %d-%d", section.read[0],
                              section.read[1] - 1, section.out[0], section.out[1] - 1)
            with ThreadPoolExecutor(max_workers=self.workers,
                                    thread_name_prefix="medstack") as self._pool:
                yield self
        finally:
            self._pool = None
            for reader in self._readers():
                reader.close()

    def _readers(self) -> list[Reader]:
        return self._sci + (self._wht or [])

    def weight_stats(self) -> list[WeightStats]:
        assert self._pool is not None and self._plan is not None and self._wht is not None
        assert self._kernel is not None
        wht, rows, kernel = self._wht, self._plan.section_rows, self._kernel
        groups = weight_groups(len(wht), self.workers)
        return [st for part in self._pool.map(
            lambda g: weight_stats_many([wht[i] for i in g], rows, kernel), groups)
            for st in part]

    def sections(self, thresholds: np.ndarray | None, sinks: OutputSinks,
                 count_masked: bool) -> Iterator[Piece]:
        assert self._pool is not None and self._plan is not None and self._kernel is not None
        plan, pool = self._plan, self._pool
        integer = tuple(r.path for r in self._readers() if r.integer)
        buffers = SectionBuffers()
        pending: set[Future[Any]] = set()
        futures: dict[Future[Any], Section] = {}
        todo = iter(plan.sections)
        exhausted = False
        mapped = [r for r in self._readers() if isinstance(r, RawReader)]
        ahead = self.in_flight  # sections read ahead of the one submitted (cold files)
        try:
            while True:
                while not exhausted and len(pending) < self.in_flight:
                    section = next(todo, None)
                    if section is None:
                        exhausted = True
                        break
                    if section.index + ahead < len(plan.sections):
                        # ask the kernel to start reading a later section's rows now, so that
                        # reading cold files overlaps the combining of the sections before it
                        later = plan.sections[section.index + ahead].read
                        for reader in mapped:
                            reader.prefetch(*later)
                    fut = pool.submit(compute_section, plan, section, self._sci, self._wht,
                                      thresholds, self._kernel, buffers, count_masked)
                    futures[fut] = section
                    pending.add(fut)
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    result, bad_counts = fut.result()
                    yield Piece(
                        section=futures.pop(fut), result=result, sections=1,
                        nonfinite=np.asarray(bad_counts, dtype=np.int64),
                        no_good=int(result.ngood.size - np.count_nonzero(result.ngood)),
                        masked=result.masked,
                        integer=integer,
                    )
                    integer = ()
        finally:
            for fut in pending:
                fut.cancel()

