"""The products of a run: the output header with its provenance, the sinks that section results
go to (files written section by section, arrays, the quick-look), and :class:`MedianResult`."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__, dependency_versions
from ..io.fitsheader import OutputHeader
from ..io.headerscan import scan_header
from ..io.inputs import read_header
from ..io.outputs import Products
from ..io.writer import FitsImageWriter
from ..kernels import SectionResult
from ..params import PARAMETERS, format_value
from .plan import StackPlan
from .sections import Section

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = ["PRODUCT_DTYPES", "MedianResult", "OutputSinks", "median_header", "pending_result",
           "provenance"]

#: The dtype of each product, as a file and as an array: the median, the count of good inputs
#: per pixel and minmed's minimum-chosen map.
PRODUCT_DTYPES: dict[str, np.dtype] = {
    "median": np.dtype(np.float32), "ngood": np.dtype(np.uint16), "minchosen": np.dtype(np.uint8)}


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
        if spec_.kind == "nsigma" or value is None or (spec_.kind == "float"
                                                       and not np.isfinite(value)):
            value = format_value(spec_, value)
        cards.append((spec_.keyword, value, spec_.name))
    history = [f"medstack {__version__} median of {plan.n_images} images",
               f"with {dependency_versions()}"]
    history += [f"medstack input {i + 1}: {_ascii(os.path.basename(img.sci))}"
                for i, img in enumerate(plan.images)]
    return cards, history


def median_header(plan: StackPlan) -> OutputHeader:
    """The median's header: the first input's science header, less its structural cards, plus
    the provenance; its cards copied as they lie in the file where every one is plain (without
    astropy), else as astropy writes them."""
    if plan.frames is not None:  # frames in memory carry no header
        return OutputHeader()
    cards, history = provenance(plan)
    first = plan.images[0]
    scan = None
    if first.memory is None:
        with contextlib.suppress(OSError):  # read_header says what is wrong with the file
            scan = scan_header(first.sci, hdu=first.sci_hdu)
    template = OutputHeader.from_cards(scan.cards) if scan is not None else None
    if template is None:
        header = (first.memory.header.copy() if first.memory is not None else
                  read_header(first.sci, first.sci_hdu))
        template = OutputHeader.from_astropy(header, source=first.sci)
    return template.updated(cards, history)


@dataclass(repr=False)
class MedianResult:
    """What :func:`medstack.core.run.run` produced; its ``repr`` is one short line (shape,
    combine type, number of images, path, time).

    Attributes
    ----------
    data : ndarray or None
        The median image (float32), when asked for.
    header : astropy.io.fits.Header
        The output header: the first input's, plus provenance (made from the run's
        :class:`~medstack.io.fitsheader.OutputHeader` when first asked for).
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
        plan = self.plan
        n = plan.n_images if plan else 0
        parts = ["x".join(map(str, plan.shape)) if plan else "?",
                 plan.params.combine_type if plan else "?", f"{n} image{'' if n == 1 else 's'}",
                 f"path={str(self.path)!r}" if self.path is not None else "no file",
                 f"{self.seconds:.2f} s"]
        if self.data is None:
            parts.insert(-1, "data not kept")
        return f"<MedianResult {', '.join(parts)}>"


def _get_header(self: MedianResult) -> fits.Header:
    if isinstance(self.__dict__["_header"], OutputHeader):  # the cards the run wrote
        self.__dict__["_header"] = self.__dict__["_header"].astropy()
    return self.__dict__["_header"]


# An astropy Header made from the cards on first access (set after the dataclass is made, so
# that ``header`` stays a plain field: ``MedianResult(data, header, ...)``)
MedianResult.header = property(  # type: ignore[assignment]
    _get_header, lambda self, header: self.__dict__.__setitem__("_header", header),
    doc="The output header (astropy.io.fits.Header).")


_MAP_UNITS = {
    "ngood": ("number of good inputs per pixel", "count"),
    "minchosen": ("1 where minmed chose the minimum", ""),
}


def _map_header(header: OutputHeader, key: str) -> OutputHeader:
    """The median's header (same WCS and provenance) with BUNIT/MEDMAP describing a map."""
    if key not in _MAP_UNITS:
        return header
    what, unit = _MAP_UNITS[key]
    return header.updated([("BUNIT", unit, "map unit"), ("MEDMAP", key, what)])


class OutputSinks:
    """Where section results go: the files of ``products`` written section by section (the
    median and its maps), in-memory arrays, the quick-look (whatever executor computed them)."""

    def __init__(self, plan: StackPlan, header: OutputHeader, products: Products,
                 keep_data: bool, maps: bool, keep_maps: bool = False,
                 quicklook: bool = False) -> None:
        self.products = products
        self.writers: dict[str, FitsImageWriter] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.quicklook = None
        if quicklook:  # binned as the sections come: no full-size copy for the PNG
            from ..extras.quicklook import QuickLook

            self.quicklook = QuickLook(plan.shape, counts=True)
        kept = 1 if not (maps or keep_maps) else 3 if plan.spec.kind == "minmed" else 2
        try:
            for key, path in {"median": products.median, **products.maps}.items():
                if path is not None:
                    self.writers[key] = FitsImageWriter(path, plan.shape, PRODUCT_DTYPES[key],
                                                        _map_header(header, key), into=products)
            for key in ("median", "ngood", "minchosen")[:kept] if keep_data else ():
                self.arrays[key] = np.empty(plan.shape, dtype=plan.spec.dtype if key == "median"
                                            else PRODUCT_DTYPES[key])
        except BaseException:
            self.abort()
            raise

    def put(self, section: Section, result: SectionResult) -> None:
        o0, o1 = section.out
        if self.quicklook is not None:
            self.quicklook.add(o0, result.median, result.ngood)
        for key, writer in self.writers.items():
            writer.write_rows(o0, getattr(result, key))
        for key, array in self.arrays.items():
            array[o0:o1] = getattr(result, key)

    def commit(self) -> None:
        """Sync every file and commit it with the run's other products (all or nothing:
        :meth:`medstack.io.outputs.Products.commit`)."""
        for writer in self.writers.values():
            writer.finish()
        self.products.commit()

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        self.products.abort()


def pending_result(sinks: OutputSinks, header: OutputHeader, plan: StackPlan,
                   no_good: int = 0) -> MedianResult:
    """What a run has made before its files are committed (no paths yet)."""
    arrays = sinks.arrays
    return MedianResult(data=arrays.get("median"), header=header, ngood=arrays.get("ngood"),
                        minchosen=arrays.get("minchosen"), plan=plan, no_good=no_good,
                        quicklook=sinks.quicklook)


