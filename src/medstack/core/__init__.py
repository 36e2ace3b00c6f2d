"""The core: everything a run does that does not depend on where it runs.

- :mod:`.plan`: the stack checked against the parameters, before any pixel is read
  (:func:`~.plan.prepare` → :class:`~.plan.StackPlan`), and the output's name.
- :mod:`.sections`: the row sections (pure).
- :mod:`.memory`: the memory model, and the plan that keeps a run within a budget.
- :mod:`.weights`: the weight statistics and the mask thresholds.
- :mod:`.unit`: the work unit, one section read and combined (:func:`~.unit.compute_section`).
- :mod:`.products`: the output header and provenance, the sinks, :class:`~.products.MedianResult`.
- :mod:`.report`: what a run tells its user (the per-image table, coverage).
- :mod:`.run`: the one run skeleton, which takes an executor (:mod:`medstack.executors`).

The core knows no backend: it imports neither the executors nor Dask.
"""
