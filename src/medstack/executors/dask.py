"""The median step on a Dask cluster (``pip install -e ".[dask]"`` from a checkout): it only
schedules. The run is :func:`medstack.core.run.run`, as on threads, and the result the same bit
for bit:

1. Tasks compute each image's mean weight (:func:`medstack.core.weights.weight_stats`), about
   :data:`BANDS_PER_THREAD` per worker thread, each for a run of consecutive images.
2. The plan's row sections are grouped into *bands* of whole consecutive sections, one task
   each. A task gets the plan (absolute file names, never pixels), opens the inputs, computes its
   sections one at a time with :func:`medstack.core.unit.compute_section` and closes the inputs;
   it returns its rows or, for a large band, writes them into the output's temporary file
   (:class:`medstack.io.writer.RowTarget`).

Every task is a pure function of its arguments and writes the same bytes at the same offsets
when repeated: when a worker dies, Dask runs its tasks again elsewhere. The processes are
Dask's: a ``dask-local`` run's :class:`distributed.LocalCluster` starts and stops its own.
See docs/dask.md.
"""

from __future__ import annotations

import gc
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.memory import section_bytes
from ..core.plan import StackPlan, default_workers
from ..core.products import PRODUCT_DTYPES as _DTYPES
from ..core.products import OutputSinks
from ..core.run import Executor, Piece
from ..core.sections import Section
from ..core.unit import SectionBuffers, compute_section
from ..core.weights import WeightStats, weight_stats
from ..errors import MedstackError, ParameterError
from ..io.inputs import is_compressed
from ..io.readers import Reader, image_reader, open_reader
from ..io.writer import RowTarget
from ..kernels import Kernels, SectionResult
from ..options import RunOptions

__all__ = ["BANDS_PER_THREAD", "DASK_LOCAL", "INSTALL_HINT", "RETURN_BYTES", "Band",
           "DaskExecutor", "check_scheduler", "plan_bands"]

log = logging.getLogger(__name__)

#: The ``scheduler`` value that starts (and afterwards closes) a LocalCluster.
DASK_LOCAL = "dask-local"
#: What to install for this module.
INSTALL_HINT = 'pip install -e ".[dask]" from a checkout'
#: Default number of bands per worker thread: enough for load balance and cheap re-runs after a
#: lost worker, few enough that opening every input once per band stays a small cost.
BANDS_PER_THREAD = 4
#: A band whose output rows (all products together) exceed this many bytes writes them itself
#: into the temporary output file, when there is one and the arrays are not kept; smaller bands
#: return their rows to the client. Without a file, bands are cut to at most this size (but
#: never below one section).
RETURN_BYTES = 16 * 2**20


def check_scheduler(scheduler: str | None, client: Any = None) -> str:
    """Which Dask cluster a ``scheduler``/``client`` pair names: ``"dask-local"`` (also for
    None without a client), the address (``SCHEME://...``, which distributed parses when the
    run connects, before any file is written) or ``"client"``.

    Raises
    ------
    ParameterError
        Both given, a value that is neither ``dask-local`` nor an address, or Dask not
        installed (the message says ``pip install -e ".[dask]"`` from a checkout).
    """
    if client is not None and scheduler is not None:
        raise ParameterError(f"scheduler: give a scheduler ({scheduler!r}) or a client, not both")
    where = "client" if client is not None else scheduler or DASK_LOCAL
    if where not in ("client", DASK_LOCAL) and "://" not in where:
        raise ParameterError(
            f"scheduler: unknown value {where!r}; use threads, {DASK_LOCAL} or the address "
            "of a running Dask scheduler (tcp://HOST:PORT)")
    try:
        import distributed  # noqa: F401
    except ImportError as err:
        what = "a Dask client" if client is not None else where
        raise ParameterError(f"scheduler: {what} needs Dask (dask[distributed]), which is not "
                             f"installed; {INSTALL_HINT}") from err
    return where


@contextmanager
def _connect(where: str, client: Any, workers: int | None,
             connect_timeout: float) -> Iterator[Any]:
    """A client: the given one (left open), a new LocalCluster's, or one to an address."""
    if client is not None:
        yield client
        return
    import dask
    import distributed

    if where == DASK_LOCAL:
        n = default_workers() if workers is None else workers
        log.info("starting a Dask LocalCluster of %d worker process(es)", n)
        # distributed's MALLOC_TRIM_THRESHOLD_ also fixes glibc's mmap threshold: every large
        # NumPy temporary is then a fresh mmap, faulted in again (the step ~20 % slower)
        key = "distributed.nanny.pre-spawn-environ"
        environ = {k: v for k, v in (dask.config.get(key, default=None) or {}).items()
                   if k != "MALLOC_TRIM_THRESHOLD_"}
        with dask.config.set({key: environ}):
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1,
                                               processes=True, dashboard_address=":0",
                                               preload=["medstack._startup"])
        with cluster, distributed.Client(cluster, set_as_default=False) as local:
            log.info("Dask dashboard: %s", cluster.dashboard_link)
            yield local
        return
    if workers is not None:
        log.info("workers=%d ignored: the cluster at %s has its own workers", workers, where)
    try:
        # distributed's own parsing, before a Client exists: a Client that fails in its
        # constructor is finalized by a later garbage collection, which can deadlock the
        # next Client's start (its __del__ waits on the lock that start holds)
        distributed.comm.get_address_host_port(where)
    except ValueError as err:
        raise ParameterError(f"scheduler: {where!r}: {err}") from err
    remote = cause = None
    try:
        remote = distributed.Client(where, set_as_default=False, timeout=connect_timeout)
    except (OSError, TimeoutError) as err:
        err.__traceback__ = None  # its frames hold the half-made Client
        cause = err
    if remote is None:
        gc.collect()  # that Client finalized now, not inside a later Client's start
        raise ParameterError(f"scheduler {where}: cannot connect within {connect_timeout:g} s "
                             "(connect_timeout); is a Dask scheduler running there?") from cause
    with remote:
        yield remote


@dataclass(frozen=True)
class Band:
    """A task's share of the image, whole consecutive sections of the plan: ``index`` (from 0),
    ``sections`` (``[first, stop)`` into the plan's sections), ``out`` (the image rows
    ``[start, stop)`` it outputs) and ``direct`` (whether the task writes them into the
    temporary output file itself, else returns them)."""

    index: int
    sections: tuple[int, int]
    out: tuple[int, int]
    direct: bool


def plan_bands(plan: StackPlan, n_threads: int, *, row_bytes: int, direct_ok: bool,
               sections_per_band: int | None = None) -> list[Band]:
    """Group the plan's sections into bands: by default about :data:`BANDS_PER_THREAD` for
    each of the cluster's ``n_threads``, else ``sections_per_band`` sections each.

    With ``direct_ok`` (there is a temporary output file and no array is kept), bands whose
    output (``row_bytes`` per row, all products together) exceeds :data:`RETURN_BYTES` write
    it themselves; without it, bands are cut to at most :data:`RETURN_BYTES` of output.
    """
    sections = plan.sections
    total = len(sections)
    if total == 0:
        return []
    per = sections_per_band
    if per is None:
        per = max(1, -(-total // (BANDS_PER_THREAD * max(1, n_threads))))
        if not direct_ok and row_bytes > 0:
            step = sections[0].out[1] - sections[0].out[0]
            per = max(1, min(per, RETURN_BYTES // (row_bytes * step)))
    bands = []
    for index, first in enumerate(range(0, total, per)):
        stop = min(total, first + per)
        out = (sections[first].out[0], sections[stop - 1].out[1])
        big = (out[1] - out[0]) * row_bytes > RETURN_BYTES
        bands.append(Band(index, (first, stop), out, direct_ok and big))
    return bands


@dataclass
class _BandOutput:
    """What a band task sends back: its rows (unless written directly) and its counts."""

    rows: dict[str, np.ndarray] | None
    nonfinite: list[int]
    integer: list[str]
    no_good: int = 0  # output pixels with no good input
    masked: list[int] | None = None  # per image, pixels its weight mask rejects (-v)


def _dtype(plan: StackPlan, key: str) -> np.dtype:
    """The dtype of a product's rows: the plan's for the median (a frames plan's may be
    float64), else the product's."""
    return np.dtype(plan.spec.dtype) if key == "median" else _DTYPES[key]


def _open_readers(plan: StackPlan) -> list[Reader]:
    """Every input of the plan, science then weights, opened as the thread executor opens
    them; on failure, what was opened is closed."""
    opened: list[Reader] = []
    try:
        for which in ("sci", "wht") if plan.needs_weights else ("sci",):
            opened.extend(image_reader(img, which) for img in plan.images)
    except BaseException:
        for reader in opened:
            reader.close()
        raise
    return opened


def _weight_task(files: list[tuple[str, int]], rows: int, kernel: Kernels | str = "fast"
                 ) -> list[WeightStats]:
    """On a worker: the mean weight of each image of ``files`` (name, HDU), each read ``rows``
    rows at a time, in order (as the thread executor does)."""
    stats = []
    for path, hdu in files:
        reader = open_reader(path, hdu)
        try:
            stats.append(weight_stats(reader, rows, kernel))
        finally:
            reader.close()
    return stats


def _band_task(plan: StackPlan, first: int, stop: int, thresholds: np.ndarray | None,
               kernel: Kernels, keys: tuple[str, ...],
               targets: dict[str, RowTarget] | None, count_masked: bool = False) -> _BandOutput:
    """On a worker: compute sections ``[first, stop)`` and return or write their rows; holds
    one section's input rows at a time, plus, when returning, the band's output rows."""
    sections = plan.sections[first:stop]
    o0 = sections[0].out[0]
    rows = None
    if targets is None:
        rows = {key: np.empty((sections[-1].out[1] - o0, plan.shape[1]), dtype=_dtype(plan, key))
                for key in keys}
    readers = _open_readers(plan)
    n = plan.n_images
    sci, wht = readers[:n], (readers[n:] if plan.needs_weights else None)
    buffers = SectionBuffers()
    try:
        nonfinite = np.zeros(n, dtype=np.int64)
        masked = np.zeros(n, dtype=np.int64) if count_masked else None
        no_good = 0
        for section in sections:
            result, bad = compute_section(plan, section, sci, wht, thresholds, kernel,
                                          buffers=buffers, count_masked=count_masked)
            nonfinite += bad
            no_good += int(result.ngood.size - np.count_nonzero(result.ngood))
            if masked is not None:
                masked += result.masked if result.masked is not None else 0
            parts: dict[str, Any] = {"median": result.median, "ngood": result.ngood,
                                     "minchosen": result.minchosen}
            a, b = section.out
            if targets is not None:
                for key, target in targets.items():
                    target.write_rows(a, parts[key])
            else:
                assert rows is not None
                for key in keys:
                    rows[key][a - o0:b - o0] = parts[key]
        if targets is not None:
            for target in targets.values():
                target.sync()
        integer = [r.path for r in readers if r.integer]
    finally:
        for reader in readers:
            reader.close()
    return _BandOutput(rows, nonfinite.tolist(), integer, no_good,
                       None if masked is None else masked.tolist())


def _absolute(plan: StackPlan) -> StackPlan:
    """The plan with every file name absolute, as the client resolves it: a worker started in
    another folder reads the same files."""
    return replace(plan, images=tuple(
        replace(img, sci=os.path.abspath(img.sci), wht=os.path.abspath(img.wht))
        for img in plan.images))


class DaskExecutor(Executor):
    """Compute on a Dask cluster: weight statistics as tasks, then bands of whole sections.

    Parameters
    ----------
    scheduler, client : str, distributed.Client, optional
        As for :func:`check_scheduler`; a given client is left open.
    workers : int, optional
        Worker processes of a ``dask-local`` cluster (>= 1). Default is all cores.
    connect_timeout : float, optional
        Seconds to wait for the scheduler at an address to answer. Default is the run option's
        default (:data:`medstack.options.RUN_OPTIONS`).
    sections_per_band : int, optional
        Sections per task (>= 1). Default: about :data:`BANDS_PER_THREAD` bands per thread.

    Raises
    ------
    ParameterError
        A ``scheduler`` that names no Dask cluster, or Dask missing (the other arguments are
        trusted: the doors check the run options).

    Notes
    -----
    The workers open the files under the names the client resolves to absolute paths: on a
    cluster they must be on a filesystem every worker sees, at the same path. A compressed
    input is decompressed into a temporary file by each band that reads it. In-memory inputs
    (AstroDrizzle's ``in_memory=True``) are refused: workers cannot read them.
    """

    def __init__(self, scheduler: str | None = None, client: Any = None,
                 workers: int | None = None, connect_timeout: float | None = None,
                 sections_per_band: int | None = None) -> None:
        self.where = check_scheduler(scheduler, client)
        self.client = client
        self.workers = workers
        self.connect_timeout = (RunOptions().connect_timeout if connect_timeout is None
                                else connect_timeout)
        self.sections_per_band = sections_per_band
        self._dask: Any = None
        self._plan: StackPlan | None = None
        self._kernel: Kernels | None = None
        self._run_id = ""
        self._names: dict[str, str] = {}  # absolute name -> the name given, for messages
        self._out_path: Path | None = None

    @contextmanager
    def open(self, plan: StackPlan, *, kernel: Kernels, out_path: Path | None
             ) -> Iterator[DaskExecutor]:
        if any(img.memory is not None for img in plan.images):
            raise ParameterError("scheduler: in-memory inputs (AstroDrizzle's in_memory=True) "
                                 "run on this machine's threads only; use scheduler='threads'")
        if plan.frames is not None and any(f.values is not None for f in plan.frames.frames):
            raise ParameterError("scheduler: frames held in memory run on this machine's "
                                 "threads only; spill them (in_memory=False)")
        inputs = [name for img in plan.images for name in (img.sci, img.wht)]
        compressed = [name for name in inputs if os.path.isfile(name) and is_compressed(name)]
        if compressed:
            log.info("%d compressed input file(s) (%s, ...): each band that reads them "
                     "decompresses them into a temporary file (disk, not memory); "
                     "decompress them first to save that time", len(compressed), compressed[0])
        self._plan, self._kernel, self._out_path = _absolute(plan), kernel, out_path
        self._names = {os.path.abspath(name): name for name in inputs}  # for messages
        self._run_id = uuid.uuid4().hex[:12]
        with _connect(self.where, self.client, self.workers, self.connect_timeout) as client:
            self._dask = client
            try:
                yield self
            finally:
                self._dask = None

    def weight_stats(self) -> list[WeightStats]:
        assert self._plan is not None
        plan, client = self._plan, self._dask
        files = [(img.wht, img.wht_hdu) for img in plan.images]
        threads = max(1, sum(client.nthreads().values()))
        per = -(-len(files) // (BANDS_PER_THREAD * threads))  # images per task
        futures = [client.submit(_weight_task, files[i:i + per], plan.section_rows,
                                 self._kernel, key=f"medstack-weight-{self._run_id}-{i // per}")
                   for i in range(0, len(files), per)]
        return [st for part in client.gather(futures) for st in part]

    def sections(self, thresholds: np.ndarray | None, sinks: OutputSinks,
                 count_masked: bool) -> Iterator[Piece]:
        assert self._plan is not None
        import distributed

        plan, client = self._plan, self._dask
        ny, nx = plan.shape
        threads = max(1, sum(client.nthreads().values()))
        quicklook = sinks.quicklook is not None
        keys = tuple(dict.fromkeys([*sinks.writers, *sinks.arrays,
                                    *(("median", "ngood") if quicklook else ())]))
        row_bytes = nx * sum(_dtype(plan, k).itemsize for k in keys)
        direct_ok = self._out_path is not None and not sinks.arrays and not quicklook
        bands = plan_bands(plan, threads, row_bytes=row_bytes, direct_ok=direct_ok,
                           sections_per_band=self.sections_per_band)
        targets = {key: replace(w.target(), tmp_path=os.path.abspath(w.target().tmp_path))
                   for key, w in sinks.writers.items()}
        per_task = section_bytes(plan.n_images, plan.section_rows, nx) + max(
            [(b.out[1] - b.out[0]) * row_bytes for b in bands if not b.direct], default=0)
        log.info("%d %s of %dx%d; %s; %d sections of %d rows in %d band(s) (%d written by "
                 "the workers) on %s with %d thread(s); about %.1f MiB per task",
                 plan.n_images, "inputs" if plan.frames is None else "frames", ny, nx,
                 plan.params.combine_type if plan.frames is None else plan.spec.kind,
                 len(plan.sections),
                 plan.section_rows, len(bands), sum(b.direct for b in bands), self.where,
                 threads, per_task / 2**20)
        futures: dict[Any, Band] = {}
        try:
            for band in bands:
                futures[client.submit(
                    _band_task, plan, *band.sections, thresholds, self._kernel, keys,
                    targets if band.direct else None, count_masked,
                    key=f"medstack-band-{self._run_id}-{band.index}")] = band
            for fut in distributed.as_completed(list(futures), loop=client.loop):
                try:
                    output = fut.result()
                except distributed.KilledWorker as err:
                    raise MedstackError(
                        f"Dask: workers kept dying while running {err.task} "
                        "(out of memory? see the worker logs); no output written"
                    ) from err
                band = futures.pop(fut)
                fut.release()
                rows = output.rows
                result = None if rows is None or not keys else SectionResult(
                    rows.get("median"), rows.get("ngood"), rows.get("minchosen"))
                yield Piece(
                    section=Section(band.index, band.out, band.out), result=result,
                    sections=band.sections[1] - band.sections[0],
                    nonfinite=np.asarray(output.nonfinite, dtype=np.int64),
                    no_good=output.no_good, masked=None if output.masked is None
                    else np.asarray(output.masked, np.int64),
                    integer=tuple(self._names.get(name, name) for name in output.integer))
        finally:
            if futures:
                client.cancel(list(futures))
