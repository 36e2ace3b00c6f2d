"""Executors: where a run's work is done. They only schedule; the work itself is
:func:`medstack.core.unit.compute_section` and the weight pass of :mod:`medstack.core.weights`,
and everything around it is :func:`medstack.core.run.run`'s.

- :mod:`.threads`: :class:`~.threads.ThreadExecutor`, this machine's threads.
- :mod:`.dask`: :class:`~.dask.DaskExecutor`, a Dask cluster (``pip install -e ".[dask]"``).
"""
