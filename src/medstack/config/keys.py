"""The keys of drizzlepac's ``.cfg`` files besides the median-step parameters
(:data:`medstack.params.PARAMETERS`): the section that holds them, the task-level keys, the
drizzlepac keys medstack accepts and ignores, how names in such a file are found, and the help
text of every key (``createMedian.getHelpAsString`` and its docstrings).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..params import PARAMETERS, format_value
from .tables import PER_IMAGE_KEYS

__all__ = ["ASTRODRIZZLE_DEFAULTS", "IGNORED_KEYS", "STEP4", "TASK_KEYS", "TASK_KEY_TYPES",
           "TASK_TYPES", "key_reference", "map_names", "parameter_docs"]

#: The section of a drizzlepac ``.cfg`` that holds the median step's parameters.
STEP4 = "STEP 4: CREATE MEDIAN IMAGE"

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

#: drizzlepac keys that affect its median step but are accepted and ignored by medstack, with
#: their allowed values and why they are ignored.
IGNORED_KEYS: Mapping[str, tuple[tuple[Any, ...], str]] = {
    "proc_unit": (("native", "electrons"),
                  "thresholds are in the units of the singles (electrons/s) and never rescaled "
                  "(drizzlepac rescales them cumulatively when proc_unit=native); inside "
                  "AstroDrizzle it only decides whether the images' native units are checked"),
    "driz_sep_compress": ((True, False),
                          "the image HDU of each single file is found by itself (primary HDU, "
                          "or extension 1 when the primary is empty); inside AstroDrizzle with "
                          "in_memory=True it picks the extension of the in-memory singles"),
}

#: Keys missing from an AstroDrizzle ``.cfg`` take these values, as drizzlepac's loader fills
#: them in from ``astrodrizzle.cfgspc`` (where they differ from the createMedian task's).
ASTRODRIZZLE_DEFAULTS: Mapping[str, Any] = {"combine_maskpt": 0.3}

#: ``combine_type`` values that drizzlepac's ``createMedian.cfgspc`` allows; a ``.cfg`` for any
#: other type is written in the AstroDrizzle layout, whose spec allows all seven.
TASK_TYPES = ("minmed", "median", "sum")


def map_names(value: Any, convert: Callable[[str], str]) -> Any:
    """``value`` (one name, a comma-separated string of names, or a list of them; ``@list``
    and glob patterns included) with ``convert`` applied to each name."""
    def one(name: str) -> str:
        name = name.strip()
        if name.startswith("@"):
            return "@" + convert(name[1:].strip())
        return convert(name) if name else name

    if isinstance(value, (list, tuple)):
        return [one(os.fspath(v)) if isinstance(v, (str, os.PathLike)) else v for v in value]
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(text, str):
        return value  # None included
    if "," in text:
        return ", ".join(one(part) for part in text.split(",") if part.strip())
    return one(text)


def _entries(items: Iterable[tuple[str, str]], indent: str = "") -> str:
    """numpydoc-style entries: each ``name : type`` head with its text wrapped below it."""
    pad = indent + "    "
    return "\n".join(f"{indent}{head}\n" + textwrap.fill(text, 92, initial_indent=pad,
                                                          subsequent_indent=pad)
                     for head, text in items)


def parameter_docs(indent: str = "") -> str:
    """numpydoc-style text for every parameter, from :data:`~medstack.params.PARAMETERS`
    (``indent`` before each name)."""
    entries = []
    for p in PARAMETERS:
        kind = ("str" if p.kind == "nsigma" else p.kind) + (" or None" if p.optional else "")
        choices = f" {{{', '.join(p.choices)}}}" if p.choices else ""
        only = "" if p.drizzlepac else " [medstack only]"
        default = format_value(p, p.default)
        entries.append((f"{p.name} : {kind}{choices} (Default = {default}){only}", p.help))
    return _entries(entries, indent)


def key_reference() -> str:
    """Every key with its type and meaning, in four titled sections."""
    rule = "-" * 60
    return "\n".join([
        f"Parameters (section [{STEP4}] of a .cfg file)\n{rule}", parameter_docs(),
        f"\nTask inputs (top level of a .cfg file, or keyword arguments)\n{rule}",
        _entries((f"{name} : {TASK_KEY_TYPES[name]}", text) for name, text in TASK_KEYS.items()),
        f"\nPer-image values (keyword arguments: one entry per input image)\n{rule}",
        _entries((f"{name} : list of float", text) for name, text in PER_IMAGE_KEYS.items()),
        f"\ndrizzlepac keys accepted and ignored\n{rule}",
        _entries((f"{name} : {', '.join(str(a) for a in allowed)}", why)
                 for name, (allowed, why) in IGNORED_KEYS.items())])
