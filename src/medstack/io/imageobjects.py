"""Inputs from drizzlepac's image objects: what AstroDrizzle hands its median step.

From each ``imageObject`` it reads exactly what drizzlepac 3.11.0's ``_median`` reads (the
singles as files or, with ``obj.inmemory``, HDULists; the median's name, the exposure time,
the chips' sky and read noise, the native units). Objects are recognised by their attributes:
importing medstack never imports drizzlepac.

Notes
-----
drizzlepac skips an image whose weight file is missing; medstack raises
:class:`~medstack.errors.InputError` naming it. drizzlepac rescales the thresholds by every
image's gain and exposure time when ``proc_unit="native"`` (cumulatively); medstack never does
(``docs/deviations.md``), and says so in the log when drizzlepac would have.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .inputs import InMemory, InputImage, check_shapes, open_input

__all__ = ["ObjectStack", "is_image_object", "stack_from_objects"]

log = logging.getLogger(__name__)

#: Native units drizzlepac's median step accepts when ``proc_unit="native"``.
NATIVE_UNITS = ("counts", "electrons", "counts/s", "electrons/s")

_REQUIRED = ("outputNames", "returnAllChips", "getOutputName", "_image")


def is_image_object(obj: Any) -> bool:
    """Whether ``obj`` has the attributes of a drizzlepac image object (:data:`_REQUIRED`)."""
    return all(hasattr(obj, name) for name in _REQUIRED)


@dataclass(frozen=True)
class ObjectStack:
    """The median step's inputs, read from drizzlepac image objects: one InputImage per
    object; ``in_memory``, the first object's ``inmemory`` (the median then goes back to every
    object); ``threshold_scale``, the factor drizzlepac would apply to the thresholds."""

    images: list[InputImage]
    objects: tuple[Any, ...]
    median_name: str
    in_memory: bool
    threshold_scale: float


def _name(obj: Any) -> str:
    return str(getattr(obj, "_filename", None) or obj.outputNames.get("outSingle", "?"))


def _chip_values(obj: Any) -> tuple[float, float]:
    """drizzlepac's sky and read noise (electrons) of one object, by its rules (its comparison
    of a converted sky with an unconverted one kept: the same number comes out)."""
    chips = list(obj.returnAllChips(extname=obj.scienceExt))
    bsky = None
    for chip in chips:
        if bsky is None or bsky > chip.subtractedSky:
            bsky = chip.subtractedSky * chip._conversionFactor
    rdnoise = math.sqrt(sum(c._rdnoise ** 2 for c in chips) / len(chips)) if chips else 0.0
    return float(0.0 if bsky is None else bsky), float(rdnoise)


def _units_scale(obj: Any, proc_unit: str) -> float:
    """The factor drizzlepac applies to the thresholds for this image (1 if none)."""
    if str(proc_unit).lower() != "native":
        return 1.0
    units = str(obj.native_units)
    lower = units.lower()
    if lower not in NATIVE_UNITS:
        raise InputError(
            f"{_name(obj)}: unexpected native units {units!r}; with proc_unit=native the median "
            f"step needs one of: {', '.join(NATIVE_UNITS)}"
        )
    scale = 1.0
    if lower.startswith("counts"):
        scale *= float(obj.getGain(1))
    if lower.endswith("/s"):
        scale *= float(obj._image["sci", 1]._exptime)
    return scale


def _hdu(hdul: Any, ext: int, name: str) -> Any:
    try:
        return hdul[ext]
    except (IndexError, KeyError, TypeError) as err:
        raise InputError(f"{name}: the in-memory single has no extension {ext}") from err


def _in_memory(obj: Any, sci: str, wht: str, ext: int, scalars: dict[str, float]
               ) -> InputImage:
    from astropy.io import fits  # the singles are astropy HDULists

    sci_hdul = obj.getOutputName("outSingle")
    wht_hdul = obj.getOutputName("outSWeight")
    if not sci_hdul:
        raise InputError(f"{sci}: in-memory singly drizzled image not found (for {_name(obj)})")
    if not wht_hdul:
        raise InputError(f"{wht}: in-memory weight image not found (for {sci})")
    sci_hdu = _hdu(sci_hdul, ext, sci)
    wht_hdu = _hdu(wht_hdul, ext, wht)
    sci_data = sci_hdu.data
    wht_data = wht_hdu.data
    for name, data in ((sci, sci_data), (wht, wht_data)):
        if data is None or np.ndim(data) != 2:
            raise InputError(f"{name}: in-memory image has no 2-D data in extension {ext}")
    if sci_data.shape != wht_data.shape:
        raise InputError(
            f"{wht}: weight shape {wht_data.shape[0]}x{wht_data.shape[1]} differs from science "
            f"{sci} {sci_data.shape[0]}x{sci_data.shape[1]}"
        )
    header = sci_hdu.header if isinstance(sci_hdu.header, fits.Header) else fits.Header()
    return InputImage(sci=sci, wht=wht, sci_hdu=ext, wht_hdu=ext,
                      shape=(int(sci_data.shape[0]), int(sci_data.shape[1])),
                      memory=InMemory(np.asarray(sci_data), np.asarray(wht_data), header),
                      exptime=scalars["exptime"], sky=scalars["sky"],
                      readnoise=scalars["readnoise"])


def stack_from_objects(objects: Sequence[Any], *, proc_unit: str = "native",
                       compress: bool = False) -> ObjectStack:
    """Read the median step's inputs from drizzlepac image objects.

    Parameters
    ----------
    objects : sequence of drizzlepac image objects
        AstroDrizzle's ``imgObjList``.
    proc_unit : {"native", "electrons"}
        AstroDrizzle's ``proc_unit`` (with "native", the native units are checked). Default
        is "native".
    compress : bool
        AstroDrizzle's ``driz_sep_compress`` (in-memory singles in extension 1). Default is
        False.

    Returns
    -------
    ObjectStack

    Raises
    ------
    InputError
        A missing or unreadable single or weight, unexpected native units, shapes that differ.
    """
    objects = tuple(objects)
    if not objects:
        raise InputError("imgObjList: no input images")
    in_memory = bool(getattr(objects[0], "inmemory", False))
    ext = 1 if compress else 0
    images: list[InputImage] = []
    scale = 1.0
    for obj in objects:
        try:
            sci = str(obj.outputNames["outSingle"])
            wht = str(obj.outputNames["outSWeight"])
        except (KeyError, TypeError) as err:
            raise InputError(f"{_name(obj)}: its image object names no singly drizzled "
                             "image (outputNames outSingle/outSWeight)") from err
        scale *= _units_scale(obj, proc_unit)
        sky, readnoise = _chip_values(obj)
        scalars = dict(exptime=float(obj._image["sci", 1]._exptime), sky=sky, readnoise=readnoise)
        if in_memory:
            image = _in_memory(obj, sci, wht, ext, scalars)
        else:
            image = open_input(sci, wht, **scalars)
        log.info("reference sky value for image '%s' is %r", _name(obj), sky)
        images.append(image)
    check_shapes(images)
    return ObjectStack(images=images, objects=objects,
                       median_name=str(objects[0].outputNames["outMedian"]),
                       in_memory=in_memory, threshold_scale=scale)
