"""The products of a run: the output header with its provenance, the sinks that section results
go to (files written section by section, arrays, the quick-look), and :class:`MedianResult`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__, dependency_versions
from ..io.rawheader import NotPlain, RawHeader, raw_output_header
from ..io.readers import image_header, image_header_cards
from ..io.writer import FitsImageWriter, check_output_path, map_name, output_header
from ..kernels import SectionResult
from ..params import PARAMETERS, format_value
from .plan import StackPlan
from .sections import Section

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = ["MedianResult", "OutputSinks", "median_header", "pending_result", "provenance",
           "versions"]


def versions() -> str:
    """The versions of what computes the median: ``numpy 2.4.0, astropy 7.1.0, Python
    3.11.9`` (from package metadata: nothing is imported)."""
    return dependency_versions()


def _ascii(text: str) -> str:
    """``text`` as printable ASCII (FITS cards hold nothing else): other characters become
    ``\\xNN``/``\\uNNNN`` escapes."""
    out = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in out)


def provenance(plan: StackPlan) -> tuple[list[tuple[str, object, str]], list[str]]:
    """Header cards and HISTORY lines recording how the median was made."""
    p = plan.params
    cards: list[tuple[str, object, str]] = [
        ("MEDSTACK", __version__, "medstack version that made this image"),
        ("NCOMBINE", plan.n_images, "number of images combined"),
    ]
    for spec_ in PARAMETERS:  # the keyword of each parameter comes from the spec
        if spec_.keyword is None:
            continue
        value = getattr(p, spec_.name)
        if spec_.kind in ("nsigma",) or value is None:
            value = format_value(spec_, value)
        elif spec_.kind == "float" and not np.isfinite(value):
            value = format_value(spec_, value)
        cards.append((spec_.keyword, value, spec_.name))
    history = [f"medstack {__version__} median of {plan.n_images} images",
               f"with {versions()}"]
    history += [f"medstack input {i + 1}: {_ascii(os.path.basename(img.sci))}"
                for i, img in enumerate(plan.images)]
    return cards, history


def median_header(plan: StackPlan) -> fits.Header | RawHeader:
    """The median's header: the first input's, less its structural cards, plus the provenance
    (:func:`provenance`), as :func:`medstack.io.writer.output_header` builds it. Built from the
    raw cards, without astropy, where the first input's header is plain enough
    (:func:`medstack.io.rawheader.raw_output_header`: the same bytes); else with astropy."""
    if plan.frames is not None:  # frames in memory carry no header
        return RawHeader([], [])
    cards, history = provenance(plan)
    first = plan.images[0]
    raw = image_header_cards(first)
    if raw is not None:
        header = raw_output_header(raw, cards, history, source=first.sci)
        if header is not None:
            return header
    return output_header(image_header(first), cards, history, source=first.sci)


@dataclass(repr=False)
class MedianResult:
    """What :func:`medstack.core.run.run` produced.

    Attributes
    ----------
    data : ndarray or None
        The median image (float32), when asked for.
    header : astropy.io.fits.Header
        The output header: the first input's, plus provenance (made from the header's cards
        when first asked for, where the run built them without astropy).
    path : Path or None
        The median file written, if any.
    ngood, minchosen : ndarray or None
        The count map (uint16) and, for minmed, the minimum-chosen map (uint8), when asked for.
    map_paths : list of Path
        Map files written (``--save-maps``).
    seconds : float
        Wall time of the run (not counting the run option ``before_commit``'s own time).
    plan : StackPlan or None
        The plan that was run (inputs, parameters, sections).
    no_good : int
        Output pixels with no good input (set to ``fillval``).
    quicklook : medstack.extras.quicklook.QuickLook or None
        With ``quicklook=True``: what the quick-look PNG shows, built section by section
        (write it with ``result.quicklook.save(path, header=result.header)``).

    Notes
    -----
    The ``repr`` is one short line (shape, combine type, number of images, path, time); the
    header, the arrays and the plan stay attributes.
    """

    data: np.ndarray | None
    header: fits.Header
    path: Path | None = None
    ngood: np.ndarray | None = None
    minchosen: np.ndarray | None = None
    map_paths: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    plan: StackPlan | None = None
    no_good: int = 0
    quicklook: Any = None

    def __repr__(self) -> str:
        if self.plan is not None:
            shape, ctype, n = self.plan.shape, self.plan.params.combine_type, self.plan.n_images
        else:
            shape = self.data.shape if self.data is not None else None
            ctype, n = self.header.get("MEDCTYPE"), self.header.get("NCOMBINE")
        shape_text = "x".join(str(v) for v in shape) if shape else "?"
        parts = [f"{shape_text}", f"{ctype}", f"{n} image{'' if n == 1 else 's'}",
                 f"path={str(self.path)!r}" if self.path is not None else "no file",
                 f"{self.seconds:.2f} s"]
        if self.data is None:
            parts.insert(-1, "data not kept")
        return f"<MedianResult {', '.join(parts)}>"


def _get_header(self: MedianResult) -> fits.Header:
    header = self.__dict__["_header"]
    if isinstance(header, RawHeader):  # the raw cards of a run that needed no astropy
        header = self.__dict__["_header"] = header.shared_astropy()
    return header


def _set_header(self: MedianResult, header: fits.Header | RawHeader) -> None:
    self.__dict__["_header"] = header


# An astropy Header, built from the raw cards on first access (after the dataclass is made,
# so that ``header`` stays a plain field: ``MedianResult(data, header, ...)`` as before)
MedianResult.header = property(  # type: ignore[assignment]
    _get_header, _set_header, doc="The output header (astropy.io.fits.Header).")


_MAP_UNITS = {
    "ngood": ("number of good inputs per pixel", "count"),
    "minchosen": ("1 where minmed chose the minimum", ""),
}


def _map_header(header: fits.Header | RawHeader, key: str) -> fits.Header | RawHeader:
    """The median's header (same WCS and provenance) with BUNIT/MEDMAP describing a map
    (without astropy for a plain :class:`RawHeader`)."""
    if key not in _MAP_UNITS:
        return header
    what, unit = _MAP_UNITS[key]
    if isinstance(header, RawHeader):
        raw = header.copy()
        try:
            raw.set("BUNIT", unit, "map unit")
            raw.set("MEDMAP", key, what)
            return raw
        except NotPlain:  # e.g. BUNIT already says so: as astropy does it
            header = header.to_astropy()
    out = header.copy()
    out["BUNIT"] = (unit, "map unit")
    out["MEDMAP"] = (key, what)
    return out


class OutputSinks:
    """Where section results go: files written section by section, in-memory arrays, the
    quick-look (whatever executor computed them)."""

    def __init__(self, plan: StackPlan, header: fits.Header | RawHeader, path: Path | None,
                 keep_data: bool, maps: bool, keep_maps: bool = False,
                 quicklook: bool = False) -> None:
        self.writers: dict[str, FitsImageWriter] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.quicklook = None
        if quicklook:  # binned as the sections come: no full-size copy for the PNG
            from ..extras.quicklook import QuickLook

            self.quicklook = QuickLook(plan.shape, counts=True)
        shape = plan.shape
        minmed = plan.spec.kind == "minmed"
        map_types: dict[str, type] = {"ngood": np.uint16}
        if minmed:
            map_types["minchosen"] = np.uint8
        out = np.dtype(plan.spec.dtype).type
        files: dict[str, type] = {"median": out, **(map_types if maps else {})}
        arrays: dict[str, type] = {"median": out,
                                   **(map_types if maps or keep_maps else {})}
        try:
            if path is not None:
                names = {"median": path, "ngood": map_name(path, "ngood"),
                         "minchosen": map_name(path, "minchosen")}
                inputs = [name for img in plan.images for name in (img.sci, img.wht)]
                for key in files:
                    check_output_path(names[key], inputs)  # a map must not replace an input
                for key, dtype in files.items():
                    self.writers[key] = FitsImageWriter(names[key], shape, dtype,
                                                        _map_header(header, key))
            if keep_data:
                for key, dtype in arrays.items():
                    self.arrays[key] = np.empty(shape, dtype=dtype)
        except BaseException:
            self.abort()
            raise

    def put(self, section: Section, result: SectionResult) -> None:
        o0, o1 = section.out
        parts = {"median": result.median, "ngood": result.ngood, "minchosen": result.minchosen}
        if self.quicklook is not None:
            self.quicklook.add(o0, result.median, result.ngood)
        for key, writer in self.writers.items():
            writer.write_rows(o0, parts[key])
        for key, array in self.arrays.items():
            array[o0:o1] = parts[key]

    def commit(self) -> list[Path]:
        # The median goes last, so that its presence means a complete product.
        order = sorted(self.writers, key=lambda k: k == "median")
        return [self.writers[k].commit() for k in order]

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()




def pending_result(sinks: OutputSinks, header: fits.Header | RawHeader, plan: StackPlan,
                   no_good: int = 0) -> MedianResult:
    """What a run has made before its files are committed (no paths yet)."""
    arrays = sinks.arrays
    return MedianResult(data=arrays.get("median"), header=header, ngood=arrays.get("ngood"),
                        minchosen=arrays.get("minchosen"), plan=plan, no_good=no_good,
                        quicklook=sinks.quicklook)


