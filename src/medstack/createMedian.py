"""drizzlepac-compatible interface to the median step: swap the import, keep the script.

>>> from medstack import createMedian          # was: from drizzlepac import createMedian
>>> createMedian.median('*flt.fits')            # doctest: +SKIP
>>> createMedian.median('@inputs.lst', configObj='astrodrizzle.cfg', output='visit1')
...                                             # doctest: +SKIP

The singly drizzled science images (``<rootname>_single_sci.fits``, written by AstroDrizzle's
driz_separate step, with their ``_single_wht.fits`` weights) are combined into
``<output>_med.fits`` by medstack's core, with drizzlepac 3.11.0's function names, signatures
and parameters, and its image bit for bit wherever drizzlepac is well defined. Parameters come,
in increasing priority, from the task defaults, ``configObj`` (a ``.cfg`` file of the
createMedian task or of AstroDrizzle, a dict or a ConfigObj; see :mod:`medstack.config`) and
``inputDict`` (keyword arguments); all are checked before any work.

Notes
-----
Where this module differs from drizzlepac's on purpose is listed in ``docs/api.md``
(DEVIATIONS): for example ``configObj=None`` means the task defaults (drizzlepac loads the last
file saved by its TEAL GUI), ``editpars=True`` opens a ``.cfg`` file in ``$VISUAL``/``$EDITOR``,
and ``median`` and ``createMedian`` return the :class:`~medstack.MedianResult` (drizzlepac:
None).
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import groupby
from pathlib import Path
from typing import Any

from ._version import __version__
from .api import run_stack
from .config import PER_IMAGE_KEYS, Settings, output_root, read_config
from .config.edit import edit_settings
from .config.keys import key_reference, parameter_docs
from .core.plan import default_workers, output_name, rootname
from .core.products import MedianResult
from .errors import InputError, MedstackError, ParameterError, StepAbortedError
from .io.imageobjects import is_image_object, stack_from_objects
from .io.inputs import InputImage, check_shapes, open_inputs
from .options import NOTICE, run_options
from .params import PARAMETERS, MedianParams, format_value

__all__ = ["createMedian", "getHelpAsString", "help", "median", "run"]

log = logging.getLogger(__name__)

__taskname__ = "createMedian"
STEP_NUM = 4  # the STEP number of the section in drizzlepac's .cfg files
PROCSTEPS_NAME = "Create Median"


def getHelpAsString(docstring: bool = False, show_ver: bool = True) -> str:
    """Return the help text of the median step: every parameter with its type, default and
    meaning (from :data:`medstack.params.PARAMETERS`), then the task-level and per-image inputs.

    Parameters
    ----------
    docstring : bool
        Start with the module's description (the text :func:`help` prints). Default is False.
    show_ver : bool
        Start with a line naming the task and the medstack version. Default is True.

    Notes
    -----
    drizzlepac returns a ``file://`` URL when an HTML help page is installed and
    ``docstring`` is False; this always returns text.
    """
    parts = []
    if show_ver:
        parts.append(f"Task: '{__taskname__}'. 'medstack' version: {__version__}\n")
    if docstring:
        parts.append(textwrap.dedent(__doc__ or "").strip() + "\n")
    parts.append(key_reference())
    return "\n".join(parts) + "\n"


def help(file: str | os.PathLike[str] | None = None) -> None:
    """Print the help text of the median step, or write it to ``file`` (replacing any earlier
    file of that name). Default is None: print it."""
    text = getHelpAsString(docstring=True, show_ver=True)
    if file is None:
        print(text)
    else:
        Path(file).write_text(text, encoding="utf-8")


def _images(items: Any, settings: Settings) -> list[InputImage]:
    """Input images from names and/or InputImage objects, with per-image overrides: names
    alone go through :func:`~medstack.io.inputs.open_inputs`, as in every other door."""
    if isinstance(items, (str, os.PathLike, InputImage)):
        items = [items]
    try:
        items = list(items)
    except TypeError:
        raise ParameterError("input: expected file names or InputImage objects, got "
                             f"{type(items).__name__}") from None
    bad = [item for item in items if not isinstance(item, (str, os.PathLike, InputImage))]
    if bad:
        raise ParameterError(f"input: expected file names or InputImage objects, got {bad[0]!r}")
    overrides = {k: getattr(settings, k) for k in PER_IMAGE_KEYS}
    if not any(isinstance(item, InputImage) for item in items):
        if not items:
            raise InputError("no input images")
        return open_inputs([os.fspath(item) for item in items], **overrides)
    images: list[InputImage] = []
    for objects, group in groupby(items, key=lambda item: isinstance(item, InputImage)):
        chunk = list(group)  # names between objects are opened together
        images.extend(chunk if objects else open_inputs([os.fspath(name) for name in chunk]))
    check_shapes(images)
    for key, values in overrides.items():
        if values is not None and len(values) != len(images):
            raise ParameterError(f"{key}: {len(values)} values given for {len(images)} "
                                 "input images")
    return [img.with_scalars(**{k: v[i] for k, v in overrides.items() if v is not None})
            for i, img in enumerate(images)]


def _log_params(params: MedianParams, **extra: Any) -> None:
    """The step's parameters as AstroDrizzle logs them: one ``\tname :\tvalue`` line each, in
    name order (medstack's own parameters only where they differ from their defaults)."""
    values = {p.name: format_value(p, getattr(params, p.name)) for p in PARAMETERS
              if p.drizzlepac or getattr(params, p.name) != p.default}
    values.update({k: str(v) for k, v in extra.items()})
    log.info("USER INPUT PARAMETERS for %s Step:", PROCSTEPS_NAME)
    for name in sorted(values):
        log.info("\t%s :\t%s", name, values[name])


def _ran(result: MedianResult, workers: int | None) -> None:
    """The one line saying that medstack made the median."""
    plan = result.plan
    assert plan is not None  # every run's result holds its plan
    log.info("medstack %s: %s of %d images on %d thread(s) in %.2f s -> %s", __version__,
             plan.params.combine_type, plan.n_images, workers or default_workers(),
             result.seconds, result.path or "memory")


def _run(items: Any, settings: Settings) -> MedianResult | None:
    params = settings.params
    if not params.median:
        log.info("Median combination step not performed.")
        return None
    _log_params(params)
    images = _images(items, settings)
    root = output_root(settings.output) or rootname(images[0].sci)
    options = run_options(workers=settings.num_cores, keep_data=False)
    result = run_stack(images, params, options, output=output_name(root))
    _ran(result, settings.num_cores)
    return result


@contextmanager
def _pipeline_voice() -> Iterator[None]:
    """Inside AstroDrizzle, its trailer file shows the step as drizzlepac logs it plus
    medstack's one line; the run's ``-v`` detail (plan line, per-image table) stays out.
    Warnings and the compile notice still show."""
    loggers = [logging.getLogger(f"medstack.{part}") for part in ("core", "io", "executors")]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.level == logging.NOTSET:
            logger.setLevel(NOTICE)
    try:
        yield
    finally:
        for logger, level in zip(loggers, saved):
            logger.setLevel(level)


def _run_objects(objects: Sequence[Any], settings: Settings) -> MedianResult:
    """The step on drizzlepac image objects, as AstroDrizzle runs it (see
    :mod:`medstack.io.imageobjects` for what is read from them)."""
    params = settings.params
    proc_unit = settings.proc_unit or "native"
    compress = bool(settings.driz_sep_compress)
    _log_params(params, proc_unit=proc_unit, compress=compress)
    stack = stack_from_objects(objects, proc_unit=proc_unit, compress=compress)
    thresholds = (params.combine_lthresh, params.combine_hthresh)
    if stack.threshold_scale != 1.0 and thresholds != (None, None):
        log.warning("combine_lthresh/combine_hthresh are used as given, in the units of the "
                    "singles (electrons/s); drizzlepac 3.11.0 would multiply them by %g here "
                    "(proc_unit=native)", stack.threshold_scale)
    in_memory = stack.in_memory
    options = run_options(workers=settings.num_cores, keep_data=in_memory)
    path = None if in_memory else output_name(stack.median_name)
    try:
        with _pipeline_voice():
            result = run_stack(stack.images, params, options, output=path)
    except StepAbortedError:
        # no median of an earlier run may be left for blot to pick up (drizzlepac removes it
        # before it starts)
        if path is not None and path.exists():
            try:
                path.unlink()
                log.warning("%s: the median of an earlier run removed, so that later steps "
                            "cannot use it", path)
            except OSError as err:
                log.warning("%s: cannot remove the median of an earlier run (%s)", path,
                            err.strerror)
        raise
    if path is not None:
        log.info("Saving output median image to: '%s'", path)
    if in_memory:
        from astropy.io import fits

        hdul = fits.HDUList([fits.PrimaryHDU(data=result.data, header=result.header)])
        for obj in stack.objects:  # as drizzlepac hands it back, for blot and driz_cr
            obj.saveVirtualOutputs({stack.median_name: hdul})
    _ran(result, settings.num_cores)
    return result


def median(input: Any = None, configObj: Any = None, editpars: bool = False,
           **inputDict: Any) -> MedianResult | None:
    """Combine the singly drizzled images into ``<output>_med.fits``, the estimate of the clean
    sky that AstroDrizzle's cosmic-ray steps use.

    Parameters
    ----------
    input : str or list of str
        A filename, a glob, an ``@file`` list, or a list of names: singly drizzled science
        images (``*_single_sci.fits``, weights ``*_single_wht.fits``) or exposure names
        (``*_flt.fits``, ...), which map to ``<rootname>_single_sci.fits`` beside them.
    configObj : None, str, dict or configobj.ConfigObj
        None or ``'defaults'`` (the task defaults), a ``.cfg`` file of the createMedian task or
        of AstroDrizzle (its ``[STEP 4: CREATE MEDIAN IMAGE]`` section), or a dict/ConfigObj
        of either layout. Default is None.
    editpars : bool
        Edit the parameters in ``$VISUAL``/``$EDITOR`` (a ``.cfg`` file, re-opened with the
        error at its top while they are invalid) before running. Needs a terminal. Default is
        False.
    **inputDict
        Override ``configObj``: any parameter below, ``output`` (the median is
        ``<output>_med.fits``; default the first input's rootname), ``num_cores`` (threads;
        default all cores) and the per-image lists ``exptime`` (s), ``sky`` and ``readnoise``
        (electrons), which override the singles' headers.

    Other Parameters
    ----------------
{PARAMETERS}

    Returns
    -------
    MedianResult or None
        None when ``median`` is False (the step is skipped, with a log message).

    Raises
    ------
    ParameterError
        No ``input``, an unknown key or an invalid value, before any image is read.
    InputError
        A missing or inconsistent input, naming it.
    OutputError
        The median file cannot be written.
    """
    if input is None:
        raise ParameterError("input: please supply an input image")
    settings = read_config(configObj).merged({**inputDict, "input": input}, "inputDict")
    _ = settings.params  # validates every value before any work
    if editpars:
        settings = edit_settings(settings, __taskname__)
    return _run(settings.input, settings)


median.__doc__ = (median.__doc__ or "").replace("{PARAMETERS}", parameter_docs("    "))


def run(configObj: Any) -> MedianResult | None:
    """Run the step from a configuration alone (its ``input`` key names the images).

    Parameters
    ----------
    configObj : str, dict or configobj.ConfigObj
        As for :func:`median`; it must hold ``input``.
    """
    settings = read_config(configObj)
    if settings.input is None:
        raise ParameterError(f"{settings.source}: input: please supply an input image")
    return _run(settings.input, settings)


def createMedian(imgObjList: Sequence[Any] | None, configObj: Any,
                 procSteps: Any = None) -> MedianResult | None:
    """Median step as AstroDrizzle calls it.

    Parameters
    ----------
    imgObjList : list of drizzlepac image objects, str or InputImage
        AstroDrizzle's image objects, read as drizzlepac 3.11.0 reads them
        (:mod:`medstack.io.imageobjects`); or file names as for :func:`median`, or
        :class:`medstack.io.inputs.InputImage` objects.
    configObj : None, str, dict or configobj.ConfigObj
        As for :func:`median`; ``output`` and ``num_cores`` are read from its top level, and
        with image objects also ``proc_unit`` and STEP 3's ``driz_sep_compress``.
    procSteps : object, optional
        drizzlepac's ``ProcSteps``: it gets ``addStep('Create Median')`` and
        ``endStep('Create Median')`` (with ``reason='off'`` or ``'aborted'`` and
        ``delay_msg=True`` when the step is off or fails).

    Returns
    -------
    MedianResult or None
        None when ``median`` is False. With in-memory image objects (AstroDrizzle's
        ``in_memory=True``) the median is also handed to every object, as drizzlepac does
        (``saveVirtualOutputs``), and no file is written.

    Raises
    ------
    StepAbortedError
        ``combine_nlow + combine_nhigh`` rejects every image, where drizzlepac aborts its step
        (:mod:`medstack.drizzlepac` raises drizzlepac's own ``StepAbortedError`` instead).
    ParameterError, InputError, OutputError
        As :func:`median`.

    Notes
    -----
    With image objects the step differs from drizzlepac's only where ``docs/deviations.md``
    says so: for example the ``i`` types fill every pixel whose inputs are all masked, not only
    column 0, so the median, and through it the CR masks, can differ there.
    """
    if imgObjList is None:
        raise ParameterError("imgObjList: please provide a list of input images to the "
                             "median step")
    settings = read_config(configObj)
    params = settings.params
    if procSteps is not None:
        procSteps.addStep(PROCSTEPS_NAME)
    if not params.median:
        log.info("Median combination step not performed.")
        if procSteps is not None:
            procSteps.endStep(PROCSTEPS_NAME, reason="off", delay_msg=True)
        return None
    items = ([imgObjList] if isinstance(imgObjList, (str, os.PathLike))
             or is_image_object(imgObjList) else imgObjList)
    try:
        try:
            items = list(items)
        except TypeError:
            raise ParameterError("imgObjList: expected a list of image objects or file names, "
                                 f"got {type(imgObjList).__name__}") from None
        objects = [is_image_object(item) for item in items]
        if any(objects) and not all(objects):
            raise ParameterError("imgObjList: mixes drizzlepac image objects with other inputs")
        result = _run_objects(items, settings) if any(objects) else _run(items, settings)
    except MedstackError:
        if procSteps is not None:
            procSteps.endStep(PROCSTEPS_NAME, reason="aborted", delay_msg=True)
        raise
    if procSteps is not None:
        procSteps.endStep(PROCSTEPS_NAME)
    return result
