"""The one declaration of the median step's parameters, :data:`PARAMETERS`: names, types,
defaults, allowed values and help text for validation (:class:`MedianParams`), ``.cfg`` files
(:mod:`medstack.config`), the CLI options and the help text.

The names are drizzlepac's; the defaults are those of its standalone ``createMedian`` task
(``combine_maskpt = 0.7``; AstroDrizzle's own default is 0.3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import ParameterError

__all__ = ["COMBINE_TYPES", "DEFAULT_BUFSIZE_MIB", "MIB", "PARAMETERS", "MedianParams",
           "ParamSpec", "format_value", "is_none", "parse_nsigma", "spec", "validate"]

MIB = 1024 * 1024
#: combine_bufsize, in MiB, when it is None (drizzlepac's None means 1 MiB): the result
#: is the same for any size, and larger sections cost less per pixel (fewer mappings of
#: each file and fewer kernel calls; see docs/performance.md).
DEFAULT_BUFSIZE_MIB = 4.0

#: Every accepted ``combine_type``. ``average`` and ``iaverage`` are aliases of ``mean`` and
#: ``imean`` (drizzlepac returns an all-zero image for ``average``; docs/spec.md Q6).
COMBINE_TYPES: tuple[str, ...] = ("minmed", "iminmed", "median", "imedian", "mean", "imean",
                                  "average", "iaverage", "sum")

_ALIASES = {"average": "mean", "iaverage": "imean"}
_BOOLS = {**dict.fromkeys(("true", "yes", "on", "1", "t"), True),
          **dict.fromkeys(("false", "no", "off", "0", "f"), False)}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of the median step.

    Attributes
    ----------
    name : str
        drizzlepac's name, also the ``.cfg`` key and (with ``_`` → ``-``) the CLI option.
    kind : {"bool", "int", "float", "str", "nsigma"}
        The type.
    default, help : object, str
        The default (in its Python type) and a one-paragraph help text.
    optional : bool
        Whether ``None`` is accepted.
    choices, minimum, strict
        Allowed values of a ``str``; smallest allowed number, excluded when ``strict``.
    drizzlepac : bool
        Whether drizzlepac's ``createMedian`` has this parameter.
    keyword : str or None
        The output header keyword that records the value used.
    """

    name: str
    kind: str
    default: Any
    help: str
    optional: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    strict: bool = False
    drizzlepac: bool = True
    keyword: str | None = None

    @property
    def option(self) -> str:
        """The CLI option, e.g. ``--combine-type``."""
        return "--" + self.name.replace("_", "-")

    def convert(self, value: Any) -> Any:
        """``value`` converted to this parameter's type and checked (ParameterError naming
        the parameter)."""
        if self.optional and is_none(value):
            return None
        where = f"{self.name}: "
        if self.kind == "bool":  # True/False, 0/1, or their text as a .cfg file holds it
            text = str(value).strip().lower() if isinstance(value, (str, int)) else None
            if text not in _BOOLS:
                raise ParameterError(f"{where}expected True or False, got {value!r}")
            return _BOOLS[text]
        if self.kind == "nsigma":
            return parse_nsigma(value)
        if self.kind == "str":
            if not isinstance(value, str):
                raise ParameterError(f"{where}expected a string, got {value!r}")
            text = value.strip().lower()
            if self.choices is not None and text not in self.choices:
                raise ParameterError(f"{where}unknown value {value!r}; choose one of: "
                                     f"{', '.join(self.choices)}")
            return text
        try:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
            if self.kind == "int":
                if not number.is_integer():
                    raise ValueError
                number = int(number)
        except (TypeError, ValueError):
            kind = "an integer" if self.kind == "int" else "a number"
            extra = " or None" if self.optional else ""
            raise ParameterError(f"{where}expected {kind}{extra}, got {value!r}") from None
        if self.kind == "float" and not math.isfinite(number) and self.name != "fillval":
            raise ParameterError(f"{where}expected a finite number, got {value!r}")
        low = self.minimum
        if low is not None and (number < low or (self.strict and number == low)):
            rel = ">" if self.strict else ">="
            raise ParameterError(f"{where}must be {rel} {low:g}, got {value!r}")
        return number


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("median", "bool", True,
              "Create a median image? If False the step is skipped (only a log message)."),
    ParamSpec("median_newmasks", "bool", True,
              "Build bad-pixel masks from the weight images: a pixel whose weight is below "
              "combine_maskpt times that image's mean weight is left out of the combination.",
              keyword="MEDNEWMK"),
    ParamSpec("combine_maskpt", "float", 0.7,
              "Fraction (not percentage) of an image's mean weight below which its pixels are "
              "masked. 0.7 is the default of drizzlepac's createMedian task and of medstack; "
              "AstroDrizzle's own default is 0.3, so give 0.3 to compare with an AstroDrizzle "
              "product.", minimum=0.0, keyword="MEDMASKP"),
    ParamSpec("combine_type", "str", "minmed",
              "How the images are combined: minmed (median, or the minimum where the median is "
              "significantly higher; best for few images, N < ~5), median (N >= ~5), mean, sum, "
              "and the i-variants (iminmed, imedian, imean), which fill pixels with no good "
              "input with the first non-zero value in stack order. average/iaverage = "
              "mean/imean.", choices=COMBINE_TYPES, keyword="MEDCTYPE"),
    ParamSpec("combine_nsigma", "nsigma", "4 3",
              "minmed only: significance of the median-minimum difference, as 'nsigma1 "
              "nsigma2'. nsigma1 flags pixels; nsigma2 applies within combine_grow of a flagged "
              "pixel. One value is used for both.", keyword="MEDNSIG"),
    ParamSpec("combine_nlow", "int", 0,
              "median/mean only: number of lowest good values rejected at each pixel.",
              minimum=0, keyword="MEDNLOW"),
    ParamSpec("combine_nhigh", "int", 0,
              "median/mean only: number of highest good values rejected at each pixel.",
              minimum=0, keyword="MEDNHIGH"),
    ParamSpec("combine_lthresh", "float", None,
              "median/mean only: values below this (electrons/s, as the singles) are rejected. "
              "None: no lower threshold.", optional=True, keyword="MEDLTHR"),
    ParamSpec("combine_hthresh", "float", None,
              "median/mean only: values at or above this (electrons/s) are rejected. "
              "None: no upper threshold.", optional=True, keyword="MEDHTHR"),
    ParamSpec("combine_grow", "int", 1,
              "minmed only: radius in pixels around a pixel flagged by nsigma1 within which "
              "nsigma2 applies.", minimum=0, keyword="MEDGROW"),
    ParamSpec("combine_bufsize", "float", None,
              "Section buffer per input image, in MiB of science data (None: 4 MiB; 1 MiB in "
              "drizzlepac). Sections always hold at least 2*combine_grow+1 rows; the result "
              "never depends on it.", optional=True, minimum=0.0, strict=True, keyword="MEDBUFSZ"),
    ParamSpec("fillval", "float", 0.0,
              "Value of output pixels with no good input (drizzlepac: 0). 'nan' is accepted.",
              drizzlepac=False, keyword="MEDFILL"),
)

_BY_NAME = {p.name: p for p in PARAMETERS}


def spec(name: str) -> ParamSpec:
    """Return the :class:`ParamSpec` called ``name``.

    Raises
    ------
    ParameterError
        If there is no such parameter (the message lists the valid names).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ParameterError(f"unknown parameter {name!r}; valid names: "
                             f"{', '.join(_BY_NAME)}") from None


def parse_nsigma(value: Any) -> tuple[float, float]:
    """Parse ``combine_nsigma`` into ``(nsigma1, nsigma2)``.

    Accepts drizzlepac's string form ``"4 3"``, one number (used for both, as the
    documentation says; drizzlepac raises IndexError, docs/spec.md Q19), or a sequence of one
    or two numbers. Both values must be finite and non-negative.
    """
    tokens = value.replace(",", " ").split() if isinstance(value, str) else value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        tokens = [value]
    try:
        numbers = [float(t) for t in tokens]
    except (TypeError, ValueError):
        numbers = []
    if not 1 <= len(numbers) <= 2 or not all(math.isfinite(n) and n >= 0 for n in numbers):
        raise ParameterError("combine_nsigma: expected one or two non-negative numbers such "
                             f"as '4 3', got {value!r}")
    return numbers[0], numbers[-1]


def is_none(value: Any) -> bool:
    """Whether ``value`` stands for None: None, or text such as ``'None'`` or ``''`` (as a
    ``.cfg`` file or a table cell holds it)."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", ""))


@dataclass(frozen=True)
class MedianParams:
    """Validated parameters of the median step: one field per entry of :data:`PARAMETERS`
    (same name, type and default), checked and converted when made
    (``MedianParams(combine_type="Median")`` holds ``"median"``; a bad value raises
    :class:`~medstack.errors.ParameterError` naming the parameter)."""

    median: bool = True
    median_newmasks: bool = True
    combine_maskpt: float = 0.7
    combine_type: str = "minmed"
    combine_nsigma: tuple[float, float] = (4.0, 3.0)
    combine_nlow: int = 0
    combine_nhigh: int = 0
    combine_lthresh: float | None = None
    combine_hthresh: float | None = None
    combine_grow: int = 1
    combine_bufsize: float | None = None
    fillval: float = 0.0

    def __post_init__(self) -> None:
        for p in PARAMETERS:
            object.__setattr__(self, p.name, p.convert(getattr(self, p.name)))
        lo, hi = self.combine_lthresh, self.combine_hthresh
        if lo is None or hi is None:
            return
        import numpy as np

        with np.errstate(over="ignore"):  # compared as the kernels do: in float32, ±inf beyond
            if np.float32(lo) >= np.float32(hi):
                raise ParameterError(f"combine_lthresh = {lo:g} is not below combine_hthresh "
                                     f"= {hi:g}: no value can pass both (a value is kept where "
                                     "lthresh <= value < hthresh)")

    @property
    def kind(self) -> str:
        """The combination proper: ``minmed``, ``median``, ``mean`` or ``sum``."""
        ctype = _ALIASES.get(self.combine_type, self.combine_type)
        return ctype[1:] if ctype.startswith("i") else ctype

    @property
    def fill(self) -> bool:
        """Whether this is an ``i`` type (fill pixels with no good input)."""
        return self.combine_type.startswith("i")

    @property
    def grow_px(self) -> int:
        """The grow radius in pixels that actually applies (0 unless minmed)."""
        return self.combine_grow if self.kind == "minmed" else 0

    @property
    def budget_bytes(self) -> int:
        """Section buffer per input image, in bytes (``combine_bufsize`` MiB, default
        :data:`DEFAULT_BUFSIZE_MIB`)."""
        mib = DEFAULT_BUFSIZE_MIB if self.combine_bufsize is None else self.combine_bufsize
        return max(1, int(mib * MIB))

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict, ``combine_nsigma`` in drizzlepac's string form."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)},
                "combine_nsigma": format_value(spec("combine_nsigma"), self.combine_nsigma)}

    def replace(self, **changes: Any) -> MedianParams:
        """Return a validated copy with some parameters changed."""
        return validate(changes, base=self)


def validate(values: Mapping[str, Any] | None = None, *, base: MedianParams | None = None,
             **kwargs: Any) -> MedianParams:
    """Check and convert parameters into a :class:`MedianParams`.

    Parameters
    ----------
    values : mapping, optional
        Values by drizzlepac name; text is read as a ``.cfg`` file holds it (``'None'``,
        ``'4 3'``, ``'True'``).
    base : MedianParams, optional
        Values for the names not given. Default is the task defaults.
    **kwargs
        More values; they win over ``values``.

    Raises
    ------
    ParameterError
        For an unknown name (listing the valid ones), an invalid value (naming the parameter),
        or ``combine_lthresh >= combine_hthresh``, which would reject every value.
    """
    merged = {**(values or {}), **kwargs}
    for name in merged:
        spec(name)  # an unknown name, listing the valid ones
    return replace(base if base is not None else MedianParams(), **merged)


def format_value(p: ParamSpec, value: Any) -> str:
    """Render a value as drizzlepac's ``.cfg`` files hold it (``None``, ``4 3``, ``True``)."""
    if value is None:
        return "None"
    if p.kind == "nsigma":  # the shortest text that parses back to the same values: "4 2.5"
        return " ".join(repr(n).removesuffix(".0") for n in parse_nsigma(value))
    if p.kind == "bool":
        return str(bool(value))
    if p.kind == "float":
        return repr(float(value))
    return str(value)

