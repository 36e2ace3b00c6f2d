"""drizzlepac-style configuration: ``.cfg`` files, dicts and ConfigObj objects, read by
:func:`read_config`, in either of drizzlepac's layouts or flat (the names at the top level).

Of a whole AstroDrizzle file only the top-level ``input``, ``output`` and ``num_cores``, the keys
of :data:`IGNORED_KEYS` and the ``[STEP 4: CREATE MEDIAN IMAGE]`` section are read; keys missing
from it take AstroDrizzle's defaults, as drizzlepac's loader fills them in. A name is relative to
the file that names it (a ``.cfg`` file, a table, an ``@list``); names given on the command line
or as arguments are relative to the current directory. The parts: :mod:`.keys` (the keys besides
:data:`medstack.params.PARAMETERS`), :mod:`.write` and :mod:`.tables` (per-image values).

Notes
-----
drizzlepac's ``configObj=None`` loads the last ``.cfg`` saved by its TEAL GUI; medstack has no
such store, so None means the task defaults.
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
from ..params import PARAMETERS, MedianParams, ParamSpec, is_none, spec, validate
from .keys import ASTRODRIZZLE_DEFAULTS, IGNORED_KEYS, STEP4, TASK_KEY_TYPES, TASK_KEYS, map_names
from .tables import PER_IMAGE_KEYS, TABLE_COLUMNS, ImageTable, per_image_values, read_table
from .write import config_text, write_config

__all__ = ["ASTRODRIZZLE_DEFAULTS", "IGNORED_KEYS", "PER_IMAGE_KEYS", "STEP4", "TABLE_COLUMNS",
           "TASK_KEYS", "TASK_KEY_TYPES", "ImageTable", "Settings", "config_text", "output_root",
           "per_image_values", "read_config", "read_table", "write_config"]

log = logging.getLogger(__name__)

_PARAM_NAMES = tuple(p.name for p in PARAMETERS)
_STEP3 = "STEP 3:"  # the separate-drizzle step, which holds driz_sep_compress
_STEP4 = "STEP 4:"  # drizzlepac's util.getSectionName matches on this
_NUM_CORES = ParamSpec("num_cores", "int", None, TASK_KEYS["num_cores"], optional=True)


@dataclass(frozen=True)
class Settings:
    """Everything a configuration source says: the median-step values it gives (checked, by
    drizzlepac name; the others take the task defaults, see :attr:`params`), the task keys
    (``input``, ``output``, ``num_cores``), the per-image lists, AstroDrizzle's ``proc_unit``
    and (from STEP 3) ``driz_sep_compress`` when given, the ``task`` the source names, and the
    ``source`` itself, for messages. A key not given is None."""

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
            Flat: median-step parameters, task keys, per-image lists and the ignored
            drizzlepac keys of :data:`IGNORED_KEYS`.
        source : str
            Name used in error messages. Default is ``"inputDict"``.

        Raises
        ------
        ParameterError
            Unknown key (listing the valid names) or invalid value (naming it).
        """
        if not overrides:
            return self
        other = _read_flat(overrides, source)
        changes = {f.name: getattr(other, f.name) for f in fields(other)
                   if f.name not in ("values", "task", "source")
                   and getattr(other, f.name) is not None}
        return _check_per_image(replace(self, values={**self.values, **other.values}, **changes),
                                {name: source for name in PER_IMAGE_KEYS if name in changes})


def _check_per_image(settings: Settings, sources: Mapping[str, str]) -> Settings:
    """``settings``, once its per-image lists are checked for the combination it names (only
    minmed uses them); an error names the source of the list at fault (``sources``, by key;
    else ``settings.source``)."""
    kind = validate({k: v for k, v in settings.values.items() if k == "combine_type"}).kind
    for name in PER_IMAGE_KEYS:
        try:
            per_image_values(name, getattr(settings, name), kind)
        except ParameterError as err:
            raise ParameterError(f"{sources.get(name, settings.source)}: {err}") from err
    return settings


def _read_flat(mapping: Mapping[str, Any], source: str, announce: bool = True) -> Settings:
    """Settings from a mapping of names to values (no sections); ``announce``: log each
    drizzlepac key of :data:`IGNORED_KEYS` as ignored."""
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    try:
        for key, value in mapping.items():
            name = str(key)
            if name in _PARAM_NAMES:
                values[name] = spec(name).convert(value)
            elif name == "input":
                extra["input"] = None if is_none(value) else value
            elif name == "output":
                extra["output"] = None if is_none(value) else str(value).strip()
            elif name == "num_cores":
                cores = _NUM_CORES.convert(value)
                extra["num_cores"] = None if cores is None else max(1, cores)
            elif name in PER_IMAGE_KEYS:
                extra[name] = per_image_values(name, value, None)  # checked once merged
            elif name in IGNORED_KEYS:
                allowed, why = IGNORED_KEYS[name]
                matches = [a for a in allowed if str(a).lower() == str(value).strip().lower()]
                if not matches:
                    raise ParameterError(f"{name}: unknown value {value!r}; choose one of: "
                                         f"{', '.join(str(a) for a in allowed)}")
                if announce:
                    log.info("%s: %s = %s accepted and ignored: %s", source, name, value, why)
                extra[name] = matches[0]
            elif not (name.startswith("_") and name.endswith("_")):  # _task_name_, _RULES_ ...
                valid = ", ".join([*_PARAM_NAMES, *TASK_KEYS, *PER_IMAGE_KEYS])
                raise ParameterError(f"unknown parameter {name!r}; valid names: {valid}")
    except ParameterError as err:
        raise ParameterError(f"{source}: {err}") from err
    return Settings(values=values, source=source, **extra)


def _relative_names(settings: Settings, base: str) -> Settings:
    """``settings`` with the relative ``input`` and ``output`` names read from a file in the
    folder ``base`` made relative to that folder (unchanged if ``base`` is ``""``)."""
    def resolve(name: str) -> str:
        expanded = os.path.expandvars(os.path.expanduser(name))
        return expanded if os.path.isabs(expanded) else os.path.normpath(
            os.path.join(base, expanded))

    if not base:
        return settings
    output = resolve(settings.output) if settings.output else settings.output
    return replace(settings, input=map_names(settings.input, resolve), output=output)


def _read_mapping(mapping: Mapping[str, Any], source: str) -> Settings:
    task_name = mapping.get("_task_name_")
    task = task_name.strip() if isinstance(task_name, str) and task_name.strip() else None
    sections = [k for k, v in mapping.items() if isinstance(v, Mapping)]
    if not sections and task is None:
        return _check_per_image(_read_flat(mapping, source), {})
    step4 = next((k for k in sections if _STEP4 in str(k)), None)
    if step4 is None:
        log.warning("%s: no [%s] section; the median step takes its defaults", source, STEP4)
    values: dict[str, Any] = {}
    try:
        for key, value in (mapping[step4] if step4 is not None else {}).items():
            name = str(key)
            if name.startswith("_"):
                continue  # _section_ (TEAL's section switch)
            if name not in _PARAM_NAMES:
                raise ParameterError(f"[{step4}] unknown parameter {name!r}; valid names: "
                                     f"{', '.join(_PARAM_NAMES)}")
            values[name] = spec(name).convert(value)
    except ParameterError as err:
        raise ParameterError(f"{source}: {err}") from err
    if task is not None and task.lower() == "astrodrizzle":
        for name, default in ASTRODRIZZLE_DEFAULTS.items():
            values.setdefault(name, default)
    for key in mapping:
        if str(key) in _PARAM_NAMES:
            log.warning("%s: top-level %s ignored; median parameters belong in [%s]",
                        source, key, STEP4)
    # the task keys, and what AstroDrizzle's median step also reads: proc_unit, and
    # driz_sep_compress of STEP 3
    top = {k: v for k, v in mapping.items() if str(k) in TASK_KEYS}
    step3 = next((k for k in sections if _STEP3 in str(k)), None)
    given = {"proc_unit": mapping.get("proc_unit"),
             "driz_sep_compress": mapping[step3].get("driz_sep_compress") if step3 else None}
    top.update({k: v for k, v in given.items() if not is_none(v)})
    return replace(_read_flat(top, source, announce=False), values=values, task=task)


def read_config(config: Any = None) -> Settings:
    """Read a configuration source.

    Parameters
    ----------
    config : None, str, path-like, mapping or configobj.ConfigObj
        None or ``'defaults'``: the task defaults. A path: a ``.cfg`` file, in either
        drizzlepac layout or flat. A mapping (a dict or a ConfigObj, as ``teal.load`` returns
        it): the same in memory (names relative to the ConfigObj's file, if it has one).

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
    named = isinstance(config, (str, os.PathLike))
    if config is None or (named and os.fspath(config).strip().lower() == "defaults"):
        return Settings()
    if isinstance(config, Mapping):
        filename = getattr(config, "filename", None)  # a ConfigObj read from a file
        return _relative_names(_read_mapping(config, str(filename or "configObj")),
                               os.path.dirname(str(filename or "")))
    if not named:
        raise ParameterError("configObj: expected None, a .cfg file name, a dict or a ConfigObj, "
                             f"got {type(config).__name__}")
    path = Path(os.path.expandvars(os.path.expanduser(os.fspath(config))))
    if not path.is_file():
        raise InputError(f"{path}: configuration file not found")
    try:
        cfg = ConfigObj(str(path), file_error=True, interpolation=False, encoding="utf-8")
    except (ConfigObjError, UnicodeDecodeError) as err:
        raise ParameterError(f"{path}: not a valid .cfg file ({err})") from err
    except OSError as err:
        raise InputError(f"{path}: cannot read configuration file ({err})") from err
    return _relative_names(_read_mapping(cfg, str(path)), os.path.dirname(str(path)))


def output_root(output: str | os.PathLike[str] | None) -> str | None:
    """AstroDrizzle's median rootname (of ``<root>_med.fits``) for an ``output`` value:
    ``final``, ``final.fits``, ``final_drz.fits`` and ``final_drc.fits`` give ``final``; empty
    or None gives None (the caller's default)."""
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


