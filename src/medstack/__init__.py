"""medstack: the median image of a stack of singly drizzled images.

drizzlepac's "Create Median" step (AstroDrizzle step 4), with its parameters and its results bit
for bit, many times faster and strictly memory-bounded.

>>> from medstack import median_image
>>> result = median_image("*_single_sci.fits", "visit1", combine_type="minmed")  # doctest: +SKIP
>>> result.data, result.header  # doctest: +SKIP
"""

from __future__ import annotations

from ._version import __version__
from .errors import InputError, MedstackError, OutputError, ParameterError

#: Names loaded on first use (PEP 562), so that ``import medstack`` takes a millisecond: the
#: command (:mod:`medstack._entry`) catches Ctrl-C from its very first moments, before even
#: its own modules are imported.
_LAZY = {"MedianResult": "core.products", "median_image": "api", "COMBINE_TYPES": "params",
         "PARAMETERS": "params", "MedianParams": "params", "validate": "params",
         "FrameStack": "frames"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "COMBINE_TYPES",
    "FrameStack",
    "PARAMETERS",
    "InputError",
    "MedianParams",
    "MedianResult",
    "MedstackError",
    "OutputError",
    "ParameterError",
    "__version__",
    "median_image",
    "validate",
]
