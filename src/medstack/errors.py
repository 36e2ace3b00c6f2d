"""The exceptions medstack raises.

Every error is one line that names the file or the parameter at fault. Callers catch
:class:`MedstackError` for all of them; the CLI turns them into ``medstack: error: ...``
and exit status 2.
"""

from __future__ import annotations

__all__ = ["MedstackError", "InputError", "ParameterError", "OutputError"]


class MedstackError(Exception):
    """Base class of every error medstack raises on purpose."""


class InputError(MedstackError):
    """An input file is missing, unreadable, or inconsistent with the others."""


class ParameterError(MedstackError, ValueError):
    """A parameter has an unknown name, a wrong type, or a value out of range."""


class OutputError(MedstackError):
    """The output cannot be written (directory missing, read-only, disk full, ...)."""
