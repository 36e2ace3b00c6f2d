"""The Python API: :func:`median_image`, the door behind the command line.

It checks the arguments, validates the parameters once (:func:`medstack.params.validate`),
resolves the inputs and their per-image values (:func:`medstack.io.inputs.open_inputs`, as
every door does), plans (:func:`medstack.core.plan.prepare`), picks the executor the run
options name (:func:`make_executor`) and runs (:func:`medstack.core.run.run`).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

from .config import per_image_values
from .core.plan import output_name, prepare
from .core.products import MedianResult
from .core.run import Executor, Progress, run
from .errors import ParameterError
from .io.inputs import open_inputs
from .params import parse_size, validate

__all__ = ["make_executor", "median_image"]


def _is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_api_arguments(input: Any, output: Any, workers: Any, progress: Any,
                         kernel: Any, weights: Any = None, before_commit: Any = None,
                         connect_timeout: Any = 10.0) -> None:
    """ParameterError naming the argument of :func:`median_image` that has a wrong type or
    value (before any file is opened)."""
    from .kernels import KERNELS

    def is_name(value: Any) -> bool:
        return isinstance(value, (str, os.PathLike))

    if not is_name(input) and not (isinstance(input, (list, tuple))
                                   and all(is_name(v) for v in input)):
        raise ParameterError(
            f"input: expected a file name, pattern or @list (str or path) or a list of them, "
            f"got {type(input).__name__} {input!r}"[:200]
        )
    if output is not None and not is_name(output):
        raise ParameterError(f"output: expected a rootname (str or path) or None, got "
                             f"{type(output).__name__} {output!r}"[:200])
    if workers is not None and not _is_int(workers):
        raise ParameterError(f"workers: expected a whole number >= 1 or None, got "
                             f"{type(workers).__name__} {workers!r}"[:200])
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress: expected a callable progress(done, total) or None, got "
                             f"{type(progress).__name__} {progress!r}"[:200])
    if weights is not None and (isinstance(weights, (str, bytes)) or not (
            isinstance(weights, Sequence) and all(is_name(w) or w is None for w in weights))):
        raise ParameterError(f"weights: expected a list of weight file names (one per input) "
                             f"or None, got {type(weights).__name__} {weights!r}"[:200])
    if before_commit is not None and not callable(before_commit):
        raise ParameterError(f"before_commit: expected a callable before_commit(result) or None, "
                             f"got {type(before_commit).__name__} {before_commit!r}"[:200])
    if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, numbers.Real) or \
            not connect_timeout > 0:
        raise ParameterError(f"connect_timeout: expected a number of seconds > 0, got "
                             f"{connect_timeout!r}"[:200])
    if kernel not in KERNELS:
        raise ParameterError(f"kernel: unknown value {kernel!r}; choose one of: "
                             f"{', '.join(KERNELS)}")




def median_image(
    input: str | Sequence[str],
    output: str | os.PathLike[str] | None = None,
    *,
    weights: Sequence[str] | None = None,
    exptime: Sequence[float | None] | None = None,
    sky: Sequence[float | None] | None = None,
    readnoise: Sequence[float | None] | None = None,
    save_maps: bool = False,
    keep_data: bool = True,
    keep_maps: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    kernel: str = "fast",
    scheduler: str | None = None,
    client: Any = None,
    quicklook: bool = False,
    before_commit: Callable[[MedianResult], None] | None = None,
    connect_timeout: float = 10.0,
    max_memory: int | str | None = None,
    **params: Any,
) -> MedianResult:
    """Make the median image of a stack of singly drizzled images.

    Parameters
    ----------
    input : str or sequence of str
        Science files (``*_single_sci.fits``), exposure names (``*_flt.fits`` ...), globs or
        ``@list`` files. Each weight file is the science name with ``_single_sci`` →
        ``_single_wht``.
    output : str or path-like, optional
        Output rootname: writes ``<output>_med.fits``. Default is no file.
    weights : sequence of str, optional
        Explicit weight file per input.
    exptime, sky, readnoise : sequence of float, optional
        Per-image exposure time (s), sky (electrons) and read noise (electrons); win over the
        headers.
    save_maps : bool
        Also write/return the count-of-good-inputs map and, for minmed, the minimum-chosen map.
    keep_data : bool
        Return the arrays (default). False keeps memory bounded for large outputs.
    keep_maps : bool
        Return the maps as arrays (with ``keep_data``) without writing map files. Default is
        False.
    workers : int, optional
        Threads; with ``scheduler="dask-local"``, worker processes. Default is all cores.
    progress : callable, optional
        ``progress(done, total)`` after each section.
    kernel : {"fast", "reference"}
        Combine implementation. Default is "fast".
    scheduler : str, optional
        Where to compute: ``"threads"`` (this machine's threads), ``"dask-local"`` (a Dask
        LocalCluster of ``workers`` processes, started and closed by the call) or the address
        of a running Dask scheduler (``"tcp://host:port"``); see :mod:`medstack.executors.dask`.
        Default is "threads" unless ``client`` is given. Same result, bit for bit.
    client : distributed.Client, optional
        A connected Dask client to compute on (left open). Default is none.
    quicklook : bool
        Also build the quick-look PNG's content as the sections come (``result.quicklook``,
        see :class:`medstack.extras.quicklook.QuickLook`). Default is False.
    before_commit : callable, optional
        ``before_commit(result)`` when the image is made, before its files are renamed into
        place (see :func:`medstack.core.run.run`). Default is none.
    connect_timeout : float
        Seconds to wait for a Dask scheduler at an address (``scheduler="tcp://..."``) to
        answer before giving up with an error. Default is 10.
    max_memory : int or str, optional
        One total memory budget for the run, in bytes or as a size such as ``"2GiB"``: the
        sections of all inputs, the sections in flight and the kept arrays are planned to fit
        it (fewer rows per section, fewer sections in flight); ``combine_bufsize`` stays the
        per-input cap when given. With a Dask scheduler the sections are planned from it too.
        The result never depends on it. Default is none (``combine_bufsize``, default 1 MiB per input, alone).
    **params
        Median-step parameters by drizzlepac name (``combine_type="median"`` ...), see
        :data:`medstack.params.PARAMETERS`.

    Returns
    -------
    MedianResult
        ``.data`` and ``.header`` are the median image and its header.

    Raises
    ------
    MedstackError
        ``InputError``, ``ParameterError`` or ``OutputError``, one line naming the culprit.
    """
    _check_api_arguments(input, output, workers, progress, kernel, weights, before_commit,
                         connect_timeout)
    p = validate(params)
    max_memory_bytes = parse_size(max_memory)
    executor = make_executor(workers=workers, scheduler=scheduler, client=client,
                             connect_timeout=connect_timeout)
    # per-image values by the one rule of every door (.cfg, --table, createMedian)
    exptime, sky, readnoise = (per_image_values(name, values) for name, values in
                               (("exptime", exptime), ("sky", sky), ("readnoise", readnoise)))
    images = open_inputs(input, weights=weights, exptime=exptime, sky=sky, readnoise=readnoise)
    plan = prepare(images, p, workers=getattr(executor, "workers", None),
                   max_memory_bytes=max_memory_bytes, keep_data=keep_data,
                   maps=keep_data and (save_maps or keep_maps))
    path = output_name(output) if output is not None else None
    return run(plan, executor, path=path, keep_data=keep_data, save_maps=save_maps,
               keep_maps=keep_maps, progress=progress, kernel=kernel, quicklook=quicklook,
               before_commit=before_commit)


def make_executor(*, workers: int | None = None, scheduler: str | None = None, client: Any = None,
                  connect_timeout: float = 10.0) -> Executor:
    """The executor the run options name: this machine's threads, or Dask (imported only then).

    Parameters
    ----------
    workers, scheduler, client, connect_timeout
        As for :func:`median_image`.

    Raises
    ------
    ParameterError
        A bad value, naming it (listing the choices), or Dask missing for a Dask scheduler.
    """
    if client is not None or scheduler not in (None, "threads"):
        from .executors.dask import DaskExecutor  # Dask stays optional

        return DaskExecutor(scheduler, client, workers, connect_timeout)
    from .executors.threads import ThreadExecutor

    return ThreadExecutor(workers)
