"""The Python API: :func:`median_image`, the door behind the command line, and
:func:`run_stack`, what every door does once it has validated the parameters and run options.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .config import per_image_values
from .core.plan import prepare
from .core.products import MedianResult
from .core.run import Progress, run
from .errors import ParameterError
from .executors import make_executor
from .io.inputs import InputImage, open_inputs
from .io.outputs import Products
from .options import CONNECT_TIMEOUT_S, RunOptions, numpydoc, run_options
from .params import MedianParams, validate

__all__ = ["make_executor", "median_image", "run_stack"]


def _is_name(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


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
    kernel: str = "auto",
    scheduler: str | None = None,
    client: Any = None,
    quicklook: bool = False,
    before_commit: Callable[[MedianResult], None] | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
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
%(run_options)s
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
    # the arguments, before any file is opened (run_options checks the run options)
    if not _is_name(input) and not (isinstance(input, (list, tuple))
                                    and all(_is_name(v) for v in input)):
        raise ParameterError(
            f"input: expected a file name, pattern or @list (str or path) or a list of them, "
            f"got {type(input).__name__} {input!r}"[:200]
        )
    if output is not None and not _is_name(output):
        raise ParameterError(f"output: expected a rootname (str or path) or None, got "
                             f"{type(output).__name__} {output!r}"[:200])
    if weights is not None and (isinstance(weights, (str, bytes)) or not (
            isinstance(weights, Sequence) and all(_is_name(w) or w is None for w in weights))):
        raise ParameterError(f"weights: expected a list of weight file names (one per input) "
                             f"or None, got {type(weights).__name__} {weights!r}"[:200])
    options = run_options(
        save_maps=save_maps, keep_data=keep_data, keep_maps=keep_maps, workers=workers,
        progress=progress, kernel=kernel, scheduler=scheduler, client=client,
        quicklook=quicklook, before_commit=before_commit, connect_timeout=connect_timeout,
        max_memory=max_memory)
    return run_stack(input, validate(params), options, output=output, weights=weights,
                     exptime=exptime, sky=sky, readnoise=readnoise)


median_image.__doc__ = (median_image.__doc__ or "") % {"run_options": numpydoc()}


def run_stack(input: Any, params: MedianParams, options: RunOptions, *,
              output: str | os.PathLike[str] | Products | None = None,
              **per_image: Any) -> MedianResult:
    """Open the inputs, plan and run: what every door does once it has validated
    ``params`` and ``options``.

    Parameters
    ----------
    input
        The inputs, as for :func:`median_image`, or the
        :class:`~medstack.io.inputs.InputImage` s a door has already resolved.
    params : MedianParams
    options : RunOptions
    output : str, path-like or Products, optional
        Output rootname, or a path ending in ``.fits``; or every product of the run, named
        by the door (:class:`~medstack.io.outputs.Products`). Default is no file.
    **per_image
        ``weights``, ``exptime``, ``sky``, ``readnoise`` for
        :func:`medstack.io.inputs.open_inputs`.
    """
    executor = make_executor(options)
    # per-image values by the one rule of every door (.cfg, --table, createMedian)
    for name in ("exptime", "sky", "readnoise"):
        if name in per_image:
            per_image[name] = per_image_values(name, per_image[name], params.kind)
    images = (list(input) if isinstance(input, (list, tuple)) and input
              and all(isinstance(v, InputImage) for v in input)
              else open_inputs(input, **per_image))
    plan = prepare(images, params, workers=getattr(executor, "workers", None),
                   max_memory_bytes=options.max_memory, keep_data=options.keep_data,
                   maps=options.wants_maps)
    return run(plan, executor, options, path=output)
