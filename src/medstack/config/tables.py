"""Per-image values: the one rule for the lists ``exptime``, ``sky`` and ``readnoise`` (one
entry per input image, overriding its header), and the tables of ``--table`` that hold them
with the input names (relative to the table's folder).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, ParameterError
from ..params import is_none

__all__ = ["PER_IMAGE_KEYS", "TABLE_COLUMNS", "ImageTable", "per_image_values", "read_table"]

#: Per-image values (lists, one entry per input image, in input order; None entries fall back
#: to the single's header), with their meaning. Only minmed uses them.
PER_IMAGE_KEYS: Mapping[str, str] = {
    "exptime": "Exposure time of each image, in seconds (> 0; minmed only). Default: EXPTIME "
    "of its single.",
    "sky": "Sky subtracted from each image, in electrons (minmed only). Default: MDRIZSKY of "
    "its single (times EXPTIME for WFC3/IR).",
    "readnoise": "Read noise of each image, in electrons (>= 0; minmed only). Default: from the "
    "READNSE* keywords of its single.",
}

#: Columns of a per-image table (``--table``).
TABLE_COLUMNS: Mapping[str, str] = {
    "sci": "science image (required): a *_single_sci.fits or an exposure name",
    "wht": "weight image (default: the science name with _single_sci -> _single_wht)",
    **PER_IMAGE_KEYS,
}


def per_image_values(name: str, values: Any, kind: str | None = "minmed"
                     ) -> tuple[float | None, ...] | None:
    """Check a per-image list (``exptime``, ``sky`` or ``readnoise``).

    Parameters
    ----------
    name : str
        One of :data:`PER_IMAGE_KEYS`.
    values : sequence of float or None, or None
        One value per input image; None entries (or ``'None'``) fall back to the header.
    kind : str or None
        The combination the values are for (:attr:`medstack.params.MedianParams.kind`): only
        for minmed, which uses them, must they be finite, the exposure times > 0 and the read
        noise >= 0. None: not known yet. Default is ``"minmed"``.

    Returns
    -------
    tuple of float or None, or None

    Raises
    ------
    ParameterError
        Naming ``name``: not a list of numbers, or not valid for minmed.

    Notes
    -----
    drizzlepac reads the per-image values of a median, mean or sum without using them, so
    they are not refused there for what only minmed needs.
    """
    if values is None:
        return None
    if isinstance(values, str) and values.strip():
        values = values.replace(",", " ").split()
    elif isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ParameterError(f"{name}: expected a list with one value per image, got {values!r}")
    out: list[float | None] = []
    for value in values:
        if is_none(value):
            out.append(None)
            continue
        try:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{name}: expected numbers, got {value!r}") from None
        if kind == "minmed":
            if not math.isfinite(number):
                raise ParameterError(f"{name}: expected finite numbers, got {value!r}")
            if name == "exptime" and not number > 0:
                raise ParameterError(f"{name}: exposure times must be > 0, got {value!r}")
            if name == "readnoise" and number < 0:
                raise ParameterError(f"{name}: read noise must be >= 0, got {value!r}")
        out.append(number)
    return tuple(out)


@dataclass(frozen=True)
class ImageTable:
    """A per-image table: the science and weight names (a None weight name: derived from the
    science name) and the values that override their headers (None entries: the header's)."""

    sci: tuple[str, ...]
    wht: tuple[str | None, ...] | None = None
    exptime: tuple[float | None, ...] | None = None
    sky: tuple[float | None, ...] | None = None
    readnoise: tuple[float | None, ...] | None = None


def read_table(path: str | os.PathLike[str], kind: str | None = "minmed") -> ImageTable:
    """Read a per-image table (CSV, or ECSV when the file starts with ``# %ECSV``).

    Columns (see :data:`TABLE_COLUMNS`): ``sci`` (required), ``wht``, ``exptime``, ``sky``,
    ``readnoise``. An empty cell falls back to the default. ``kind``: the combination the
    values are for, as for :func:`per_image_values`.

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
        ecsv = path.read_text(encoding="utf-8").startswith("# %ECSV")
        table = Table.read(path, format="ascii.ecsv" if ecsv else "ascii.csv")
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read table ({err})") from err
    # the cells as Python values, None where empty (masked)
    columns = {str(n).strip(): column.tolist() for n, column in table.columns.items()}
    unknown = [n for n in columns if n not in TABLE_COLUMNS]
    if unknown:
        raise ParameterError(f"{path}: unknown column {unknown[0]!r}; valid columns: "
                             f"{', '.join(TABLE_COLUMNS)}")
    if "sci" not in columns:
        raise ParameterError(f"{path}: no 'sci' column (valid columns: "
                             f"{', '.join(TABLE_COLUMNS)})")
    if len(table) == 0:
        raise ParameterError(f"{path}: the table has no rows")

    def names(column: str) -> list[str | None]:
        """The column's names, relative to the table's folder (None where empty)."""
        return [None if is_none(value) else os.path.join(path.parent, str(value).strip())
                for value in columns[column]]

    sci = [name for name in names("sci") if name is not None]
    if len(sci) < len(table):
        raise ParameterError(f"{path}: row {names('sci').index(None) + 1}: empty 'sci'")
    real = [os.path.realpath(name) for name in sci]
    for row, name in enumerate(sci):
        if real.index(real[row]) != row:
            raise ParameterError(f"{path}: row {row + 1}: {name} appears more than once")
    lists: dict[str, tuple[float | None, ...] | None] = {}
    for key in [k for k in PER_IMAGE_KEYS if k in columns]:
        try:
            lists[key] = per_image_values(key, columns[key], kind)
        except ParameterError as err:
            raise ParameterError(f"{path}: column {err}") from err
    return ImageTable(sci=tuple(sci), wht=tuple(names("wht")) if "wht" in columns else None,
                      **lists)
