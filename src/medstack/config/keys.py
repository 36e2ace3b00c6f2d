"""The keys of drizzlepac's ``.cfg`` files besides the median-step parameters
(:data:`medstack.params.PARAMETERS`): the section that holds them, the task-level keys, the
drizzlepac keys medstack accepts and ignores, and how names in such a file are found.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ASTRODRIZZLE_DEFAULTS", "IGNORED_KEYS", "STEP4", "TASK_KEYS", "TASK_KEY_TYPES",
           "TASK_TYPES", "map_names"]

#: The section of a drizzlepac ``.cfg`` that holds the median step's parameters.
STEP4 = "STEP 4: CREATE MEDIAN IMAGE"
STEP4_TAG = "STEP 4:"  # drizzlepac's util.getSectionName matches on this
STEP3_TAG = "STEP 3:"  # the separate-drizzle step, which holds driz_sep_compress

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
TASK_TYPES = ("minmed", "median", "sum")


def map_names(value: Any, convert: Callable[[str], str]) -> Any:
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
