"""drizzlepac-style configuration: ``.cfg`` files, dicts and ConfigObj objects; per-image tables.

Everything here is driven by :data:`medstack.params.PARAMETERS`: the names a ``.cfg`` may hold,
how values are checked, and what :func:`write_config` writes.

Two ``.cfg`` layouts are read, as drizzlepac writes them:

- the standalone ``createMedian`` task file (``_task_name_ = createMedian``, ``input``, and a
  ``[STEP 4: CREATE MEDIAN IMAGE]`` section);
- a whole AstroDrizzle file (``_task_name_ = astrodrizzle``): only its top-level ``input``,
  ``output`` and ``num_cores`` and its ``[STEP 4: CREATE MEDIAN IMAGE]`` section are used; every
  other key and section is ignored. Keys missing from such a file take AstroDrizzle's defaults
  (``combine_maskpt = 0.3``), as drizzlepac's loader fills them in.

Relative file names (``input``, ``output``) in a ``.cfg`` file are relative to the folder of
that file, as those in a per-image table (:func:`read_table`) are relative to the table's
folder and those in an ``@list`` file to the list's folder: a name is always relative to the
file that names it. :func:`write_config` writes them so (relative where they lie in the
file's folder, else absolute). Names given on the command line or as arguments are relative
to the current directory.

A flat mapping or file (no sections) holds parameter names directly. Values may be typed (as
drizzlepac's loader returns them) or strings as configobj reads an unvalidated file
(``'None'``, ``'4 3'``, ``'True'``, ``['4', '3']``).

Notes
-----
drizzlepac's ``configObj=None`` loads the last ``.cfg`` saved by its TEAL GUI from the user's
``~/.teal`` directory; medstack has no such store, so None means the task defaults.
drizzlepac's strict loader rejects an unknown key; medstack does too, with the valid names.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configobj import ConfigObj, ConfigObjError

from ._version import __version__
from .errors import InputError, ParameterError
from .params import PARAMETERS, MedianParams, ParamSpec, format_value, validate

if TYPE_CHECKING:  # pragma: no cover
    from .io.outputs import Products

__all__ = [
    "ASTRODRIZZLE_DEFAULTS",
    "IGNORED_KEYS",
    "PER_IMAGE_KEYS",
    "STEP4",
    "TABLE_COLUMNS",
    "TASK_KEYS",
    "TASK_KEY_TYPES",
    "ImageTable",
    "Settings",
    "config_text",
    "output_root",
    "per_image_values",
    "read_config",
    "read_table",
    "write_config",
]

log = logging.getLogger(__name__)

#: The section of a drizzlepac ``.cfg`` that holds the median step's parameters.
STEP4 = "STEP 4: CREATE MEDIAN IMAGE"
_STEP4_TAG = "STEP 4:"  # drizzlepac's util.getSectionName matches on this
_STEP3_TAG = "STEP 3:"  # the separate-drizzle step, which holds driz_sep_compress

#: Task-level keys (outside the STEP 4 section in a drizzlepac file), with their meaning.
TASK_KEYS: Mapping[str, str] = {
    "input": "Input images: a filename, a glob, an @file list, or a list of names. Singly "
    "drizzled science images (*_single_sci.fits) or exposure names (*_flt.fits, *_flc.fits, "
    "*_c0m.fits, ...), which map to <rootname>_single_sci.fits beside them. In a .cfg file, "
    "relative names are relative to the file's folder.",
    "output": "AstroDrizzle's output rootname: the median is written to <output>_med.fits "
    "(a trailing .fits or _drz/_drc suffix is removed first, as AstroDrizzle does). "
    "Default: the rootname of the first input. In a .cfg file, a relative name is relative to "
    "the file's folder.",
    "num_cores": "Threads to use (AstroDrizzle's num_cores; n < 2 means one). "
    "Default None: all cores.",
}

#: The type of each task-level key, as the help text gives it.
TASK_KEY_TYPES: Mapping[str, str] = {"input": "str or list of str", "output": "str or None",
                                     "num_cores": "int or None"}

#: Per-image values (lists, one entry per input image, in input order; None entries fall back
#: to the single's header), with their meaning.
PER_IMAGE_KEYS: Mapping[str, str] = {
    "exptime": "Exposure time of each image, in seconds (> 0). Default: EXPTIME of its single.",
    "sky": "Sky subtracted from each image, in electrons. Default: MDRIZSKY of its single "
    "(times EXPTIME for WFC3/IR).",
    "readnoise": "Read noise of each image, in electrons (>= 0). Default: from the READNSE* "
    "keywords of its single.",
}

#: drizzlepac keys that affect its median step but are accepted and ignored by medstack, with
#: their allowed values and why they are ignored.
IGNORED_KEYS: Mapping[str, tuple[tuple[Any, ...], str]] = {
    "proc_unit": (
        ("native", "electrons"),
        "thresholds are in the units of the singles (electrons/s) and never rescaled "
        "(drizzlepac rescales them cumulatively when proc_unit=native); inside AstroDrizzle "
        "it only decides whether the images' native units are checked",
    ),
    "driz_sep_compress": (
        (True, False),
        "the image HDU of each single file is found by itself (primary HDU, or extension 1 "
        "when the primary is empty); inside AstroDrizzle with in_memory=True it picks the "
        "extension of the in-memory singles",
    ),
}

#: Keys missing from an AstroDrizzle ``.cfg`` take these values, as drizzlepac's loader fills
#: them in from ``astrodrizzle.cfgspc`` (where they differ from the createMedian task's).
ASTRODRIZZLE_DEFAULTS: Mapping[str, Any] = {"combine_maskpt": 0.3}

#: ``combine_type`` values that drizzlepac's ``createMedian.cfgspc`` allows; a ``.cfg`` for any
#: other type is written in the AstroDrizzle layout, whose spec allows all seven.
_TASK_TYPES = ("minmed", "median", "sum")

#: Columns of a per-image table (``--table``).
TABLE_COLUMNS: Mapping[str, str] = {
    "sci": "science image (required): a *_single_sci.fits or an exposure name",
    "wht": "weight image (default: the science name with _single_sci -> _single_wht)",
    **PER_IMAGE_KEYS,
}

_PARAM_NAMES = tuple(p.name for p in PARAMETERS)


def _valid_names(per_image: bool) -> str:
    names = [*_PARAM_NAMES, *TASK_KEYS, *(PER_IMAGE_KEYS if per_image else ())]
    return ", ".join(names)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def per_image_values(name: str, values: Any) -> tuple[float | None, ...] | None:
    """Check a per-image list (``exptime``, ``sky`` or ``readnoise``).

    Parameters
    ----------
    name : str
        One of :data:`PER_IMAGE_KEYS`.
    values : sequence of float or None, or None
        One value per input image; None entries (or ``'None'``) fall back to the header.

    Returns
    -------
    tuple of float or None, or None
        None when ``values`` is None.

    Raises
    ------
    ParameterError
        Naming ``name``: not a list, a value that is not a finite number, an exposure time
        not > 0, or a negative read noise.
    """
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        if isinstance(values, str) and values.strip():
            values = values.replace(",", " ").split()
        else:
            raise ParameterError(f"{name}: expected a list with one value per image, "
                                 f"got {values!r}")
    out: list[float | None] = []
    for value in values:
        if _is_empty(value):
            out.append(None)
            continue
        try:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{name}: expected numbers, got {value!r}") from None
        if not math.isfinite(number):
            raise ParameterError(f"{name}: expected finite numbers, got {value!r}")
        if name == "exptime" and not number > 0:
            raise ParameterError(f"{name}: exposure times must be > 0, got {value!r}")
        if name == "readnoise" and number < 0:
            raise ParameterError(f"{name}: read noise must be >= 0, got {value!r}")
        out.append(number)
    return tuple(out)


def _num_cores(value: Any) -> int | None:
    if _is_empty(value):
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
        if not number.is_integer():
            raise ValueError
    except (TypeError, ValueError):
        raise ParameterError(f"num_cores: expected an integer or None, got {value!r}") from None
    return max(1, int(number))


def _coerce_param(name: str, value: Any) -> Any:
    """The checked value of one median-step parameter (ParameterError naming it)."""
    return getattr(validate({name: value}), name)


def _check_ignored(name: str, value: Any, source: str, announce: bool = True) -> Any:
    """The checked value of a drizzlepac key that medstack's file-name doors ignore (logged
    as ignored when ``announce``)."""
    allowed, why = IGNORED_KEYS[name]
    matches = [a for a in allowed if str(a).lower() == str(value).strip().lower()]
    if not matches:
        raise ParameterError(
            f"{name}: unknown value {value!r}; choose one of: "
            f"{', '.join(str(a) for a in allowed)}"
        )
    if announce:
        log.info("%s: %s = %s accepted and ignored: %s", source, name, value, why)
    return matches[0]


@dataclass(frozen=True)
class Settings:
    """Everything a configuration source says: median-step values and task-level inputs.

    Attributes
    ----------
    values : dict
        Checked median-step parameter values given explicitly, by drizzlepac name. The others
        take the task defaults (see :attr:`params`).
    input : str or list of str or None
        The ``input`` key.
    output : str or None
        The ``output`` key (AstroDrizzle's output rootname).
    num_cores : int or None
        Threads (AstroDrizzle's ``num_cores``).
    exptime, sky, readnoise : tuple of float or None, or None
        Per-image values.
    proc_unit : str or None
        AstroDrizzle's ``proc_unit`` (``native`` or ``electrons``), when given.
    driz_sep_compress : bool or None
        AstroDrizzle's ``driz_sep_compress`` (from its ``[STEP 3: ...]`` section), when given.
    task : str or None
        ``createMedian`` or ``astrodrizzle`` when the source named its task.
    source : str
        Where the values came from, for messages.
    """

    values: dict[str, Any] = field(default_factory=dict)
    input: Any = None
    output: str | None = None
    num_cores: int | None = None
    exptime: tuple[float | None, ...] | None = None
    sky: tuple[float | None, ...] | None = None
    readnoise: tuple[float | None, ...] | None = None
    proc_unit: str | None = None
    driz_sep_compress: bool | None = None
    task: str | None = None
    source: str = "defaults"

    @property
    def params(self) -> MedianParams:
        """The validated parameters: task defaults updated with :attr:`values`."""
        return validate(self.values)

    def merged(self, overrides: Mapping[str, Any] | None, source: str = "inputDict") -> Settings:
        """Return these settings updated with ``overrides`` (which win).

        Parameters
        ----------
        overrides : mapping
            Flat: median-step parameters, task keys (``input``, ``output``, ``num_cores``),
            per-image lists (``exptime``, ``sky``, ``readnoise``) and the ignored drizzlepac
            keys of :data:`IGNORED_KEYS`.
        source : str
            Name used in error messages. Default is ``"inputDict"``.

        Raises
        ------
        ParameterError
            Unknown key (listing the valid names) or invalid value (naming it).
        """
        if not overrides:
            return self
        other = _read_flat(overrides, source, task=None)
        values = {**self.values, **other.values}
        changes = {f.name: getattr(other, f.name) for f in fields(other)
                   if f.name not in ("values", "task", "source")
                   and getattr(other, f.name) is not None}
        return replace(self, values=values, **changes)


def _read_flat(mapping: Mapping[str, Any], source: str, task: str | None) -> Settings:
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    try:
        for key, value in mapping.items():
            name = str(key)
            if name in _PARAM_NAMES:
                values[name] = _coerce_param(name, value)
            elif name == "input":
                extra["input"] = None if _is_empty(value) else value
            elif name == "output":
                extra["output"] = None if _is_empty(value) else str(value).strip()
            elif name == "num_cores":
                extra["num_cores"] = _num_cores(value)
            elif name in PER_IMAGE_KEYS:
                extra[name] = per_image_values(name, value)
            elif name in IGNORED_KEYS:
                extra[name] = _check_ignored(name, value, source)
            elif name.startswith("_") and name.endswith("_"):
                continue  # _task_name_, _section_, _RULES_ ...
            else:
                raise ParameterError(
                    f"unknown parameter {name!r}; valid names: {_valid_names(True)}"
                )
    except ParameterError as err:
        raise ParameterError(f"{source}: {err}") from err
    return Settings(values=values, task=task, source=source, **extra)


def _task_of(mapping: Mapping[str, Any]) -> str | None:
    name = mapping.get("_task_name_")
    if isinstance(name, str) and name.strip():
        return name.strip()
    return None


def _names(value: Any, convert: Any) -> Any:
    """``value`` (one name, a comma-separated string of names, or a list of them; ``@list``
    and glob patterns included) with ``convert`` applied to each name."""
    if value is None:
        return None

    def one(name: str) -> str:
        name = name.strip()
        if name.startswith("@"):
            return "@" + convert(name[1:].strip())
        return convert(name) if name else name

    if isinstance(value, (list, tuple)):
        return [one(os.fspath(v)) if isinstance(v, (str, os.PathLike)) else v for v in value]
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(text, str):
        return value
    if "," in text:
        return ", ".join(one(part) for part in text.split(",") if part.strip())
    return one(text)


def _resolver(base: str) -> Any:
    """A name relative to the folder ``base`` (unchanged if absolute or if ``base`` is the
    current directory, ``""``)."""
    def resolve(name: str) -> str:
        expanded = os.path.expandvars(os.path.expanduser(name))
        if not base or os.path.isabs(expanded):
            return expanded
        return os.path.normpath(os.path.join(base, expanded))
    return resolve


def _relative_names(settings: Settings, base: str) -> Settings:
    """``settings`` with the relative ``input`` and ``output`` names read from a file in the
    folder ``base`` made relative to that folder."""
    if not base:
        return settings
    resolve = _resolver(base)
    output = resolve(settings.output) if settings.output else settings.output
    return replace(settings, input=_names(settings.input, resolve), output=output)


def _read_mapping(mapping: Mapping[str, Any], source: str) -> Settings:
    task = _task_of(mapping)
    sections = [k for k, v in mapping.items() if isinstance(v, Mapping)]
    if not sections and task is None:
        return _read_flat(mapping, source, task=None)
    step4 = [k for k in sections if _STEP4_TAG in str(k)]
    if not step4:
        log.warning("%s: no [%s] section; the median step takes its defaults", source, STEP4)
    section: Mapping[str, Any] = mapping[step4[0]] if step4 else {}
    values: dict[str, Any] = {}
    try:
        for key, value in section.items():
            name = str(key)
            if name.startswith("_"):
                continue  # _section_ (TEAL's section switch)
            if name not in _PARAM_NAMES:
                raise ParameterError(
                    f"[{step4[0]}] unknown parameter {name!r}; valid names: "
                    f"{', '.join(_PARAM_NAMES)}"
                )
            values[name] = _coerce_param(name, value)
    except ParameterError as err:
        raise ParameterError(f"{source}: {err}") from err
    if task is not None and task.lower() == "astrodrizzle":
        for name, default in ASTRODRIZZLE_DEFAULTS.items():
            values.setdefault(name, default)
    top = {k: v for k, v in mapping.items() if str(k) in TASK_KEYS}
    for key in mapping:
        if str(key) in _PARAM_NAMES:
            log.warning("%s: top-level %s ignored; median parameters belong in [%s]",
                        source, key, STEP4)
    settings = _read_flat(top, source, task=task)
    # what AstroDrizzle's median step also reads: proc_unit, and driz_sep_compress of STEP 3
    extra: dict[str, Any] = {}
    step3 = [k for k in sections if _STEP3_TAG in str(k)]
    given = {"proc_unit": mapping.get("proc_unit"),
             "driz_sep_compress": mapping[step3[0]].get("driz_sep_compress") if step3 else None}
    try:
        for name, value in given.items():
            if not _is_empty(value):
                extra[name] = _check_ignored(name, value, source, announce=False)
    except ParameterError as err:
        raise ParameterError(f"{source}: {err}") from err
    return replace(settings, values=values, **extra)


def read_config(config: Any = None) -> Settings:
    """Read a configuration source.

    Parameters
    ----------
    config : None, str, path-like, mapping or configobj.ConfigObj
        None or ``'defaults'``: the task defaults. A path: a ``.cfg`` file in either drizzlepac
        layout (see the module notes) or a flat one; its relative ``input`` and ``output``
        names are relative to its folder. A mapping (a dict or a ConfigObj, as ``teal.load``
        returns it): the same structure in memory (names relative to the ConfigObj's file,
        if it has one, else to the current directory).

    Returns
    -------
    Settings

    Raises
    ------
    InputError
        A ``.cfg`` file that does not exist or cannot be read.
    ParameterError
        A file configobj cannot parse, an unknown key (listing the valid names) or an invalid
        value (naming it), prefixed with the file name.
    """
    if config is None:
        return Settings()
    if isinstance(config, (str, os.PathLike)):
        text = os.fspath(config)
        if text.strip().lower() == "defaults":
            return Settings()
        path = Path(os.path.expandvars(os.path.expanduser(text)))
        if not path.is_file():
            raise InputError(f"{path}: configuration file not found")
        try:
            cfg = ConfigObj(str(path), file_error=True, interpolation=False,
                            encoding="utf-8")
        except (ConfigObjError, UnicodeDecodeError) as err:
            raise ParameterError(f"{path}: not a valid .cfg file ({err})") from err
        except OSError as err:
            raise InputError(f"{path}: cannot read configuration file ({err})") from err
        return _relative_names(_read_mapping(cfg, str(path)), os.path.dirname(str(path)))
    if isinstance(config, Mapping):
        filename = getattr(config, "filename", None)  # a ConfigObj read from a file
        settings = _read_mapping(config, str(filename or "configObj"))
        return _relative_names(settings, os.path.dirname(str(filename))) if filename else settings
    raise ParameterError(
        f"configObj: expected None, a .cfg file name, a dict or a ConfigObj, got "
        f"{type(config).__name__}"
    )


def output_root(output: str | os.PathLike[str] | None) -> str | None:
    """AstroDrizzle's median rootname for an ``output`` value.

    ``final`` → ``final``; ``final_drz.fits`` / ``final_drc.fits`` → ``final``;
    ``final.fits`` → ``final``; empty or None → None (the caller's default). The median file is
    ``<root>_med.fits``.
    """
    if output is None:
        return None
    text = os.fspath(output).strip()
    if not text or text.lower() == "none":
        return None
    head, base = os.path.split(text)
    match = re.search(r"_dr[zc]", base)
    if match:
        base = base[: match.start()]
    elif ".fits" in base.lower():
        base = base[: base.lower().find(".fits")]
    if not base:
        raise ParameterError(f"output: {output!r} has no rootname")
    return os.path.join(head, base)


def _comment(text: str) -> list[str]:
    return ["#"] + ["# " + line for line in textwrap.wrap(text, 92)]


def _param_comment(p: ParamSpec) -> list[str]:
    choices = f" Choices: {', '.join(p.choices)}." if p.choices else ""
    only = "" if p.drizzlepac else " (medstack only; drizzlepac's loader rejects this key.)"
    default = format_value(p, p.default)
    return _comment(f"{p.help}{choices} Default: {default}.{only}")


def _canonical_type(params: MedianParams) -> str:
    return ("i" if params.fill else "") + params.kind  # average -> mean, iaverage -> imean


def _input_text(input: Any) -> str:
    if input is None:
        return ""
    if isinstance(input, (str, os.PathLike)):
        return os.fspath(input)
    if hasattr(input, "sci"):  # one InputImage
        return str(input.sci)
    return ", ".join(str(getattr(i, "sci", None) or os.fspath(i)) for i in input)


def config_text(
    params: MedianParams,
    *,
    input: Any = None,
    output: str | None = None,
    task: str | None = None,
    comments: bool = True,
    folder: str | os.PathLike[str] | None = None,
) -> str:
    """The parameters as a drizzlepac ``.cfg`` file.

    Parameters
    ----------
    params : MedianParams
        The values to write.
    input : str or list of str, optional
        The ``input`` key (a list is written as one comma-separated string).
    output : str, optional
        The ``output`` key; only the AstroDrizzle layout has it.
    task : {"createMedian", "astrodrizzle"}, optional
        The layout. Default: ``createMedian`` (the standalone task's file) when its spec can
        hold the values (``combine_type`` one of minmed, median, sum, and no ``output``),
        else ``astrodrizzle`` (only the top-level keys and the STEP 4 section; drizzlepac's
        loader fills in the other sections with its defaults).
    comments : bool
        Write each parameter's help text above it. Default is True.
    folder : path-like, optional
        The folder the file will be in: relative ``input``/``output`` names (relative to the
        current directory) are written relative to it where they lie in it, else absolute,
        as :func:`read_config` reads them relative to the file's folder. Default is None:
        absolute names.

    Returns
    -------
    str

    Notes
    -----
    ``average``/``iaverage`` are written as ``mean``/``imean`` (what they mean in medstack;
    drizzlepac's spec does not allow them). ``fillval`` (medstack only) is written only when it
    is not its default; drizzlepac's loader rejects a file holding it.
    """
    where = os.path.realpath(folder) if folder is not None else None

    def located(name: str) -> str:
        full = os.path.abspath(os.path.expanduser(name))
        if where is not None and os.path.commonpath([os.path.realpath(full), where]) == where:
            return os.path.relpath(os.path.realpath(full), where)
        return full

    if input is not None and not hasattr(input, "sci"):
        input = _names(input if isinstance(input, (str, os.PathLike)) else
                       [str(getattr(i, "sci", None) or os.fspath(i)) for i in input], located)
    if output is not None:
        output = located(str(output))
    ctype = _canonical_type(params)
    if task is None:
        task = "createMedian" if ctype in _TASK_TYPES and output is None else "astrodrizzle"
    if task not in ("createMedian", "astrodrizzle"):
        raise ParameterError(f"task: unknown value {task!r}; choose one of: createMedian, "
                             "astrodrizzle")
    if task == "createMedian" and (ctype not in _TASK_TYPES or output is not None):
        raise ParameterError(
            f"task: the createMedian layout cannot hold combine_type={ctype} or output; "
            "use astrodrizzle"
        )
    cfg = ConfigObj(interpolation=False)
    cfg.initial_comment = [
        f"# Parameters of the median step, written by medstack {__version__}.",
        f"# drizzlepac's {task} .cfg layout: read by medstack (--config FILE, configObj=FILE)",
        "# and by drizzlepac (teal.load(FILE), astrodrizzle/createMedian configObj=FILE).",
    ]
    cfg["_task_name_"] = task
    cfg["input"] = _input_text(input)
    if comments:
        cfg.comments["input"] = _comment(TASK_KEYS["input"])
    if task == "astrodrizzle":
        cfg["output"] = "" if output is None else str(output)
        if comments:
            cfg.comments["output"] = _comment(TASK_KEYS["output"])
    cfg[STEP4] = {}
    section = cfg[STEP4]
    cfg.comments[STEP4] = [""]
    for p in PARAMETERS:
        value = getattr(params, p.name)
        if not p.drizzlepac and format_value(p, value) == format_value(p, p.default):
            continue
        if not p.drizzlepac:
            log.warning("%s = %s written; drizzlepac's loader rejects this medstack-only key",
                        p.name, format_value(p, value))
        section[p.name] = ctype if p.name == "combine_type" else format_value(p, value)
        if comments:
            section.comments[p.name] = _param_comment(p)
    cfg["_RULES_"] = {}
    cfg.comments["_RULES_"] = [""]
    buf = io.BytesIO()
    cfg.write(buf)
    return buf.getvalue().decode("utf-8")


def write_config(
    path: str | os.PathLike[str],
    params: MedianParams,
    *,
    input: Any = None,
    output: str | None = None,
    task: str | None = None,
    into: Products | None = None,
) -> Path:
    """Write :func:`config_text` to ``path``, replacing any earlier file (atomically; with
    ``into``, together with the run's other products: see :func:`medstack.io.outputs.atomic_file`).

    Input and output names are written relative to the file's folder when they lie in it,
    else absolute, so that :func:`read_config` finds them from anywhere.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OutputError
        If the file cannot be written (naming it).
    """
    from .io.outputs import atomic_file

    out = Path(path)  # checked by atomic_file: never a device node replaced by a regular file
    directory = out.parent if str(out.parent) else Path(".")
    text = config_text(params, input=input, output=output, task=task, folder=directory)
    with atomic_file(out, "the configuration file", into=into) as fh:
        fh.write(text.encode("utf-8"))
    return out


@dataclass(frozen=True)
class ImageTable:
    """A per-image table: input names and the values that override their headers.

    Attributes
    ----------
    sci : tuple of str
        Science names (relative names are relative to the table's directory).
    wht : tuple of str or None, or None
        Weight names (None entries: derived from the science name).
    exptime, sky, readnoise : tuple of float or None, or None
        Per-image values (None entries: from the header).
    """

    sci: tuple[str, ...]
    wht: tuple[str | None, ...] | None = None
    exptime: tuple[float | None, ...] | None = None
    sky: tuple[float | None, ...] | None = None
    readnoise: tuple[float | None, ...] | None = None


def _cells(column: Any) -> list[Any]:
    mask = getattr(column, "mask", None)
    out: list[Any] = []
    for i, value in enumerate(column):
        if mask is not None and bool(mask[i]):
            out.append(None)
        elif hasattr(value, "item"):
            out.append(value.item())
        else:
            out.append(value)
    return out


def read_table(path: str | os.PathLike[str]) -> ImageTable:
    """Read a per-image table (CSV, or ECSV when the file starts with ``# %ECSV``).

    Columns (see :data:`TABLE_COLUMNS`): ``sci`` (required), ``wht``, ``exptime``, ``sky``,
    ``readnoise``. An empty cell falls back to the default.

    Raises
    ------
    InputError
        The file is missing or cannot be parsed as a table.
    ParameterError
        A missing ``sci`` column, an unknown column (listing the valid ones), a repeated name,
        or an invalid value (naming the column).
    """
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: table file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
        fmt = "ascii.ecsv" if first.startswith("# %ECSV") else "ascii.csv"
        table = Table.read(path, format=fmt)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read table ({err})") from err
    names = [str(n).strip() for n in table.colnames]
    unknown = [n for n in names if n not in TABLE_COLUMNS]
    if unknown:
        raise ParameterError(f"{path}: unknown column {unknown[0]!r}; valid columns: "
                             f"{', '.join(TABLE_COLUMNS)}")
    if "sci" not in names:
        raise ParameterError(f"{path}: no 'sci' column (valid columns: "
                             f"{', '.join(TABLE_COLUMNS)})")
    if len(table) == 0:
        raise ParameterError(f"{path}: the table has no rows")
    base = path.parent

    def _name(value: Any, column: str, row: int) -> str | None:
        if _is_empty(value) and column == "wht":
            return None
        if _is_empty(value):
            raise ParameterError(f"{path}: row {row + 1}: empty {column!r}")
        return os.path.join(base, str(value).strip())

    columns = dict(zip(names, table.columns.values()))
    sci = tuple(str(_name(v, "sci", i)) for i, v in enumerate(_cells(columns["sci"])))
    seen: set[str] = set()
    for i, name in enumerate(sci):
        key = os.path.realpath(name)
        if key in seen:
            raise ParameterError(f"{path}: row {i + 1}: {name} appears more than once")
        seen.add(key)
    wht = None
    if "wht" in columns:
        wht = tuple(_name(v, "wht", i) for i, v in enumerate(_cells(columns["wht"])))
    lists: dict[str, tuple[float | None, ...] | None] = {}
    for key in PER_IMAGE_KEYS:
        if key in columns:
            try:
                lists[key] = per_image_values(key, _cells(columns[key]))
            except ParameterError as err:
                raise ParameterError(f"{path}: column {err}") from err
    return ImageTable(sci=sci, wht=wht, **lists)
