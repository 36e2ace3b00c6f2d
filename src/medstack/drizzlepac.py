"""medstack as AstroDrizzle's own median step: a one-line switch.

>>> import medstack.drizzlepac
>>> medstack.drizzlepac.install()            # doctest: +SKIP
>>> from drizzlepac import astrodrizzle
>>> astrodrizzle.AstroDrizzle('*flt.fits', output='final')   # step 4 now runs medstack
...                                          # doctest: +SKIP

:func:`install` replaces ``drizzlepac.createMedian.createMedian``, which AstroDrizzle calls for
its "Create Median" step, with :func:`medstack.createMedian.createMedian`; every other step is
drizzlepac's own. drizzlepac is imported when a function is called, never by medstack itself.

Notes
-----
Where the parameters reject every image (``combine_nlow + combine_nhigh`` not below the number
of images, for median or mean), drizzlepac's own ``StepAbortedError`` is raised with the message
AstroDrizzle looks for ("Rejecting all pixels ..."), so that the pipeline turns blot and driz_cr
off and goes on, as with drizzlepac. For ``sum`` medstack combines the images there
(drizzlepac aborts: ``docs/deviations.md``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import createMedian as _medstack_step
from .errors import ParameterError, StepAbortedError

__all__ = ["install", "installed", "is_installed", "uninstall"]

#: drizzlepac's own step function, kept while medstack's is installed.
_original: Any = None


def _drizzlepac_module(name: str) -> Any:
    try:
        return importlib.import_module(f"drizzlepac.{name}")
    except ImportError as err:
        raise ParameterError("medstack.drizzlepac: drizzlepac is not installed (pip "
                             "install 'medstack[drizzlepac]', or pip install "
                             "'drizzlepac>=3.11')") from err


def _step(imgObjList: Any, configObj: Any, procSteps: Any = None) -> Any:
    """:func:`medstack.createMedian.createMedian` with drizzlepac's ``StepAbortedError`` where
    drizzlepac's step aborts."""
    try:
        return _medstack_step.createMedian(imgObjList, configObj, procSteps=procSteps)
    except StepAbortedError as err:
        util = _drizzlepac_module("util")
        raise util.StepAbortedError(f"Rejecting all pixels: {err}") from err


def is_installed() -> bool:
    """Whether AstroDrizzle's median step is medstack's (False without drizzlepac)."""
    try:
        module = importlib.import_module("drizzlepac.createMedian")
    except ImportError:
        return False
    return module.createMedian is _step


def install() -> None:
    """Make AstroDrizzle run medstack's median step, in this process, until :func:`uninstall`
    (again: nothing to do).

    Raises
    ------
    ParameterError
        drizzlepac is not installed.
    """
    global _original
    module = _drizzlepac_module("createMedian")
    if module.createMedian is not _step:
        _original = module.createMedian
        module.createMedian = _step


def uninstall() -> None:
    """Give AstroDrizzle drizzlepac's own median step back (nothing to do if not installed).

    Raises
    ------
    ParameterError
        drizzlepac is not installed.
    """
    global _original
    module = _drizzlepac_module("createMedian")
    if module.createMedian is _step and _original is not None:
        module.createMedian = _original
    _original = None


@contextmanager
def installed() -> Iterator[None]:
    """:func:`install` for the duration of a ``with`` block, then the step as it was.

    Raises
    ------
    ParameterError
        drizzlepac is not installed.
    """
    was = is_installed()
    install()
    try:
        yield
    finally:
        if not was:
            uninstall()
