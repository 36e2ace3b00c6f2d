"""medstack: the median image of a stack of singly drizzled images.

drizzlepac's "Create Median" step (AstroDrizzle step 4), with its parameters and its results bit
for bit, many times faster and strictly memory-bounded.

>>> from medstack import median_image
>>> result = median_image("*_single_sci.fits", "visit1", combine_type="minmed")  # doctest: +SKIP
>>> result.data, result.header  # doctest: +SKIP
"""

from ._version import __version__
from .engine import MedianResult, median_image
from .errors import InputError, MedstackError, OutputError, ParameterError
from .params import COMBINE_TYPES, PARAMETERS, MedianParams, validate

__all__ = [
    "COMBINE_TYPES",
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
