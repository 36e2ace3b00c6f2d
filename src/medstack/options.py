"""The run options: how and where a run computes and what it hands back, declared once.

The parameters (:mod:`medstack.params`) say *what* image is made; the run options say how the
run goes (threads or Dask, a memory budget, which products come back, progress) and never change
the image. :data:`RUN_OPTIONS` declares each once, :class:`RunOptions` has one field for each
and checks its values when made; every door builds one and hands it down.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ParameterError
from .params import is_none

__all__ = ["CONNECT_TIMEOUT_S", "NOTICE", "RUN_OPTIONS", "OptionSpec", "RunOptions",
           "parse_size", "run_options"]

#: Log level of the few lines a user should see on every run (between INFO and WARNING): the
#: command line shows them unless ``--quiet``.
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

#: Seconds to wait for a Dask scheduler at an address to answer (``connect_timeout``).
CONNECT_TIMEOUT_S = 10.0

#: The combine implementations (see :mod:`medstack.kernels`), by name; the same image either way.
KERNEL_NAMES = ("auto", "fast", "reference")


def _got(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:120]


@dataclass(frozen=True)
class OptionSpec:
    """One run option.

    Attributes
    ----------
    name : str
        The keyword of :func:`medstack.median_image` and the field of :class:`RunOptions`.
    kind : str
        How :meth:`check` reads the value: ``"workers"`` (a whole number >= 1 or None),
        ``"str"``, ``"seconds"`` (> 0), ``"size"`` (bytes or text such as ``"2GiB"``, kept in
        bytes), ``"bool"``, ``"callable"``, ``"choice"`` or ``"object"`` (anything).
    default, help, doc_type : object, str, str
        The value when not given; what it does (the default is added to it); its numpydoc type.
    option, metavar, cli_help : str or None
        The command-line flag (None: Python API only), its value in ``--help``, and the
        ``--help`` text where it differs from ``help``.
    choices, hidden : tuple of str or None, bool
        The valid values of a ``"choice"``; left out of ``--help`` (a developer's switch).
    """

    name: str
    kind: str
    default: Any
    help: str
    option: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    hidden: bool = False
    doc_type: str = field(default="", compare=False)
    cli_help: str | None = None

    def check(self, value: Any) -> Any:
        """The value, checked (sizes in bytes, path-like as text); ParameterError naming it."""
        name, kind = self.name, self.kind
        if kind == "workers" and value is not None:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ParameterError(f"{name}: expected a whole number >= 1 or None, got "
                                     f"{_got(value)}")
            if value < 1:
                raise ParameterError(f"{name}: must be >= 1, got {value}")
            return int(value)
        if kind == "str":
            value = os.fspath(value) if isinstance(value, os.PathLike) else value
            if value is not None and not isinstance(value, str):
                raise ParameterError(f"{name}: expected a str or None, got {_got(value)}")
        elif kind == "seconds":
            real = isinstance(value, numbers.Real) and not isinstance(value, bool)
            seconds = float(value) if real else math.nan
            if not (seconds > 0 and math.isfinite(seconds)):
                raise ParameterError(f"{name}: expected a number of seconds > 0, got {value!r}"[:200])
            return seconds
        elif kind == "size":
            return parse_size(value, name)
        elif kind == "bool":
            # anything Python takes as true or false (1, None, numpy bools), but not text:
            # "False" would be true
            if isinstance(value, (str, bytes)):
                raise ParameterError(f"{name}: expected True or False, got {_got(value)}")
            return bool(value)
        elif kind == "callable" and value is not None and not callable(value):
            raise ParameterError(f"{name}: expected a callable {self.metavar} or None, got "
                                 f"{_got(value)}")
        elif kind == "choice" and (not isinstance(value, str) or value not in (self.choices or ())):
            raise ParameterError(f"{name}: unknown value {value!r}; choose one of: "
                                 f"{', '.join(self.choices or ())}")
        return value


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1000, "m": 1 << 20,
               "mib": 1 << 20, "mb": 1000**2, "g": 1 << 30, "gib": 1 << 30, "gb": 1000**3,
               "t": 1 << 40, "tib": 1 << 40, "tb": 1000**4}


def parse_size(value: Any, name: str = "max_memory") -> int | None:
    """A memory size in bytes: an int (bytes) or a string such as ``"2GiB"``, ``"512M"``,
    ``"1.5 GB"`` (``K``/``M``/``G``/``T`` and ``KiB``... are powers of 1024, ``kB``/``MB``...
    of 1000); None or ``"none"`` for no limit.

    Raises
    ------
    ParameterError
        Naming ``name``, for anything else or a size that is not positive.
    """
    if is_none(value):
        return None
    number = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "").lower()
        unit = text.lstrip("0123456789.e+")
        digits = text[: len(text) - len(unit)]
        if unit in _SIZE_UNITS and digits:
            try:
                number = float(digits) * _SIZE_UNITS[unit]
            except ValueError:
                pass
    if not (math.isfinite(number) and number >= 1):
        raise ParameterError(f"{name}: expected a size such as 2GiB, 512MiB or a number of "
                             f"bytes, got {value!r}")
    return int(number)


_SCHEDULER = (
    "where to compute: threads (this machine's threads), dask-local (a Dask LocalCluster of "
    "`workers` processes, started and closed by the run) or the address of a running Dask "
    "scheduler, tcp://HOST:PORT (inputs and output on a filesystem its workers see; see "
    "medstack.executors.dask); Dask needs pip install -e \".[dask]\" (from a checkout). Same "
    "result bit for bit")

#: Every run option, in the order of :func:`medstack.median_image`'s keywords.
RUN_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("save_maps", "bool", False,
               "also produce the count-of-good-inputs map and, for minmed, the minimum-chosen "
               "map: files ROOT_med_ngood.fits and ROOT_med_minchosen.fits beside the median, "
               "and arrays when the data are kept", option="--save-maps", doc_type="bool",
               cli_help="also write ROOT_med_ngood.fits (good inputs per pixel) and, for "
               "minmed, ROOT_med_minchosen.fits (1 where the minimum was chosen)"),
    OptionSpec("keep_data", "bool", True,
               "return the image (and maps) as arrays; False keeps memory bounded for large "
               "outputs (the command line never keeps them)", doc_type="bool"),
    OptionSpec("keep_maps", "bool", False,
               "return the maps as arrays (with keep_data) without writing map files",
               doc_type="bool"),
    OptionSpec("workers", "workers", None,
               "threads, or with the dask-local scheduler worker processes; default is all "
               "the cores this process may use", option="--workers", metavar="N",
               doc_type="int, optional"),
    OptionSpec("progress", "callable", None,
               "progress(done, total) after each section, in the calling thread",
               metavar="progress(done, total)", doc_type="callable, optional"),
    OptionSpec("kernel", "choice", "auto",
               "the implementation: fast (compiled C, built at installation), reference "
               "(plain numpy, the oracle) or auto (fast, or reference where the compiled "
               "kernels are not built); the same image bit for bit", option="--kernel", choices=KERNEL_NAMES, hidden=True,
               doc_type='{"auto", "fast", "reference"}'),
    OptionSpec("scheduler", "str", None,
               _SCHEDULER + "; default is threads unless a client is given", option="--scheduler",
               metavar="WHERE", doc_type="str, optional",
               cli_help=_SCHEDULER + "; default is threads"),
    OptionSpec("client", "object", None,
               "a connected Dask client to compute on (left open)",
               doc_type="distributed.Client, optional"),
    OptionSpec("quicklook", "bool", False,
               "also build the quick-look PNG's content as the sections come "
               "(result.quicklook, see medstack.extras.quicklook.QuickLook; a few tens of MiB "
               "whatever the image size)", doc_type="bool"),
    OptionSpec("before_commit", "callable", None,
               "before_commit(result) once every section is done, before any file is renamed "
               "into place (result holds the arrays and header, not yet the paths): the place "
               "to make other products, so that all of them are committed together, last; if "
               "it raises, nothing of the run is committed", metavar="before_commit(result)",
               doc_type="callable, optional"),
    OptionSpec("connect_timeout", "seconds", CONNECT_TIMEOUT_S,
               "with a scheduler at an address: seconds to wait for it to answer before giving "
               "up with an error", option="--connect-timeout", metavar="SECONDS",
               doc_type="float"),
    OptionSpec("max_memory", "size", None,
               "one total memory budget for the run, in bytes or as a size such as 2GiB or "
               "512MiB: the sections of all inputs, the sections in flight and the kept arrays "
               "are planned to fit it (fewer rows per section, fewer sections in flight; "
               "combine_bufsize stays the per-input cap when given); the result never depends "
               "on it. Default is none (combine_bufsize, 4 MiB per input by default, alone)",
               option="--max-memory", metavar="SIZE", doc_type="int or str, optional"),
)


@dataclass(frozen=True)
class RunOptions:
    """The run options of one run: one field per entry of :data:`RUN_OPTIONS` (same name and
    default), checked when made (ParameterError naming the option)."""

    save_maps: bool = False
    keep_data: bool = True
    keep_maps: bool = False
    workers: int | None = None
    progress: Callable[[int, int], None] | None = None
    kernel: str = "auto"
    scheduler: str | None = None
    client: Any = None
    quicklook: bool = False
    before_commit: Callable[[Any], None] | None = None
    connect_timeout: float = CONNECT_TIMEOUT_S
    max_memory: int | None = None

    def __post_init__(self) -> None:
        for o in RUN_OPTIONS:
            object.__setattr__(self, o.name, o.check(getattr(self, o.name)))

    @property
    def on_dask(self) -> bool:
        """Whether the run computes on a Dask cluster (a client, or a scheduler other than
        threads)."""
        return self.client is not None or self.scheduler not in (None, "threads")

    @property
    def wants_maps(self) -> bool:
        """Whether the run keeps the maps as arrays."""
        return bool(self.keep_data and (self.save_maps or self.keep_maps))

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with some options changed (checked)."""
        return run_options(vars(self), **changes)


def run_options(values: Mapping[str, Any] | None = None, /, **given: Any) -> RunOptions:
    """Validate run options into a :class:`RunOptions`.

    Parameters
    ----------
    values : mapping, optional
        Options by name.
    **given
        More options by name (win over ``values``).

    Raises
    ------
    ParameterError
        An unknown name (listing the valid ones) or a bad value, naming the option.
    """
    merged = {**(values or {}), **given}
    names = [o.name for o in RUN_OPTIONS]
    unknown = sorted(set(merged) - set(names))
    if unknown:
        raise ParameterError(f"unknown run option {unknown[0]!r}; valid: {', '.join(names)}")
    return RunOptions(**merged)


def numpydoc() -> str:
    """The options' entries for a numpydoc Parameters section (for docstrings)."""
    lines = []
    for o in RUN_OPTIONS:
        first = o.help.split(" ", 1)[0]
        # a sentence starts with a capital; a name (progress(done, total), before_commit) not
        text = o.help if ("(" in first or "_" in first) else o.help[0].upper() + o.help[1:]
        if "default is" not in o.help.lower():
            text += f". Default is {o.default!r}"
        lines.append(f"    {o.name} : {o.doc_type}")
        lines.extend(textwrap.wrap(text + ".", 92, initial_indent=" " * 8,
                                   subsequent_indent=" " * 8))
    return "\n".join(lines)
