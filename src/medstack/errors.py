"""The exceptions medstack raises.

Every error is one line that names the file or the parameter at fault. Callers catch
:class:`MedstackError` for all of them; the CLI turns them into ``medstack: error: ...``
and exit status 2.
"""

from __future__ import annotations

__all__ = ["MedstackError", "InputError", "ParameterError", "OutputError", "StepAbortedError"]


class MedstackError(Exception):
    """Base class of every error medstack raises on purpose."""


class InputError(MedstackError):
    """An input file is missing, unreadable, or inconsistent with the others."""


class ParameterError(MedstackError, ValueError):
    """A parameter has an unknown name, a wrong type, or a value out of range."""


class OutputError(MedstackError):
    """The output cannot be written (directory missing, read-only, disk full, ...)."""


class StepAbortedError(ParameterError):
    """The parameters reject every input at every pixel (``combine_nlow + combine_nhigh`` of
    ``median``/``mean`` not below the number of images).

    drizzlepac's median step aborts there, and AstroDrizzle then turns its blot and driz_cr
    steps off and goes on; inside AstroDrizzle (:mod:`medstack.drizzlepac`) this error becomes
    drizzlepac's own ``StepAbortedError``, so that the pipeline does the same.
    """
