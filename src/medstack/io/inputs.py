"""The inputs: one checked :class:`InputImage` per exposure, with its per-image values.

An input is ``<root>_single_sci.fits`` (science, electrons/s) and ``<root>_single_wht.fits``
(weight), the image in the primary HDU or, when that has none, in extension 1.
:func:`open_inputs` is the one function every door resolves its inputs with.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, ParameterError
from .headerscan import Cards, scan_header, verify_error
from .names import expand_all, expand_inputs, first_occurrences, single_names, weight_name
from .outputs import same_file_key

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = ["InMemory", "InputImage", "check_shapes", "expand_inputs",
           "is_compressed", "open_input", "open_inputs", "read_header", "scalars_from_header",
           "single_names", "weight_name"]

log = logging.getLogger(__name__)

#: The header cards :func:`scalars_from_header` reads.
SCALAR_KEYWORDS = ("EXPTIME", "MDRIZSKY", "INSTRUME", "DETECTOR", "CCDAMP", "READNSE",
                   "READNSEA", "READNSEB", "READNSEC", "READNSED")
_BITPIX = (8, 16, 32, 64, -32, -64)


def _header_float(header: fits.Header | Cards, key: str) -> float | None:
    value = header.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _scalars(path: str, header: fits.Header | Cards) -> tuple[float | None, float | None, float | None]:
    """:func:`scalars_from_header`, with a malformed card it reads as one InputError."""
    try:
        return scalars_from_header(header)
    except verify_error() as err:  # a malformed card medstack reads (EXPTIME, CCDAMP...)
        raise InputError(f"{path}: a header card medstack reads is malformed "
                         f"({' '.join(str(err).split())})") from err


def scalars_from_header(header: fits.Header | Cards) -> tuple[float | None, float | None, float | None]:
    """Per-image ``(exptime, sky, readnoise)`` from a single's header (docs/deviations.md rules).

    Sky: ``MDRIZSKY`` as the float32 AstroDrizzle computed, times ``EXPTIME`` for WFC3/IR.
    Read noise: ``sqrt(mean(READNSEx**2))`` over the amplifiers in ``CCDAMP`` (without it, the
    ``READNSE[A-D]`` present and non-zero), else ``READNSE``. Missing values are None.
    """
    exptime = _header_float(header, "EXPTIME")
    sky = _header_float(header, "MDRIZSKY")
    if sky is not None:
        # MDRIZSKY is a float32 quantity printed with float32 precision: recover it exactly.
        sky = float(np.float32(sky))
        instrument = str(header.get("INSTRUME", "")).strip().upper()
        detector = str(header.get("DETECTOR", "")).strip().upper()
        if instrument == "WFC3" and detector == "IR" and exptime is not None:
            sky *= exptime
    amps = str(header.get("CCDAMP", "")).strip().upper()
    if amps and all(a in "ABCD" for a in amps):
        values = [v for a in amps if (v := _header_float(header, f"READNSE{a}")) is not None]
    else:
        values = [
            v for a in "ABCD" if (v := _header_float(header, f"READNSE{a}")) not in (None, 0.0)
        ]
    if values:
        return exptime, sky, math.sqrt(sum(v * v for v in values) / len(values))
    return exptime, sky, _header_float(header, "READNSE")


@dataclass(frozen=True)
class InMemory:
    """The ``(ny, nx)`` science and weight images and the science header of an input held
    in memory (AstroDrizzle's ``in_memory=True``)."""

    sci: np.ndarray
    wht: np.ndarray
    header: fits.Header


@dataclass(frozen=True)
class InputImage:
    """One input exposure: its science and weight files (``sci_hdu``, ``wht_hdu``: 0, or 1
    when the primary HDU is empty), ``shape`` ``(ny, nx)``, ``exptime`` (s), ``sky`` and
    ``readnoise`` (electrons), ``memory`` (the pixels of an input held in memory) and
    ``sci_offset``/``wht_offset``: the data's byte offset where it lies raw (unscaled float32).
    """

    sci: str
    wht: str
    sci_hdu: int
    wht_hdu: int
    shape: tuple[int, int]
    exptime: float | None = None
    sky: float | None = None
    readnoise: float | None = None
    memory: InMemory | None = field(default=None, compare=False, repr=False)
    sci_offset: int | None = field(default=None, compare=False, repr=False)
    wht_offset: int | None = field(default=None, compare=False, repr=False)

    def with_scalars(self, **values: float | None) -> InputImage:
        """Return a copy with some of ``exptime``, ``sky``, ``readnoise`` replaced."""
        changes: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
        return replace(self, **changes)


@contextmanager
def _fits_warnings(path: str) -> Iterator[None]:
    """Route astropy's warnings about ``path`` to the debug log (damage is one InputError)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        log.debug("%s: %s", path, str(w.message).replace("\n", " "))


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a FITS file")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: empty file")


def read_header(path: str, hdu: int) -> fits.Header:
    """A copy of the header of HDU ``hdu`` of ``path`` (astropy's warnings go to the debug log).

    Raises
    ------
    InputError
        If the file cannot be read.
    """
    from astropy.io import fits

    try:
        with _fits_warnings(path), fits.open(path) as hdul:
            return hdul[hdu].header.copy()
    except (OSError, IndexError, ValueError) as err:
        raise InputError(f"{path}: cannot read the header of HDU {hdu} ({err})") from err


def _data_offset(hdul: fits.HDUList, index: int) -> int:
    """Byte offset of HDU ``index``'s data (the HDU's own ``fileinfo``: the HDUList's formats
    every card of every header)."""
    info = hdul[index].fileinfo()
    if not info or info.get("datLoc") is None:
        info = hdul.fileinfo(index)
    return int(info["datLoc"])


def _raw_offset(path: str, header: fits.Header | Cards, dims: tuple[int, int], offset: int
                ) -> int | None:
    """``offset`` where the image's pixels lie raw in the file (unscaled float32), else None;
    InputError where the file is too short for its image."""
    need = offset + abs(int(header["BITPIX"])) // 8 * dims[0] * dims[1]
    size = os.path.getsize(path)
    if size < need:
        raise InputError(
            f"{path}: truncated FITS file ({size} bytes; its {dims[0]}x{dims[1]} image "
            f"needs {need})"
        )
    if header.get("BITPIX") == -32 and header.get("BSCALE", 1) == 1 \
            and header.get("BZERO", 0) == 0:
        return offset
    return None


def _open_image(path: str, scalars: bool) -> tuple[int, tuple[int, int], int | None, Any]:
    """HDU index, ``(ny, nx)``, raw data offset (:func:`_raw_offset`) and (with ``scalars``)
    the header's scalars of one checked image file: a plain one read straight
    (:func:`~medstack.io.headerscan.scan_header`), else through astropy."""
    _check_file(path)
    try:
        scan = scan_header(path, SCALAR_KEYWORDS if scalars else ())
        if scan is not None and (min(scan.shape) <= 0 or scan.header["BITPIX"] not in _BITPIX
                                 or any(isinstance(scan.header.get(k), (bool, str))
                                        for k in ("BSCALE", "BZERO"))):
            scan = None
    except (OSError, verify_error(), ValueError):
        scan = None
    if scan is not None:
        offset = _raw_offset(path, scan.header, scan.shape, scan.data_offset)
        return 0, scan.shape, offset, _scalars(path, scan.header) if scalars else None
    from astropy.io import fits

    try:
        with _fits_warnings(path):
            hdul = fits.open(path, memmap=True, lazy_load_hdus=False)
    except Exception as err:  # astropy raises assorted errors for corrupt files
        if isinstance(err, OSError) and "SIMPLE" in str(err):
            raise InputError(f"{path}: not a FITS file (no SIMPLE card at its start)") from err
        raise InputError(f"{path}: not a readable FITS file ({err})") from err
    with hdul:
        if hdul[0].header.get("NAXIS", 0) > 0:
            index = 0  # else extension 1, where a compressed single has its image
        elif len(hdul) > 1 and hdul[1].header.get("NAXIS", 0) > 0 and hdul[1].is_image:
            index = 1
        else:
            raise InputError(f"{path}: no image data in the primary HDU or extension 1")
        header = hdul[index].header
        naxis = header.get("NAXIS", 0)
        dims = tuple(int(header.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))
        if len(dims) != 2:
            raise InputError(f"{path}: image data is {len(dims)}-D {dims}, expected 2-D")
        if min(dims) <= 0:
            raise InputError(f"{path}: empty image {dims}")
        shape = (dims[0], dims[1])
        offset = None
        if not is_compressed(path) and not isinstance(hdul[index], fits.CompImageHDU):
            offset = _raw_offset(path, header, shape, _data_offset(hdul, index))
        if index == 1:  # scalars may sit in the primary header of a compressed single
            header = hdul[0].header.copy()
            header.update(hdul[1].header)
        return index, shape, offset, _scalars(path, header) if scalars else None


def open_input(
    sci: str,
    wht: str | None = None,
    *,
    exptime: float | None = None,
    sky: float | None = None,
    readnoise: float | None = None,
) -> InputImage:
    """Check one science/weight pair and read its scalars.

    Parameters
    ----------
    sci : str
        Science file (``*_single_sci.fits``).
    wht : str, optional
        Weight file. Default is the science name with ``_single_sci`` → ``_single_wht``.
    exptime, sky, readnoise : float, optional
        Explicit values; they win over the header.

    Raises
    ------
    InputError
        Missing, empty, unreadable or non-2-D files, or weight and science shapes differ.
    """
    wht = weight_name(sci) if wht is None else wht
    sci_hdu, shape, sci_offset, (h_exptime, h_sky, h_readnoise) = _open_image(sci, True)
    if not os.path.exists(wht):
        raise InputError(f"{wht}: weight file not found (for {sci})")
    wht_hdu, wshape, wht_offset, _ = _open_image(wht, False)
    if wshape != shape:
        raise InputError(
            f"{wht}: weight shape {wshape[0]}x{wshape[1]} differs from science "
            f"{sci} {shape[0]}x{shape[1]}"
        )
    return InputImage(sci=sci, wht=wht, sci_hdu=sci_hdu, wht_hdu=wht_hdu, shape=shape,
                      exptime=exptime if exptime is not None else h_exptime,
                      sky=sky if sky is not None else h_sky,
                      readnoise=readnoise if readnoise is not None else h_readnoise,
                      sci_offset=sci_offset, wht_offset=wht_offset)


def _per_image(name: str, values: Sequence[Any] | None, owner: Sequence[int]) -> list[Any]:
    """Per-image values for the distinct inputs (``owner[i]``: the first occurrence of input
    ``i``): one per distinct input, or one per input given, a repeat's equal to the first's."""
    kept = sorted(set(owner))
    if values is None:
        return [None] * len(kept)
    values = list(values)
    if len(values) == len(kept):
        return values
    if len(values) != len(owner):
        raise ParameterError(f"{name}: {len(values)} values given for {len(owner)} input images")
    for i, first in enumerate(owner):
        if values[i] != values[first]:
            raise ParameterError(f"{name}: input {i + 1} repeats input {first + 1} with another "
                                 f"value ({values[i]!r}, not {values[first]!r})")
    return [values[i] for i in kept]


def open_inputs(
    names: Sequence[str] | str,
    *,
    weights: Sequence[str] | None = None,
    exptime: Sequence[float | None] | None = None,
    sky: Sequence[float | None] | None = None,
    readnoise: Sequence[float | None] | None = None,
) -> list[InputImage]:
    """Expand, map and check every input; all must share one shape.

    Parameters
    ----------
    names : str or sequence of str
        Science names, exposure names (``*_flt.fits`` ...), globs or ``@lists``.
    weights : sequence of str, optional
        Explicit weight files, one per science file.
    exptime, sky, readnoise : sequence of float, optional
        Explicit per-image values (None: the header's), one per input as expanded or per
        distinct input (a repeated input's entry must equal the first's).

    Raises
    ------
    InputError
        For any bad file, naming it; shapes that differ name both files and shapes.
    """
    given = expand_all(names)  # e.g. j8bt06nyq_flt.fits and j8bt06nyq_single_sci.fits repeat
    owner = first_occurrences(given, lambda n: same_file_key(single_names(n)[0]))
    scis = [single_names(given[i])[0] for i in sorted(set(owner))]
    for i, sci in zip(sorted(set(owner)), scis):
        if os.path.normpath(sci) != os.path.normpath(given[i]) and not os.path.exists(sci):
            raise InputError(f"{given[i]}: its singly drizzled image {sci} does not exist "
                             "(AstroDrizzle's driz_separate step writes it)")
    columns = [_per_image(name, values, owner) for name, values in (
        ("weights", weights), ("exptime", exptime), ("sky", sky), ("readnoise", readnoise))]
    images = [open_input(s, w, exptime=e, sky=k, readnoise=r)
              for s, w, e, k, r in zip(scis, *columns)]
    check_shapes(images)
    return images


def check_shapes(images: Sequence[InputImage]) -> None:
    """Raise :class:`InputError` naming both files and shapes if the images differ in shape."""
    first = images[0]
    for img in images[1:]:
        if img.shape != first.shape:
            raise InputError(
                f"{img.sci}: shape {img.shape[0]}x{img.shape[1]} differs from "
                f"{first.sci} {first.shape[0]}x{first.shape[1]}"
            )


def is_compressed(path: str) -> bool:
    """Whether the file is gzip, bzip2 or zip compressed (not memory-mappable)."""
    with open(path, "rb") as fh:
        head = fh.read(3)
    return head[:2] in (b"\x1f\x8b", b"PK") or head == b"BZh"
