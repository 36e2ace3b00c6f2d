"""The median step on a Dask cluster (``pip install -e ".[dask]"`` from a checkout).

Same plan, same numerics, same result as the thread executor (:mod:`.threads`), bit for bit:
the run is :func:`medstack.core.run.run` either way; only where the sections are computed
changes:

1. Tasks on the workers compute each image's mean weight
   (:func:`medstack.core.weights.weight_stats`; about :data:`BANDS_PER_THREAD` tasks per worker
   thread, each for a run of consecutive images); the client only turns the N small results
   into mask thresholds (:func:`medstack.core.weights.thresholds_of`, in the run).
2. The row sections of the plan are grouped into *bands* of whole consecutive sections. One task
   per band gets the plan (file names, HDU indices, per-image scalars), its range of sections
   and the thresholds, never pixel data. It opens the inputs itself (once per worker process and
   run: the readers are kept for the worker's later bands), computes its sections one at a time
   with :func:`medstack.core.unit.compute_section` (so a task holds the same section buffers as
   one local worker thread, and no file pages beyond the section in use), and either
   returns its output rows to the client or, for a large band, writes them straight into the
   output's temporary file (:class:`medstack.io.writer.RowTarget`).
3. The client collects the bands as they finish, reports progress in sections, and renames the
   finished file over its final name (:class:`medstack.io.writer.FitsImageWriter`).

Every task is a pure function of its arguments and writes the same bytes at the same offsets
when repeated, so when a worker dies Dask simply runs its tasks again elsewhere; the output is
published only after every band has arrived.

``scheduler`` is ``"dask-local"`` (a :class:`distributed.LocalCluster` of ``workers`` single-
threaded worker processes, started and closed by the run) or the address of a running
scheduler (``tcp://host:port``); or pass a connected :class:`distributed.Client` as ``client``.
Workers must be able to import medstack and to read the inputs (and, for direct writes, the
output directory) under the same names as the client: see docs/dask.md.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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

__all__ = [
    "BANDS_PER_THREAD",
    "DASK_LOCAL",
    "INSTALL_HINT",
    "RETURN_BYTES",
    "Band",
    "DaskExecutor",
    "check_scheduler",
    "plan_bands",
]

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

_ADDRESS = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")


def _require_distributed(what: str) -> Any:
    """The ``distributed`` module, or a one-line :class:`ParameterError` naming the install."""
    try:
        import distributed
    except ImportError as err:
        raise ParameterError(
            f"scheduler: {what} needs Dask (dask[distributed]), which is not installed; "
            f"{INSTALL_HINT}"
        ) from err
    return distributed


def check_scheduler(scheduler: str | None, client: Any = None) -> str:
    """Check a ``scheduler``/``client`` pair for a Dask run and that Dask is installed.

    Parameters
    ----------
    scheduler : str or None
        ``"dask-local"``, or a scheduler address such as ``"tcp://host:8786"``. None means
        ``"dask-local"`` unless ``client`` is given.
    client : distributed.Client, optional
        A connected client to use instead.

    Returns
    -------
    str
        ``"dask-local"``, the address, or ``"client"``.

    Raises
    ------
    ParameterError
        An unknown value, a malformed address (unknown scheme, no host, a port that is not a
        number), both given, or Dask not installed (the message says
        ``pip install -e ".[dask]"`` from a checkout).
    """
    if client is not None:
        if scheduler is not None:
            raise ParameterError(
                f"scheduler: give a scheduler ({scheduler!r}) or a client, not both"
            )
        _require_distributed("a Dask client")
        return "client"
    scheduler = DASK_LOCAL if scheduler is None else str(scheduler).strip()
    if scheduler == "threads":
        raise ParameterError(
            "scheduler: 'threads' is this machine's thread executor (medstack.executors.threads), "
            "not a Dask scheduler"
        )
    if scheduler != DASK_LOCAL and not _ADDRESS.match(scheduler):
        raise ParameterError(
            f"scheduler: unknown value {scheduler!r}; use threads, {DASK_LOCAL} or the address "
            "of a running Dask scheduler (tcp://HOST:PORT)"
        )
    if scheduler != DASK_LOCAL:
        _check_address(scheduler)
    _require_distributed(scheduler)
    return scheduler


#: Address schemes of Dask's communication layers.
SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")


def _check_address(address: str) -> None:
    """ParameterError, at once, for a scheduler address that cannot be right: an unknown
    scheme, no host, or a port that is not a number from 1 to 65535."""
    scheme = address.partition("://")[0]
    if scheme not in SCHEMES:
        raise ParameterError(
            f"scheduler: {address!r}: unknown address scheme {scheme!r}; a Dask scheduler's "
            f"address starts with {', '.join(s + '://' for s in SCHEMES)} (or use threads, "
            f"{DASK_LOCAL})"
        )
    parts = urlsplit(address)
    try:
        port = parts.port  # ValueError: not a number, or out of range
    except ValueError as err:
        raise ParameterError(f"scheduler: {address!r}: the port is not a number from 1 to "
                             "65535") from err
    if not parts.hostname or parts.path not in ("", "/") or port == 0:
        raise ParameterError(f"scheduler: {address!r}: expected {scheme}://HOST:PORT")


@contextmanager
def _quiet_children() -> Iterator[None]:
    """Our LocalCluster's worker processes made deaf to SIGINT: a Ctrl-C at the terminal goes
    to the whole process group, and every worker would print its own traceback; this process
    closes the cluster itself. The workers are forked from a multiprocessing fork server that
    was started with SIGINT ignored (an ignored signal stays ignored across exec, and the fork
    server hands that on to each worker); this process ignores SIGINT only for the instant it
    takes to start that server, with SIGINT blocked meanwhile, so a Ctrl-C while the cluster
    starts, even in that instant, still stops the run."""
    import multiprocessing
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    import dask

    if (threading.current_thread() is not threading.main_thread()
            or "forkserver" not in multiprocessing.get_all_start_methods()):
        yield  # pragma: no cover - not POSIX, or not the main thread
        return
    from distributed.utils import get_mp_context

    servers = [multiprocessing.forkserver._forkserver,  # (and the resource tracker it starts)
               multiprocessing.resource_tracker._resource_tracker]
    started = [s for s in servers if getattr(s, "_pid", getattr(s, "_forkserver_pid", 1)) is None]
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context()  # distributed's preload list for the server
        # SIGINT blocked around the instant it is ignored: one that comes meanwhile stays
        # pending (Linux never discards a blocked signal) and is taken once the handler is
        # back, instead of being lost
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            old = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                multiprocessing.forkserver.ensure_running()
            finally:
                signal.signal(signal.SIGINT, old)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        _STARTED_SERVERS.extend(started)  # ours: stopped with the cluster (_stop_fork_server)
        yield


#: Fork servers :func:`_quiet_children` started, stopped once their cluster is closed.
_STARTED_SERVERS: list[Any] = []


def _stop_fork_server() -> None:
    """Stop the fork server (and resource tracker) :func:`_quiet_children` started: they would
    outlive the run as child processes of a Python session that called :func:`run`."""
    while _STARTED_SERVERS:  # the fork server first: it holds the tracker's pipe too
        server = _STARTED_SERVERS.pop(0)
        stop = getattr(server, "_stop", None)
        if stop is not None:
            try:
                stop()
            except Exception:  # pragma: no cover - already gone
                log.debug("could not stop the fork server", exc_info=True)


def _hold_sigint() -> Any:
    """Block SIGINT (and SIGTERM) in this thread (threads started meanwhile inherit the block, so none of
    them takes it); returns what :func:`_release_sigint` needs. A Ctrl-C meanwhile stays
    pending."""
    block = getattr(signal, "pthread_sigmask", None)
    if block is None or threading.current_thread() is not threading.main_thread():
        return None  # pragma: no cover - not POSIX, or not the main thread
    return block(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _release_sigint(mask: Any) -> None:
    """Undo :func:`_hold_sigint`: a pending Ctrl-C is delivered now (KeyboardInterrupt)."""
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@contextmanager
def _quiet_distributed() -> Iterator[None]:
    """distributed's own log (its WARNINGs about workers it is stopping) and asyncio's (its
    "Task exception was never retrieved" for the tasks a Ctrl-C cut short) silenced, for the
    life of our own LocalCluster: like its workers' logs (``silence_logs``), they would only
    add lines to the one medstack prints."""
    loggers = [logging.getLogger(name) for name in ("distributed", "asyncio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


#: Seconds to wait for a scheduler at an address to answer, by default.
CONNECT_TIMEOUT = 10.0


@contextmanager
def _connect(scheduler: str, client: Any, workers: int | None,
             connect_timeout: float = CONNECT_TIMEOUT) -> Iterator[Any]:
    """A client: the given one (left open), a new LocalCluster's, or one to an address."""
    if client is not None:
        yield client
        return
    distributed = _require_distributed(scheduler)
    if scheduler == DASK_LOCAL:
        import dask

        n = default_workers() if workers is None else workers
        log.info("starting a Dask LocalCluster of %d worker process(es)", n)
        # distributed starts workers with MALLOC_TRIM_THRESHOLD_ set, which also fixes glibc's
        # mmap threshold: every large NumPy temporary is then a fresh mmap, page-faulted in
        # again for every section, which costs the step more than the trimming saves. Our own
        # cluster's workers go without it.
        key = "distributed.nanny.pre-spawn-environ"
        environ = {k: v for k, v in (dask.config.get(key, default=None) or {}).items()
                   if k != "MALLOC_TRIM_THRESHOLD_"}
        with _quiet_distributed():
            with dask.config.set({key: environ}), _quiet_children():
                mask = _hold_sigint()  # a Ctrl-C while the cluster starts waits until it has
                try:
                    cluster = distributed.LocalCluster(
                        n_workers=n, threads_per_worker=1, processes=True,
                        dashboard_address=":0",
                        silence_logs=logging.CRITICAL,  # no worker WARNINGs when we close it
                    )
                except BaseException:
                    _release_sigint(mask)
                    raise
            try:
                _release_sigint(mask)  # (a Ctrl-C held back is raised here: cluster closed)
                log.info("Dask dashboard: %s", cluster.dashboard_link)
                with distributed.Client(cluster, set_as_default=False) as local:
                    yield local
            finally:
                try:
                    cluster.close()
                finally:
                    _stop_fork_server()
        return
    if workers is not None:
        log.info("workers=%d ignored: the cluster at %s has its own workers", workers, scheduler)
    try:
        remote = distributed.Client(scheduler, set_as_default=False, timeout=connect_timeout)
    except (OSError, TimeoutError) as err:
        raise MedstackError(f"scheduler {scheduler}: cannot connect within "
                            f"{connect_timeout:g} s (connect_timeout); is a Dask scheduler "
                            "running there?") from err
    with remote:
        yield remote


@dataclass(frozen=True)
class Band:
    """A task's share of the image: whole consecutive sections of the plan.

    Attributes
    ----------
    index : int
        Position, from 0.
    sections : (int, int)
        Indices ``[first, stop)`` into :attr:`StackPlan.sections`.
    out : (int, int)
        Image rows ``[start, stop)`` the band outputs.
    direct : bool
        Whether the task writes its rows into the temporary output file itself (else it
        returns them).
    """

    index: int
    sections: tuple[int, int]
    out: tuple[int, int]
    direct: bool


def plan_bands(plan: StackPlan, n_threads: int, *, row_bytes: int, direct_ok: bool,
               sections_per_band: int | None = None) -> list[Band]:
    """Group the plan's sections into bands.

    Parameters
    ----------
    plan : StackPlan
        The plan.
    n_threads : int
        Worker threads of the cluster; the default aims at :data:`BANDS_PER_THREAD` bands each.
    row_bytes : int
        Bytes of one output row, all returned products together.
    direct_ok : bool
        Whether tasks may write into the temporary output file (there is one and no array is
        kept). Bands larger than :data:`RETURN_BYTES` then write directly; without it, bands
        are cut to at most :data:`RETURN_BYTES` of output.
    sections_per_band : int, optional
        Fixed band size in sections. Default is chosen as above.
    """
    sections = plan.sections
    total = len(sections)
    if total == 0:
        return []
    if sections_per_band is None:
        per = max(1, -(-total // (BANDS_PER_THREAD * max(1, n_threads))))
        if not direct_ok and row_bytes > 0:
            step = sections[0].out[1] - sections[0].out[0]
            per = max(1, min(per, RETURN_BYTES // (row_bytes * step)))
    else:
        per = int(sections_per_band)
        if per < 1:
            raise ParameterError(f"sections_per_band: must be >= 1, got {per}")
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


Readers = tuple[list[Reader], list[Reader] | None]


class _Stack:
    """The open readers of one stack in a worker process, shared by the bands that run there
    and closed once the last of them is done with a stack that is no longer current."""

    def __init__(self, readers: Readers, current: bool) -> None:
        self.readers = readers
        self.buffers = SectionBuffers()  # read buffers reused from section to section
        self.users = 0
        self.current = current  # False: close when the last user leaves

    def close(self) -> None:
        for reader in self.readers[0] + (self.readers[1] or []):
            reader.close()


#: Per worker process: the readers of the run in progress, so that a worker opens each input
#: once per run rather than once per band. Keyed by name, HDU, device, inode, size and mtime of
#: every file, so a changed file is opened again. Emptied at the end of each run.
_cache: dict[tuple[Any, ...], _Stack] = {}
_cache_lock = threading.Lock()
_opening_lock = threading.Lock()  # held while a thread opens a stack (see _acquire)


def _files_key(plan: StackPlan) -> tuple[Any, ...] | None:
    files = [(img.sci, img.sci_hdu) for img in plan.images]
    if plan.needs_weights:
        files += [(img.wht, img.wht_hdu) for img in plan.images]
    try:
        stats = [os.stat(name) for name, _ in files]
    except OSError:
        return None  # the reader will report it
    return tuple((name, hdu, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                 for (name, hdu), st in zip(files, stats))


def _acquire(plan: StackPlan) -> _Stack:
    """The plan's readers: the worker's shared ones when it has them, else newly opened (and
    shared, unless they hold whole images). Give them back with :func:`_leave`.

    One thread of a worker opens at a time (:data:`_opening_lock`), so that two bands that
    start together on one worker open the inputs once, not once each."""
    key = _files_key(plan)
    with _opening_lock:
        if key is not None:
            with _cache_lock:
                stack = _cache.get(key)
                if stack is not None:
                    stack.users += 1
                    return stack
        readers = _open_readers(plan)
        everything = readers[0] + (readers[1] or [])
        shared = key is not None and not any(r.in_memory for r in everything)
        stack = _Stack(readers, current=shared)
        stack.users = 1
        if shared:
            with _cache_lock:
                for old in _cache.values():  # another stack: closed when its bands are done
                    _retire(old)
                _cache.clear()
                _cache[key] = stack
        return stack


def _retire(stack: _Stack) -> None:
    """Mark a stack as no longer current; close it now if no band uses it (lock held)."""
    stack.current = False
    if stack.users == 0:
        stack.close()


def _leave(stack: _Stack) -> None:
    """A band is done with ``stack``: close it if it was the last user of a retired stack."""
    with _cache_lock:
        stack.users -= 1
        if not stack.current and stack.users == 0:
            stack.close()


def _drop_cache() -> None:
    """On every worker at the end of a run: close the shared readers (once no band uses them),
    so that no input file stays open (and, if deleted, takes disk space) after the run."""
    with _cache_lock:
        for stack in _cache.values():
            _retire(stack)
        _cache.clear()


def _open_readers(plan: StackPlan) -> Readers:
    """Open every input of the plan as the thread executor does (:func:`open_reader`);
    on failure, close what was opened."""
    opened: list[Reader] = []
    try:
        for img in plan.images:
            opened.append(image_reader(img, "sci"))
        if plan.needs_weights:
            for img in plan.images:
                opened.append(image_reader(img, "wht"))
    except BaseException:
        for reader in opened:
            reader.close()
        raise
    n = plan.n_images
    return opened[:n], (opened[n:] if plan.needs_weights else None)


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
    """On a worker: compute sections ``[first, stop)`` and return or write their rows.

    Holds one section's input rows at a time (the bufsize rule; the read buffers are reused
    by the worker's later sections), plus, when returning, the band's output rows. Repeating
    it writes the same bytes at the same offsets.
    """
    sections = plan.sections[first:stop]
    o0 = sections[0].out[0]
    nx = plan.shape[1]
    rows = None
    if targets is None:
        rows = {key: np.empty((sections[-1].out[1] - o0, nx), dtype=_DTYPES[key]) for key in keys}
    stack = _acquire(plan)
    sci_readers, wht_readers = stack.readers
    readers = sci_readers + (wht_readers or [])
    try:
        nonfinite = np.zeros(plan.n_images, dtype=np.int64)
        masked = np.zeros(plan.n_images, dtype=np.int64) if count_masked else None
        no_good = 0
        for section in sections:
            result, bad = compute_section(plan, section, sci_readers, wht_readers,
                                                 thresholds, kernel, buffers=stack.buffers,
                                                 count_masked=count_masked)
            nonfinite += bad
            no_good += int(result.ngood.size - np.count_nonzero(result.ngood))
            if masked is not None:
                masked += result.masked if result.masked is not None else 0
            parts = {"median": result.median, "ngood": result.ngood,
                     "minchosen": result.minchosen}
            a, b = section.out
            if targets is not None:
                for key, target in targets.items():
                    target.write_rows(a, parts[key])
            else:
                for key in keys:
                    rows[key][a - o0:b - o0] = parts[key]
        if targets is not None:
            for target in targets.values():
                target.sync()
    finally:
        _leave(stack)
    return _BandOutput(rows, nonfinite.tolist(), [r.path for r in readers if r.integer],
                       no_good, None if masked is None else masked.tolist())


def _compressed(name: str) -> bool:
    try:
        return is_compressed(name)
    except OSError:  # unreadable here: the worker that reads it will say so
        return False


def _threads(client: Any) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # pragma: no cover - a client without nthreads()
        return 1


class DaskExecutor(Executor):
    """Compute on a Dask cluster: weight statistics as tasks, then bands of whole sections.

    Parameters
    ----------
    scheduler : str, optional
        ``"dask-local"`` (a LocalCluster of ``workers`` single-threaded processes, started and
        closed by the run) or a scheduler address (``tcp://host:port``). Default is
        ``"dask-local"`` unless ``client`` is given.
    client : distributed.Client, optional
        A connected client to run on; it is left open.
    workers : int, optional
        Worker processes of the ``dask-local`` cluster. Default is all cores. Ignored with a
        scheduler address or a client.
    connect_timeout : float
        Seconds to wait for the scheduler at an address to answer. Default is
        :data:`CONNECT_TIMEOUT` (10 s).
    sections_per_band : int, optional
        Sections per task. Default: about :data:`BANDS_PER_THREAD` bands per worker thread.

    Raises
    ------
    ParameterError
        A bad ``scheduler``, ``workers`` or ``connect_timeout``, or Dask missing.

    Notes
    -----
    The inputs are read by the workers, under the names the client gives: on a cluster they
    must be on a filesystem every worker sees. Compressed inputs (``.fits.gz``) are
    decompressed, streamed, into a temporary file on each worker that reads them (its system
    temporary directory), once per worker: that costs disk there, not memory. In-memory inputs
    (AstroDrizzle's ``in_memory=True``) are refused: workers cannot read them.
    """


    def __init__(self, scheduler: str | None = None, client: Any = None,
                 workers: int | None = None, connect_timeout: float = CONNECT_TIMEOUT,
                 sections_per_band: int | None = None) -> None:
        self.where = check_scheduler(scheduler, client)
        self.client = client
        if workers is not None:
            workers = int(workers)
            if workers < 1:
                raise ParameterError(f"workers: must be >= 1, got {workers}")
        self.workers = workers
        if not (isinstance(connect_timeout, (int, float)) and not isinstance(connect_timeout, bool)
                and connect_timeout > 0 and math.isfinite(connect_timeout)):
            raise ParameterError(f"connect_timeout: expected a number of seconds > 0, got "
                                 f"{connect_timeout!r}")
        self.connect_timeout = float(connect_timeout)
        self.sections_per_band = sections_per_band
        self._dask: Any = None
        self._plan: StackPlan | None = None
        self._kernel: Kernels | None = None
        self._out_path: Path | None = None
        self._run_id = ""

    @contextmanager
    def open(self, plan: StackPlan, *, kernel: Kernels, out_path: Path | None
             ) -> Iterator[DaskExecutor]:
        if any(img.memory is not None for img in plan.images):
            raise ParameterError("scheduler: in-memory inputs (AstroDrizzle's in_memory=True) "
                                 "run on this machine's threads only; use scheduler='threads'")
        inputs = [name for img in plan.images for name in (img.sci, img.wht)]
        compressed = [name for name in inputs if _compressed(name)]
        if compressed:
            log.info("%d compressed input file(s) (%s, ...): each worker that reads them "
                     "decompresses them once into a temporary file (disk, not memory); "
                     "decompress them first to save that time", len(compressed), compressed[0])
        self._plan, self._kernel, self._out_path = plan, kernel, out_path
        self._run_id = uuid.uuid4().hex[:12]
        with _connect(self.where, self.client, self.workers, self.connect_timeout) as client:
            self._dask = client
            try:
                yield self
            finally:
                if self.where != DASK_LOCAL:  # a LocalCluster of our own is closed anyway
                    try:
                        client.run(_drop_cache)
                    except Exception:  # pragma: no cover - the cluster may be gone already
                        log.debug("could not clear the workers' reader cache", exc_info=True)
                self._dask = None

    def weight_stats(self) -> list[WeightStats]:
        assert self._plan is not None
        plan, client = self._plan, self._dask
        files = [(img.wht, img.wht_hdu) for img in plan.images]
        per = -(-len(files) // (BANDS_PER_THREAD * _threads(client)))  # images per task
        futures = [client.submit(_weight_task, files[i:i + per], plan.section_rows,
                                 self._kernel, key=f"medstack-weight-{self._run_id}-{i // per}")
                   for i in range(0, len(files), per)]
        return [st for part in client.gather(futures) for st in part]

    def sections(self, thresholds: np.ndarray | None, sinks: OutputSinks,
                 count_masked: bool) -> Iterator[Piece]:
        assert self._plan is not None
        plan, client = self._plan, self._dask
        distributed = _require_distributed(self.where)
        ny, nx = plan.shape
        threads = _threads(client)
        quicklook = sinks.quicklook is not None
        keys = tuple(dict.fromkeys([*sinks.writers, *sinks.arrays,
                                    *(("median", "ngood") if quicklook else ())]))
        row_bytes = nx * sum(_DTYPES[k].itemsize for k in keys)
        direct_ok = self._out_path is not None and not sinks.arrays and not quicklook
        bands = plan_bands(plan, threads, row_bytes=row_bytes, direct_ok=direct_ok,
                           sections_per_band=self.sections_per_band)
        targets = {key: w.target() for key, w in sinks.writers.items()}
        per_task = section_bytes(plan.n_images, plan.section_rows, nx) + max(
            [(b.out[1] - b.out[0]) * row_bytes for b in bands if not b.direct], default=0)
        log.info(
            "%d inputs of %dx%d; %s; %d sections of %d rows in %d band(s) (%d written by "
            "the workers) on %s with %d thread(s); about %.1f MiB per task",
            plan.n_images, ny, nx, plan.params.combine_type, len(plan.sections),
            plan.section_rows, len(bands), sum(b.direct for b in bands), self.where, threads,
            per_task / 2**20,
        )
        futures: dict[Any, Band] = {}
        try:
            for band in bands:
                fut = client.submit(
                    _band_task, plan, *band.sections, thresholds, self._kernel, keys,
                    targets if band.direct else None, count_masked,
                    key=f"medstack-band-{self._run_id}-{band.index}",
                )
                futures[fut] = band
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
                result = None
                if output.rows is not None and keys:
                    rows = output.rows
                    result = SectionResult(rows.get("median"), rows.get("ngood"),
                                           rows.get("minchosen"))
                yield Piece(
                    section=Section(band.index, band.out, band.out), result=result,
                    sections=band.sections[1] - band.sections[0],
                    nonfinite=np.asarray(output.nonfinite, dtype=np.int64),
                    no_good=output.no_good,
                    masked=None if output.masked is None else np.asarray(output.masked,
                                                                         np.int64),
                    integer=tuple(output.integer),
                )
        finally:
            if futures:
                try:
                    client.cancel(list(futures))
                except Exception:  # pragma: no cover - the cluster may be gone already
                    pass
