"""Input names: globs, ``@lists`` and comma-separated strings expanded (:func:`expand_inputs`),
and the science and weight files of an exposure or single name (:func:`single_names`)."""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .outputs import same_file_key

__all__ = ["EXPOSURE_SUFFIXES", "expand_all", "expand_inputs", "first_occurrences",
           "single_names", "weight_name"]

log = logging.getLogger(__name__)

#: Exposure suffixes that map to ``<root>_single_sci.fits`` beside them (docs/spec.md §2).
EXPOSURE_SUFFIXES = ("_flt", "_flc", "_c0m", "_c0f", "_cal", "_crj", "_crc", "_raw", "_drz")
_SINGLE_SCI = "_single_sci"
_SINGLE_WHT = "_single_wht"


def expand_inputs(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Expand input names: globs, ``@listfile`` lists, comma-separated strings and lists.

    Parameters
    ----------
    inputs : str, path or iterable of those
        Filenames, glob patterns, ``@file`` lists (the first column; ``#`` starts a comment),
        comma-separated strings.

    Returns
    -------
    list of str
        The names in order, a duplicate dropped with a warning.

    Raises
    ------
    InputError
        If a list file cannot be read, a pattern matches nothing, or nothing is given.
    """
    names = expand_all(inputs)
    return [names[i] for i in sorted(set(first_occurrences(names, same_file_key)))]


def expand_all(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """:func:`expand_inputs` keeping repeated names, in the order given."""
    if isinstance(inputs, (str, os.PathLike)):
        items: list[str] = [os.fspath(inputs)]
    else:
        items = [os.fspath(i) for i in inputs]
    names: list[str] = []
    for item in items:
        # a name that exists as a file is that file, even with a comma or [ ] * ? in it
        parts = [item.strip()] if _is_file(item.strip()) else [
            p.strip() for p in item.split(",")]
        for part in parts:
            if not part:
                continue
            if part.startswith("@") and not _is_file(part):
                names.extend(_read_list(part[1:]))
            elif glob.has_magic(part) and not _is_file(part):
                matches = sorted(glob.glob(part))
                if not matches:
                    raise InputError(f"{part}: no file matches this pattern")
                names.extend(matches)
            else:
                names.append(part)
    if not names:
        raise InputError("no input files given")
    return names


def _is_file(name: str) -> bool:
    try:
        return os.path.isfile(name)
    except (OSError, ValueError):
        return False


def _read_list(listfile: str) -> list[str]:
    """The names an ``@list`` file holds (relative names are relative to the list file)."""
    try:
        with open(listfile, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise InputError(f"{listfile}: cannot read list file ({err.strerror})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{listfile}: not a text list file (byte {err.start} is not UTF-8 "
                         "text)") from err
    if "\x00" in text:
        raise InputError(f"{listfile}: not a text list file (it holds NUL bytes)")
    base = os.path.dirname(listfile)
    names: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.extend(expand_all(os.path.join(base, line.split()[0])))
    if not names:
        raise InputError(f"{listfile}: the list file names no input file")
    return names


def first_occurrences(names: Sequence[str], key: Callable[[str], Any]) -> list[int]:
    """For each name, the index of the first name with the same ``key`` (itself if none); a
    repeat is logged as a warning naming both."""
    owner: list[int] = []
    seen: dict[Any, int] = {}
    for i, name in enumerate(names):
        first = seen.setdefault(key(name), i)
        if first != i:
            same = ("given more than once" if names[first] == name
                    else f"same science file as {names[first]}")
            log.warning("%s: %s; used once", name, same)
        owner.append(first)
    return owner


def single_names(name: str) -> tuple[str, str]:
    """Return ``(sci, wht)`` names for an input name: ``*_single_sci.fits`` as it is, an
    exposure name (``j8bt06nyq_flt.fits``, ...) as ``<root>_single_sci.fits`` beside it.

    Raises
    ------
    InputError
        If the name is neither a single nor a known exposure name.
    """
    path = Path(name)
    if _SINGLE_SCI in path.name:
        return str(path), weight_name(str(path))
    stem = re.sub(r"\.fits(\.gz)?$", "", path.name, flags=re.IGNORECASE)
    for suffix in EXPOSURE_SUFFIXES:
        if stem.lower().endswith(suffix):
            root = stem[: -len(suffix)]
            sci = path.with_name(f"{root}{_SINGLE_SCI}.fits")
            return str(sci), weight_name(str(sci))
    raise InputError(
        f"{name}: not a singly drizzled science file (*_single_sci.fits) nor an exposure "
        f"name ({', '.join(s + '.fits' for s in EXPOSURE_SUFFIXES)})"
    )


def weight_name(sci: str) -> str:
    """The weight file beside a science file: ``_single_sci`` → ``_single_wht``."""
    path = Path(sci)
    if _SINGLE_SCI not in path.name:
        raise InputError(f"{sci}: cannot derive a weight name (no '_single_sci' in the name)")
    return str(path.with_name(path.name.replace(_SINGLE_SCI, _SINGLE_WHT)))
