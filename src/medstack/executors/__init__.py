"""Executors: where a run's work is done. They only schedule; the work itself is
:func:`medstack.core.unit.compute_section` and the weight pass of :mod:`medstack.core.weights`,
and everything around it is :func:`medstack.core.run.run`'s.

- :mod:`.threads`: :class:`~.threads.ThreadExecutor`, this machine's threads.
- :mod:`.dask`: :class:`~.dask.DaskExecutor`, a Dask cluster (``pip install -e ".[dask]"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..options import RunOptions

if TYPE_CHECKING:
    from ..core.run import Executor

__all__ = ["make_executor"]


def make_executor(options: RunOptions | None = None, **given: Any) -> Executor:
    """The executor the run options name: this machine's threads, or Dask (imported only then).

    Parameters
    ----------
    options : RunOptions, optional
        The run's options, as a door checked them (:mod:`medstack.options`); only ``workers``,
        ``scheduler``, ``client`` and ``connect_timeout`` matter here. Default is the defaults.
    **given
        Those options by name instead (or over ``options``), e.g. ``workers=2``.

    Raises
    ------
    ParameterError
        A scheduler that names no Dask cluster, or Dask missing for one.
    """
    options = RunOptions() if options is None else options
    if given:
        options = options.replace(**given)
    if options.on_dask:
        from .dask import DaskExecutor  # Dask stays optional

        return DaskExecutor(options.scheduler, options.client, options.workers,
                            options.connect_timeout)
    from .threads import ThreadExecutor

    return ThreadExecutor(options.workers)
