"""drizzlepac-style configuration: ``.cfg`` files, dicts and ConfigObj objects; per-image tables.

Everything here is driven by :data:`medstack.params.PARAMETERS`: the names a ``.cfg`` may hold,
how values are checked, and what :func:`write_config` writes. This module reads; its parts are
:mod:`.keys` (the ``.cfg`` keys besides the parameters), :mod:`.write` (:func:`write_config`)
and :mod:`.tables` (the per-image lists and ``--table``), whose names it also offers.

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

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from configobj import ConfigObj, ConfigObjError

from ..errors import InputError, ParameterError
from ..params import PARAMETERS, MedianParams, is_none, validate
from .keys import (
    ASTRODRIZZLE_DEFAULTS,
    IGNORED_KEYS,
    STEP3_TAG,
    STEP4,
    STEP4_TAG,
    TASK_KEY_TYPES,
    TASK_KEYS,
    map_names,
)
from .tables import PER_IMAGE_KEYS, TABLE_COLUMNS, ImageTable, per_image_values, read_table
from .write import config_text, write_config

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

_PARAM_NAMES = tuple(p.name for p in PARAMETERS)


def _valid_names(per_image: bool) -> str:
    names = [*_PARAM_NAMES, *TASK_KEYS, *(PER_IMAGE_KEYS if per_image else ())]
    return ", ".join(names)


def _num_cores(value: Any) -> int | None:
    if is_none(value):
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
        return _check_per_image(replace(self, values=values, **changes),
                                {name: source for name in PER_IMAGE_KEYS if name in changes})


def _check_per_image(settings: Settings, sources: Mapping[str, str]) -> Settings:
    """``settings``, once its per-image lists are checked for the combination it names (only
    minmed uses them); an error names the source of the list at fault (``sources``, by key;
    else ``settings.source``)."""
    kind = MedianParams(**{k: v for k, v in settings.values.items() if k == "combine_type"}).kind
    for name in PER_IMAGE_KEYS:
        try:
            per_image_values(name, getattr(settings, name), kind)
        except ParameterError as err:
            raise ParameterError(f"{sources.get(name, settings.source)}: {err}") from err
    return settings


def _read_flat(mapping: Mapping[str, Any], source: str, task: str | None) -> Settings:
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    try:
        for key, value in mapping.items():
            name = str(key)
            if name in _PARAM_NAMES:
                values[name] = _coerce_param(name, value)
            elif name == "input":
                extra["input"] = None if is_none(value) else value
            elif name == "output":
                extra["output"] = None if is_none(value) else str(value).strip()
            elif name == "num_cores":
                extra["num_cores"] = _num_cores(value)
            elif name in PER_IMAGE_KEYS:
                extra[name] = per_image_values(name, value, None)  # checked once merged
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
    return replace(settings, input=map_names(settings.input, resolve), output=output)


def _read_mapping(mapping: Mapping[str, Any], source: str) -> Settings:
    task = _task_of(mapping)
    sections = [k for k, v in mapping.items() if isinstance(v, Mapping)]
    if not sections and task is None:
        return _check_per_image(_read_flat(mapping, source, task=None), {})
    step4 = [k for k in sections if STEP4_TAG in str(k)]
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
    step3 = [k for k in sections if STEP3_TAG in str(k)]
    given = {"proc_unit": mapping.get("proc_unit"),
             "driz_sep_compress": mapping[step3[0]].get("driz_sep_compress") if step3 else None}
    try:
        for name, value in given.items():
            if not is_none(value):
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
    if is_none(text):
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


