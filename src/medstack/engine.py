"""The local engine: plan, read, combine and write a median image on the threads of one machine.

The steps, each reusable by :mod:`medstack.dask_backend`:

1. :func:`prepare` checks the stack against the parameters (before any work) and builds a
   :class:`StackPlan`: the sections, the kernel spec and the per-image scalars.
2. :func:`weight_stats` reads one image's weights once, in sections, for its mean weight.
3. :func:`compute_section` reads one section's rows from every input and combines them.
4. Results go to sinks: a section-by-section FITS writer and/or in-memory arrays.

:func:`median_image` runs them all; it is the Python API behind the CLI.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import mmap
import numbers
import os
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ._version import __version__
from .config import per_image_values
from .errors import InputError, OutputError, ParameterError, StepAbortedError
from .inputs import (
    ArrayReader,
    ImageReader,
    InputImage,
    compressed_magic,
    is_compressed,
    open_inputs,
    read_header,
)
from .kernels import CombineSpec, ImageScalars, SectionResult, combine_section
from .masks import WeightMean, WeightStats
from .memory import peak_bytes
from .openfiles import descriptors_needed, ensure_open_files
from .params import PARAMETERS, MedianParams, format_value, validate
from .sections import Section, plan_sections, section_rows
from .writer import FitsImageWriter, check_output_path, map_name, output_header

__all__ = [
    "MedianResult",
    "OutputSinks",
    "RawReader",
    "SectionBuffers",
    "StackPlan",
    "compute_section",
    "default_workers",
    "image_header",
    "image_reader",
    "median_image",
    "open_reader",
    "output_name",
    "pending_result",
    "prepare",
    "rootname",
    "run",
    "warn_no_good_pixel",
    "weight_stats",
]

log = logging.getLogger(__name__)

#: Log level of the few messages a user should see on every run (between INFO and WARNING):
#: that kernels are about to be compiled. The CLI shows it unless ``--quiet``.
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

#: Below this fraction of output pixels with a good input, a run ends with a warning.
FEW_GOOD_FRACTION = 0.1

#: A progress callback: ``progress(done, total)`` after each section.
Progress = Callable[[int, int], None]


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def rootname(name: str) -> str:
    """``dir/j8bt06naq_single_sci.fits`` → ``dir/j8bt06naq``."""
    path = Path(name)
    base = path.name
    for suffix in (".gz", ".fits", ".fit"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    for tail in ("_single_sci", "_single_wht"):
        if base.endswith(tail):
            base = base[: -len(tail)]
    return str(path.with_name(base))


def output_name(root: str | os.PathLike[str]) -> Path:
    """The median file of an output rootname: ``ROOT_med.fits`` (a name ending in ``.fits`` or
    ``.fit``, in any case, is used as it is).

    Raises
    ------
    OutputError
        If ``root`` is empty or ends with a path separator (a directory, not a rootname).
    """
    root = os.fspath(root)
    if not root or root.endswith(os.sep) or (os.altsep and root.endswith(os.altsep)):
        raise OutputError(f"{root or repr(root)}: the output rootname names a directory; give "
                          f"a rootname in it, such as {os.path.join(root, 'visit')}")
    if root.lower().endswith((".fits", ".fit")):
        return Path(root)
    return Path(f"{root}_med.fits")


@dataclass(frozen=True)
class StackPlan:
    """Everything needed to combine a checked stack, derived from inputs and parameters."""

    images: tuple[InputImage, ...]
    params: MedianParams
    spec: CombineSpec
    scalars: ImageScalars | None
    shape: tuple[int, int]
    section_rows: int
    sections: tuple[Section, ...]
    needs_weights: bool

    @property
    def n_images(self) -> int:
        """Number of inputs."""
        return len(self.images)


def prepare(images: Sequence[InputImage], params: MedianParams) -> StackPlan:
    """Check the stack against the parameters and plan the run; no pixel is read.

    Raises
    ------
    ParameterError
        minmed with one image; ``combine_nlow + combine_nhigh >= N`` for median/mean.
    InputError
        minmed with an exposure time missing or not positive (naming the file).
    """
    if not images:
        raise InputError("no input images")
    n = len(images)
    kind = params.kind
    if kind == "minmed" and n < 2:
        raise ParameterError(
            f"combine_type={params.combine_type} needs two or more input images, got 1; "
            "use median, mean or sum"
        )
    if kind in ("median", "mean") and n - params.combine_nlow - params.combine_nhigh < 1:
        raise StepAbortedError(
            f"combine_nlow + combine_nhigh = {params.combine_nlow + params.combine_nhigh} "
            f"rejects every one of the {n} input images; it must be less than {n}"
        )
    if params.median_newmasks and params.combine_maskpt > 1:
        log.warning(
            "combine_maskpt = %g is a fraction of each image's mean weight, not a percentage: "
            "a pixel is masked where its weight is below %g times the mean, which masks most "
            "pixels (did you mean %g?)", params.combine_maskpt, params.combine_maskpt,
            params.combine_maskpt / 100)
    scalars = None
    if kind == "minmed":
        for img in images:
            if img.exptime is None:
                raise InputError(f"{img.sci}: EXPTIME missing; minmed needs the exposure time")
            if not img.exptime > 0:
                raise InputError(
                    f"{img.sci}: EXPTIME = {img.exptime:g}; minmed needs a positive exposure time"
                )
            if img.sky is None:
                log.warning("%s: MDRIZSKY missing; sky taken as 0", img.sci)
            if img.readnoise is None:
                log.warning("%s: READNSE* missing; readnoise taken as 0", img.sci)
        scalars = ImageScalars.of(
            [img.exptime for img in images],
            [img.sky or 0.0 for img in images],
            [img.readnoise or 0.0 for img in images],
        )
    ny, nx = images[0].shape
    rows = section_rows(ny, nx, params.budget_bytes, params.grow_px)
    sections = tuple(plan_sections(ny, rows, params.grow_px))
    return StackPlan(
        images=tuple(images),
        params=params,
        spec=CombineSpec.from_params(params),
        scalars=scalars,
        shape=(ny, nx),
        section_rows=rows,
        sections=sections,
        needs_weights=params.median_newmasks or kind == "minmed",
    )


class RawReader:
    """Rows of an uncompressed, unscaled float32 FITS image as they lie in the file: each call
    of :meth:`rows` maps just those rows, read-only, and hands them out as a big-endian float32
    view (no copy, no byte swap: the fast kernels swap as they load). The mapping goes when the
    view does, so the resident size holds only the rows in use. Opens the file once; safe from
    several threads.

    Use :func:`open_reader`, which falls back to :class:`~medstack.inputs.ImageReader` for
    anything else (gzip, tile-compressed, integer or scaled data).

    Notes
    -----
    One mapping per call, not one of the whole file: the kernel may map more of a file than
    was touched (fault-around, large page-cache folios: up to several MiB per fault after a
    cold read on Linux 6), and pages mapped beyond a section would count in the resident
    size until the file is closed. A mapping of the section's rows bounds that exactly.
    """

    integer = False
    in_memory = False

    def __init__(self, path: str, hdu: int, shape: tuple[int, int], offset: int,
                 keep_open: bool = True) -> None:
        self.path = path
        self.hdu = hdu
        self.shape = shape
        self._offset = offset
        self._row_bytes = shape[1] * 4
        #: Whether the file stays open (and rows are mapped); else every read opens it, reads
        #: with ``pread`` into the caller's buffer and closes it, so that thousands of inputs
        #: need no file descriptor each.
        self.mappable = keep_open
        self._fd = self._open() if keep_open else -2

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as err:
            raise InputError(f"{self.path}: cannot open ({err.strerror})") from err

    @classmethod
    def open(cls, path: str, hdu: int, keep_open: bool = True) -> RawReader | None:
        """A reader for ``path``'s HDU ``hdu``, or None if its data cannot be mapped raw
        (``keep_open=False``: see :attr:`mappable`)."""
        try:
            found = _data_location(path, hdu)
            if found is None:
                return None
            offset, cards = found
            if (cards.get("BITPIX") != -32 or cards.get("NAXIS") != 2 or cards.get("ZIMAGE")
                    or cards.get("BSCALE", 1) != 1 or cards.get("BZERO", 0) != 0):
                return None
            shape = (int(cards.get("NAXIS2", 0)), int(cards.get("NAXIS1", 0)))
            if min(shape) <= 0 or os.path.getsize(path) < offset + shape[0] * shape[1] * 4:
                return None
            return cls(path, hdu, shape, offset, keep_open)
        except (OSError, ValueError):
            return None  # ImageReader reports it

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``[y0, y1)``: a read-only big-endian float32 view of a mapping of just those
        rows (unmapped when the view and its slices are gone).

        Raises
        ------
        InputError
            If the reader is closed or the rows cannot be mapped.
        """
        if self._fd < 0:
            raise InputError(f"{self.path}: reader closed" if self._fd == -1 else
                             f"{self.path}: reader does not map (opened with keep_open=False)")
        nx = self.shape[1]
        if y1 <= y0:
            return np.empty((0, nx), dtype=">f4")
        first = self._offset + y0 * self._row_bytes
        base = first - first % mmap.ALLOCATIONGRANULARITY
        try:
            window = mmap.mmap(self._fd, self._offset + y1 * self._row_bytes - base,
                               access=mmap.ACCESS_READ, offset=base)
        except (OSError, ValueError) as err:
            raise InputError(f"{self.path}: cannot map rows {y0}-{y1} ({err})") from err
        return np.frombuffer(window, dtype=">f4", count=(y1 - y0) * nx,
                             offset=first - base).reshape(y1 - y0, nx)

    def read_into(self, y0: int, y1: int, out: np.ndarray) -> np.ndarray:
        """Rows ``[y0, y1)`` copied with ``os.pread`` into ``out`` (a C-contiguous buffer of
        ``(y1 - y0) × nx`` 4-byte items), as they lie in the file (big-endian float32): for a
        pass over the whole image, a small buffer that stays in cache beats mapping each page.

        Raises
        ------
        InputError
            If the file is shorter than its header says or cannot be read.
        """
        view = memoryview(out).cast("B")
        pos = self._offset + y0 * self._row_bytes
        want = (y1 - y0) * self._row_bytes
        done = 0
        if self._fd == -1:
            raise InputError(f"{self.path}: reader closed")
        fd = self._fd if self._fd >= 0 else self._open()
        try:
            while done < want:
                got = os.preadv(fd, [view[done:want]], pos + done)
                if got <= 0:
                    raise InputError(f"{self.path}: cannot read rows {y0}-{y1} (file truncated)")
                done += got
        except OSError as err:
            raise InputError(f"{self.path}: cannot read rows {y0}-{y1} ({err.strerror})") from err
        finally:
            if fd != self._fd:
                os.close(fd)
        return out

    def read(self, y0: int, y1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``[y0, y1)`` as native float32, into ``out`` when given (as ImageReader).

        Raises
        ------
        InputError
            If the file cannot be read.
        """
        if out is None:
            out = np.empty((y1 - y0, self.shape[1]), dtype=np.float32)
        if not self.mappable:  # read as it lies (big-endian), then to native order in place
            bits = self.read_into(y0, y1, out.view(np.uint32))
            if np.little_endian:
                bits.byteswap(inplace=True)
            return out
        try:
            out[...] = self.rows(y0, y1)
        except (OSError, ValueError) as err:
            raise InputError(f"{self.path}: cannot read rows {y0}-{y1} ({err})") from err
        return out

    def prefetch(self, y0: int, y1: int) -> None:
        """Ask the kernel to start reading rows ``[y0, y1)`` (``POSIX_FADV_WILLNEED``), so that
        a later read of a cold file finds them in the page cache; nothing where unsupported."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is None or self._fd < 0 or y1 <= y0:
            return
        try:
            advise(self._fd, self._offset + y0 * self._row_bytes, (y1 - y0) * self._row_bytes,
                   os.POSIX_FADV_WILLNEED)
        except OSError:  # pragma: no cover - advice only
            pass

    def close(self) -> None:
        """Close the file (views handed out stay valid until they go)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_FITS_BLOCK = 2880
_CARDS = ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "PCOUNT", "GCOUNT", "BSCALE", "BZERO",
          "ZIMAGE")


def _data_location(path: str, hdu: int) -> tuple[int, dict[str, Any]] | None:
    """Byte offset of HDU ``hdu``'s data and its structural cards, read straight from the
    header blocks (astropy's ``fileinfo`` formats every card of every header, which costs more
    than reading a section). None for a compressed (gzip/zip/bzip2) or unusual file."""
    with open(path, "rb") as fh:
        if compressed_magic(fh.read(3)):
            return None
        pos = 0
        for index in range(hdu + 1):
            fh.seek(pos)
            cards: dict[str, Any] = {}
            ended = False
            while not ended:
                block = fh.read(_FITS_BLOCK)
                if len(block) < _FITS_BLOCK:
                    return None
                pos += _FITS_BLOCK
                for k in range(0, _FITS_BLOCK, 80):
                    key = block[k:k + 8].rstrip().decode("ascii", "replace")
                    if key == "END":
                        ended = True
                        break
                    if key in _CARDS and block[k + 8:k + 10] == b"= ":
                        text = block[k + 10:k + 80].split(b"/")[0].strip().decode("ascii")
                        cards[key] = (text == "T") if text in ("T", "F") else float(text)
            naxis = int(cards.get("NAXIS", 0))
            size = 0
            if naxis > 0:
                size = int(cards.get("PCOUNT", 0))
                count = 1
                for axis in range(1, naxis + 1):
                    count *= int(cards.get(f"NAXIS{axis}", 0))
                size = abs(int(cards.get("BITPIX", 8))) // 8 * int(cards.get("GCOUNT", 1)) * (
                    size + count)
            if index == hdu:
                return pos, cards
            pos += -(-size // _FITS_BLOCK) * _FITS_BLOCK
    return None


def open_reader(path: str, hdu: int, scratch: str | os.PathLike[str] | None = None,
                keep_open: bool = True) -> RawReader | ImageReader:
    """The fastest reader for one input image: :class:`RawReader` where the data are plain
    float32 (with ``keep_open=False``, one that holds no open file), else
    :class:`~medstack.inputs.ImageReader`.

    A gzip/bzip2/zip-compressed file is first decompressed, streamed in small blocks, into a
    temporary file in ``scratch`` (default: the system's temporary directory), which is then
    read like any other file and removed at once (it lives on while the reader holds it open):
    the memory a run needs does not grow with the image, and the log says what it cost.

    Raises
    ------
    InputError
        If the compressed file is damaged.
    OutputError
        If the temporary file cannot be written (disk full, ...).
    """
    try:
        compressed = is_compressed(path)
    except OSError:
        compressed = False  # ImageReader says what is wrong with it
    if compressed:
        return _open_decompressed(path, hdu, scratch)
    return RawReader.open(path, hdu, keep_open) or ImageReader(path, hdu)


def image_reader(img: InputImage, which: str, scratch: str | os.PathLike[str] | None = None,
                 keep_open: bool = True) -> RawReader | ImageReader | ArrayReader:
    """The reader of one input's science (``which="sci"``) or weight (``"wht"``) image: its
    in-memory array when it has one, else :func:`open_reader` of its file."""
    if img.memory is not None:
        return ArrayReader(getattr(img, which), getattr(img.memory, which))
    return open_reader(getattr(img, which), getattr(img, f"{which}_hdu"), scratch, keep_open)


def image_header(img: InputImage) -> fits.Header:
    """A copy of the header of one input's science image (file or memory)."""
    if img.memory is not None:
        return img.memory.header.copy()
    return read_header(img.sci, img.sci_hdu)


#: Bytes decompressed at a time into the temporary copy of a compressed input.
_INFLATE_BLOCK = 1 << 16


def _open_decompressed(path: str, hdu: int, scratch: str | os.PathLike[str] | None
                       ) -> RawReader | ImageReader:
    directory = os.fspath(scratch) if scratch is not None else tempfile.gettempdir()
    start = time.perf_counter()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".medstack-input-", suffix=".fits", dir=directory)
    except OSError as err:
        raise OutputError(f"{path}: cannot make a temporary file in {directory} to decompress "
                          f"it into ({err.strerror})") from err
    try:
        try:
            with os.fdopen(fd, "wb") as out, _open_compressed(path) as src:
                while True:
                    block = src.read(_INFLATE_BLOCK)
                    if not block:
                        break
                    out.write(block)
                size = out.tell()
        except (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile, ValueError) as err:
            raise InputError(f"{path}: damaged compressed file ({err})") from err
        except OSError as err:
            if err.errno is None:  # a decompressor's complaint, not the disk's
                raise InputError(f"{path}: damaged compressed file ({err})") from err
            raise OutputError(f"{path}: cannot decompress it into {directory} "
                              f"({err.strerror or err})") from err
        try:
            reader = RawReader.open(tmp, hdu) or ImageReader(tmp, hdu)
        except InputError as err:
            raise InputError(f"{path}: {str(err).removeprefix(tmp + ': ')}") from err
        reader.path = path
    finally:
        try:
            os.unlink(tmp)  # the reader holds the file open; nothing is left behind
        except OSError:
            pass
    log.info("%s: compressed; decompressed once into a temporary file in %s (%.1f MiB of "
             "disk, %.2f s)", path, directory, size / 2**20, time.perf_counter() - start)
    return reader


@contextmanager
def _open_compressed(path: str) -> Iterator[Any]:
    """A binary file object of the decompressed bytes of a gzip, bzip2 or zip file (a zip:
    its first member)."""
    with open(path, "rb") as fh:
        head = fh.read(3)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as src:
            yield src
    elif head[:3] == b"BZh":
        with bz2.open(path, "rb") as src:
            yield src
    else:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names:
                raise InputError(f"{path}: empty zip archive")
            with archive.open(names[0]) as src:
                yield src


def weight_stats(reader: RawReader | ImageReader, rows: int) -> WeightStats:
    """One image's mean weight, reading ``rows`` rows at a time, in order."""
    return weight_stats_many([reader], rows)[0]


def weight_stats_many(readers: Sequence[RawReader | ImageReader], rows: int
                      ) -> list[WeightStats]:
    """The mean weights of several images of one shape, read together ``rows`` rows at a time
    (their sequential sums run side by side, see :meth:`WeightMean.add_blocks`)."""
    accs = [WeightMean() for _ in readers]
    ny, nx = readers[0].shape
    # small chunks that stay in cache: the sums are sequential, so no chunk size changes a bit
    rows = max(1, min(rows, _WEIGHT_CHUNK_BYTES // (4 * nx)))
    bufs = np.empty((len(readers), min(rows, ny), nx), dtype=np.float32)
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        blocks = []
        for i, reader in enumerate(readers):
            buf = bufs[i, : y1 - y0]
            if isinstance(reader, RawReader):
                blocks.append(reader.read_into(y0, y1, buf.view(">f4")).view(">f4"))
            else:
                blocks.append(reader.read(y0, y1, out=buf))
        WeightMean.add_blocks(accs, blocks)
    return [WeightStats(acc.mean, acc.nan_count) for acc in accs]


#: Bytes per image read at a time by the weight pass.
_WEIGHT_CHUNK_BYTES = 1 << 19


def _weight_groups(n: int, workers: int) -> list[range]:
    """Images split into groups of at most :data:`~medstack.kernels.fast.WEIGHT_LANES` (whose
    sums one kernel call runs side by side), a multiple of ``workers`` groups if possible (so
    that every thread gets as many images)."""
    from .kernels.fast import WEIGHT_LANES

    groups = -(-n // WEIGHT_LANES)
    groups = min(n, -(-groups // workers) * workers)
    size, extra = divmod(n, groups)
    out, start = [], 0
    for g in range(groups):
        stop = start + size + (1 if g < extra else 0)
        out.append(range(start, stop))
        start = stop
    return out


def thresholds_of(plan: StackPlan, stats: Sequence[WeightStats]) -> np.ndarray | None:
    """Per-image mask thresholds, with a warning for each image that needs one."""
    if not plan.params.median_newmasks:
        return None
    for img, st in zip(plan.images, stats):
        if st.mean is None:
            log.warning("%s: no weight >= 1e-8; the whole image is masked", img.wht)
        if st.nan_count:
            log.warning("%s: %d NaN/inf weights, treated as bad pixels (left out of the mean "
                        "weight)", img.wht, st.nan_count)
    return np.array([st.threshold(plan.params.combine_maskpt) for st in stats], dtype=np.float64)


def warn_no_good_pixel(plan: StackPlan) -> None:
    """Log that no pixel of the result had a good input (every pixel is ``fillval``)."""
    p = plan.params
    why = []
    if p.median_newmasks:
        why.append(f"combine_maskpt = {p.combine_maskpt:g}")
    if p.kind in ("median", "mean") and (p.combine_lthresh is not None
                                         or p.combine_hthresh is not None):
        why.append(f"combine_lthresh = {p.combine_lthresh}, combine_hthresh = "
                   f"{p.combine_hthresh}")
    log.warning("no output pixel has a good input: every pixel is fillval = %g (check the "
                "weight images and %s)", p.fillval, " and ".join(why) or "the inputs")


class SectionBuffers:
    """Read buffers reused from section to section, so that each section does not map and zero
    fresh pages (at most one set per thread that computes at the same time)."""

    def __init__(self) -> None:
        self._free: list[dict[str, np.ndarray]] = []
        self._lock = threading.Lock()

    def take(self) -> dict[str, np.ndarray]:
        with self._lock:
            return self._free.pop() if self._free else {}

    def give(self, buffers: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._free.append(buffers)


def _buffer(buffers: dict[str, np.ndarray], key: str, shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape))
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = np.empty(size, dtype=np.uint32)
    return buf[:size].reshape(shape)


def compute_section(
    plan: StackPlan,
    section: Section,
    sci_readers: Sequence[RawReader | ImageReader],
    wht_readers: Sequence[RawReader | ImageReader] | None,
    thresholds: np.ndarray | None,
    kernel: str = "fast",
    buffers: SectionBuffers | None = None,
    count_masked: bool = False,
) -> tuple[SectionResult, list[int]]:
    """Read one section from every input and combine it.

    Inputs read by a :class:`RawReader` go to the kernel as views of their memory-mapped
    files, as they lie there (big-endian float32): the fast kernel byte-swaps each value as it
    loads it, so the data are read once, straight from the page cache, and never copied; the
    rows are unmapped when the section is done. Other inputs are read into buffers.

    Parameters
    ----------
    buffers : SectionBuffers, optional
        Read buffers to reuse (for inputs that are not memory-mapped). Default is fresh ones.
    count_masked : bool, optional
        Also count, per image, the output-row pixels its weight mask rejects (``result.masked``,
        a list of int; an extra pass over the weights, for ``-v``). Default is False.

    Returns
    -------
    result : SectionResult
        The output rows of the section.
    nonfinite : list of int
        Per image, how many NaN/inf science values the section's output rows hold (they are
        masked).
    """
    r0, r1 = section.read
    n = plan.n_images
    nx = plan.shape[1]
    lo, hi = section.local
    bufs = buffers.take() if buffers is not None else {}

    def planes(readers: Sequence[RawReader | ImageReader], key: str) -> list[np.ndarray]:
        out = []
        for i, reader in enumerate(readers):
            if isinstance(reader, RawReader) and reader.mappable:
                out.append(reader.rows(r0, r1))
            else:
                buf = _buffer(bufs, key, (n, r1 - r0, nx)).view(np.float32)[i]
                out.append(reader.read(r0, r1, out=buf))
        return out

    sci: list[np.ndarray] = []
    wht: list[np.ndarray] | None = None
    try:
        sci = planes(sci_readers, "sci")
        wht = planes(wht_readers, "wht") if wht_readers is not None else None
        result = combine_section(sci, wht, plan.spec, thresholds=thresholds,
                                 scalars=plan.scalars, rows=(lo, hi), kernel=kernel)
        counts = getattr(result, "nonfinite", None)  # the fast kernel counts them on its way
        if counts is None:
            from .kernels.fast import count_nonfinite

            counts = [count_nonfinite(plane[lo:hi]) for plane in sci]
        nonfinite = [int(c) for c in counts]
        if count_masked and thresholds is not None and wht is not None:
            # the mask's own test: bad where not float64(w) >= threshold (NaN weights too)
            result.masked = [int(plane[lo:hi].size - np.count_nonzero(
                plane[lo:hi] >= np.float64(t))) for plane, t in zip(wht, thresholds)]
    finally:
        sci = wht = None  # the mapped rows go with their views
        if buffers is not None:
            buffers.give(bufs)
    return result, nonfinite


def versions() -> str:
    """The versions of what computes the median: ``numpy 2.4.0, astropy 7.1.0, numba 0.62.1,
    Python 3.11.9``."""
    import platform

    import astropy
    import numba

    return (f"numpy {np.__version__}, astropy {astropy.__version__}, numba {numba.__version__}, "
            f"Python {platform.python_version()}")


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
    keys = {
        "median_newmasks": "MEDNEWMK", "combine_maskpt": "MEDMASKP", "combine_type": "MEDCTYPE",
        "combine_nsigma": "MEDNSIG", "combine_nlow": "MEDNLOW", "combine_nhigh": "MEDNHIGH",
        "combine_lthresh": "MEDLTHR", "combine_hthresh": "MEDHTHR", "combine_grow": "MEDGROW",
        "combine_bufsize": "MEDBUFSZ", "fillval": "MEDFILL",
    }
    for spec_ in PARAMETERS:
        key = keys.get(spec_.name)
        if key is None:
            continue
        value = getattr(p, spec_.name)
        if spec_.kind in ("nsigma",) or value is None:
            value = format_value(spec_, value)
        elif spec_.kind == "float" and not np.isfinite(value):
            value = format_value(spec_, value)
        cards.append((key, value, spec_.name))
    history = [f"medstack {__version__} median of {plan.n_images} images",
               f"with {versions()}"]
    history += [f"medstack input {i + 1}: {_ascii(os.path.basename(img.sci))}"
                for i, img in enumerate(plan.images)]
    return cards, history


def compile_notice(plan: StackPlan, kernel: str = "fast") -> None:
    """Say (at :data:`NOTICE` level) that this run will first compile kernels, and for about
    how long: once per machine and numba version, as numba caches them on disk."""
    from .kernels.fast import compile_seconds

    steps = (["weights"] if plan.params.median_newmasks else []) + (
        [plan.spec.kind] if kernel == "fast" else [])
    seconds = compile_seconds(steps)
    if seconds:
        log.log(NOTICE, "compiling kernels once, about %.0f s (later runs reuse them)", seconds)


def check_coverage(plan: StackPlan, no_good: int) -> None:
    """Warn when few (under :data:`FEW_GOOD_FRACTION`) or no output pixels have a good input."""
    total = plan.shape[0] * plan.shape[1]
    good = total - no_good
    if good == 0:
        warn_no_good_pixel(plan)
    elif good < FEW_GOOD_FRACTION * total:
        log.warning("only %d of %d output pixels (%.2g%%) have a good input (check the weight "
                    "images and combine_maskpt = %g)", good, total, 100.0 * good / total,
                    plan.params.combine_maskpt)


def image_table(plan: StackPlan, stats: Sequence[WeightStats] | None = None,
                masked: Sequence[int] | None = None) -> str:
    """The per-image values of a run as a text table: exposure time (s), sky (electrons), read
    noise (electrons), mean weight and the fraction of its pixels the weight mask rejects
    ("-" where not known or not used)."""
    npix = plan.shape[0] * plan.shape[1]

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    rows = [("#", "image", "exptime/s", "sky/e-", "readnoise/e-", "mean weight", "masked")]
    for i, img in enumerate(plan.images):
        mean = stats[i].mean if stats is not None else None
        frac = f"{100.0 * masked[i] / npix:.1f}%" if masked is not None else "-"
        rows.append((str(i + 1), os.path.basename(img.sci), num(img.exptime, ".6g"),
                     num(img.sky, ".6g"), num(img.readnoise, ".4g"),
                     "none >= 1e-8" if stats is not None and mean is None else num(mean, ".6g"),
                     frac))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(cell.ljust(w) if k == 1 else cell.rjust(w)
                                     for k, (cell, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)


@dataclass(repr=False)
class MedianResult:
    """What :func:`run` produced.

    Attributes
    ----------
    data : ndarray or None
        The median image (float32), when asked for.
    header : astropy.io.fits.Header
        The output header: the first input's, plus provenance.
    path : Path or None
        The median file written, if any.
    ngood, minchosen : ndarray or None
        The count map (uint16) and, for minmed, the minimum-chosen map (uint8), when asked for.
    map_paths : list of Path
        Map files written (``--save-maps``).
    seconds : float
        Wall time of the run.
    plan : StackPlan or None
        The plan that was run (inputs, parameters, sections).
    no_good : int
        Output pixels with no good input (set to ``fillval``).
    quicklook : medstack.quicklook.QuickLook or None
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


_MAP_UNITS = {
    "ngood": ("number of good inputs per pixel", "count"),
    "minchosen": ("1 where minmed chose the minimum", ""),
}


def _map_header(header: fits.Header, key: str) -> fits.Header:
    """The median's header (same WCS and provenance) with BUNIT/MEDMAP describing a map."""
    if key not in _MAP_UNITS:
        return header
    what, unit = _MAP_UNITS[key]
    out = header.copy()
    out["BUNIT"] = (unit, "map unit")
    out["MEDMAP"] = (key, what)
    return out


class OutputSinks:
    """Where section results go: files written section by section and/or in-memory arrays
    (used by the local engine and by :mod:`medstack.dask_backend`)."""

    def __init__(self, plan: StackPlan, header: fits.Header, path: Path | None,
                 keep_data: bool, maps: bool, keep_maps: bool = False,
                 quicklook: bool = False) -> None:
        self.writers: dict[str, FitsImageWriter] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.no_good = 0  # output pixels with no good input, so far
        self.quicklook = None
        if quicklook:  # binned as the sections come: no full-size copy for the PNG
            from .quicklook import QuickLook

            self.quicklook = QuickLook(plan.shape, counts=True)
        shape = plan.shape
        minmed = plan.spec.kind == "minmed"
        map_types: dict[str, type] = {"ngood": np.uint16}
        if minmed:
            map_types["minchosen"] = np.uint8
        files: dict[str, type] = {"median": np.float32, **(map_types if maps else {})}
        arrays: dict[str, type] = {"median": np.float32,
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
        if result.ngood is not None:
            self.no_good += int(result.ngood.size - np.count_nonzero(result.ngood))
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


def run(
    plan: StackPlan,
    *,
    path: str | os.PathLike[str] | None = None,
    keep_data: bool = True,
    save_maps: bool = False,
    keep_maps: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    kernel: str = "fast",
    quicklook: bool = False,
    before_commit: Callable[[MedianResult], None] | None = None,
) -> MedianResult:
    """Run a prepared plan on local threads.

    Parameters
    ----------
    plan : StackPlan
        From :func:`prepare`.
    path : path-like, optional
        Median file to write (temporary name, then renamed). Default is no file.
    keep_data : bool
        Return the image (and maps) as arrays. Default is True.
    save_maps : bool
        Also produce the count map and, for minmed, the minimum-chosen map (files beside
        ``path``, and arrays when ``keep_data``).
    keep_maps : bool
        Return the maps as arrays (with ``keep_data``) without writing map files. Default is
        False.
    workers : int, optional
        Threads. Default is all cores.
    progress : callable, optional
        ``progress(done, total)`` after each section, from the calling thread.
    kernel : {"fast", "reference"}
        Combine implementation. Default is "fast".
    quicklook : bool
        Also build the quick-look of the result as the sections come (``result.quicklook``;
        a few tens of MiB whatever the image size). Default is False.
    before_commit : callable, optional
        ``before_commit(result)`` once every section is done, before any file is renamed into
        place (``result`` holds the arrays and header, not yet the paths): the place to make
        other products (a quick-look PNG), so that all of them are committed together, last.
        If it raises, nothing of the run is committed. Default is none.
    """
    start = time.perf_counter()
    if workers is not None and not _is_int(workers):
        raise ParameterError(f"workers: expected a whole number >= 1, got {workers!r}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ParameterError(f"workers: must be >= 1, got {workers}")
    out_path = None
    inputs = [name for img in plan.images for name in (img.sci, img.wht)]
    if path is not None:
        out_path = check_output_path(path, inputs)
    ny, nx = plan.shape
    in_flight = workers + 1
    log.info(
        "%d inputs of %dx%d; %s; sections of %d rows (%d sections); budget %.3g MiB per input; "
        "%d worker(s); peak section memory about %.0f MiB",
        plan.n_images, ny, nx, plan.params.combine_type, plan.section_rows, len(plan.sections),
        plan.params.budget_bytes / 2**20, workers,
        peak_bytes(plan.n_images, plan.section_rows, nx, in_flight) / 2**20,
    )
    header_cards, history = provenance(plan)
    header = output_header(image_header(plan.images[0]), header_cards, history,
                           source=plan.images[0].sci)
    compile_notice(plan, kernel)

    n_files = plan.n_images * (2 if plan.needs_weights else 1)
    keep_open = ensure_open_files(descriptors_needed(n_files, in_flight))
    if not keep_open:
        log.warning("%d input files need more open files than this process may hold "
                    "(ulimit -n); reading each file only while it is read (slower, same result)",
                    n_files)
    scratch = out_path.parent if out_path is not None else None  # for compressed inputs
    sci_readers: list[RawReader | ImageReader | ArrayReader] = []
    wht_readers: list[RawReader | ImageReader | ArrayReader] | None = (
        [] if plan.needs_weights else None)
    try:
        for img in plan.images:
            sci_readers.append(image_reader(img, "sci", scratch, keep_open))
            if wht_readers is not None:
                wht_readers.append(image_reader(img, "wht", scratch, keep_open))
    except BaseException:
        for reader in sci_readers + (wht_readers or []):
            reader.close()
        raise
    if log.isEnabledFor(logging.DEBUG):
        for reader in sci_readers + (wht_readers or []):
            how = ("memory-mapped, as it lies" if isinstance(reader, RawReader) else
                   "from memory" if isinstance(reader, ArrayReader) else "through astropy")
            log.debug("%s: read %s", reader.path, how)
        for section in plan.sections:
            log.debug("section: reads rows %d-%d, writes rows %d-%d", section.read[0],
                      section.read[1] - 1, section.out[0], section.out[1] - 1)
    count_masked = log.isEnabledFor(logging.INFO) and plan.params.median_newmasks
    stats: list[WeightStats] | None = None
    masked = np.zeros(plan.n_images, dtype=np.int64)
    buffers = SectionBuffers()
    for reader in sci_readers + (wht_readers or []):
        if reader.integer:
            log.warning("%s: integer data converted to float32", reader.path)
    sinks = None
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medstack") as pool:
            thresholds = None
            if plan.params.median_newmasks and wht_readers is not None:
                t_weights = time.perf_counter()
                groups = _weight_groups(len(wht_readers), workers)
                stats = [st for part in pool.map(
                    lambda g: weight_stats_many([wht_readers[i] for i in g], plan.section_rows),
                    groups) for st in part]
                thresholds = thresholds_of(plan, stats)
                log.debug("mean weights of %d images: %.2f s", plan.n_images,
                          time.perf_counter() - t_weights)
            t_combine = time.perf_counter()
            sinks = OutputSinks(plan, header, out_path, keep_data, save_maps, keep_maps,
                                quicklook)
            nonfinite = np.zeros(plan.n_images, dtype=np.int64)
            pending: set[Future[Any]] = set()
            futures: dict[Future[Any], Section] = {}
            todo = iter(plan.sections)
            done = 0
            total = len(plan.sections)
            exhausted = False
            while True:
                while not exhausted and len(pending) < in_flight:
                    section = next(todo, None)
                    if section is None:
                        exhausted = True
                        break
                    fut = pool.submit(compute_section, plan, section, sci_readers, wht_readers,
                                      thresholds, kernel, buffers, count_masked)
                    futures[fut] = section
                    pending.add(fut)
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    result, bad_counts = fut.result()
                    sinks.put(futures.pop(fut), result)
                    nonfinite += bad_counts
                    if count_masked:
                        masked += getattr(result, "masked", 0)
                    done += 1
                    if progress is not None:
                        progress(done, total)
            log.debug("%d sections combined: %.2f s", total, time.perf_counter() - t_combine)
            for img, count in zip(plan.images, nonfinite):
                if count:
                    log.warning("%s: %d NaN/inf science pixels, treated as masked", img.sci, count)
            if before_commit is not None:
                before_commit(pending_result(sinks, header, plan))
            t_commit = time.perf_counter()
            written = sinks.commit() if out_path is not None else []
            if written:
                log.debug("files synced and renamed into place: %.2f s",
                          time.perf_counter() - t_commit)
    except BaseException:
        if sinks is not None:
            sinks.abort()
        raise
    finally:
        for reader in sci_readers + (wht_readers or []):
            reader.close()
    arrays = sinks.arrays
    median_path = written[-1] if written else None
    if log.isEnabledFor(logging.INFO):
        log.info("per-image values:\n%s",
                 image_table(plan, stats, masked if count_masked else None))
    check_coverage(plan, sinks.no_good)
    return MedianResult(
        data=arrays.get("median"),
        header=header,
        path=median_path,
        ngood=arrays.get("ngood"),
        minchosen=arrays.get("minchosen"),
        map_paths=written[:-1],
        seconds=time.perf_counter() - start,
        plan=plan,
        no_good=sinks.no_good,
        quicklook=sinks.quicklook,
    )


def _is_int(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_api_arguments(input: Any, output: Any, workers: Any, progress: Any,
                         kernel: Any) -> None:
    """ParameterError naming the argument of :func:`median_image` that has a wrong type or
    value (before any file is opened)."""
    from .kernels import KERNELS

    def is_name(value: Any) -> bool:
        return isinstance(value, (str, os.PathLike))

    if not is_name(input) and not (isinstance(input, (list, tuple))
                                   and all(is_name(v) for v in input)):
        raise ParameterError(
            f"input: expected a file name, pattern or @list (str or path) or a list of them, "
            f"got {type(input).__name__} {input!r}"[:200]
        )
    if output is not None and not is_name(output):
        raise ParameterError(f"output: expected a rootname (str or path) or None, got "
                             f"{type(output).__name__} {output!r}"[:200])
    if workers is not None and not _is_int(workers):
        raise ParameterError(f"workers: expected a whole number >= 1 or None, got "
                             f"{type(workers).__name__} {workers!r}"[:200])
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress: expected a callable progress(done, total) or None, got "
                             f"{type(progress).__name__} {progress!r}"[:200])
    if kernel not in KERNELS:
        raise ParameterError(f"kernel: unknown value {kernel!r}; choose one of: "
                             f"{', '.join(KERNELS)}")


def pending_result(sinks: OutputSinks, header: fits.Header, plan: StackPlan) -> MedianResult:
    """What a run has made before its files are committed (no paths yet)."""
    arrays = sinks.arrays
    return MedianResult(data=arrays.get("median"), header=header, ngood=arrays.get("ngood"),
                        minchosen=arrays.get("minchosen"), plan=plan, no_good=sinks.no_good,
                        quicklook=sinks.quicklook)


def median_image(
    input: str | Sequence[str],
    output: str | os.PathLike[str] | None = None,
    *,
    weights: Sequence[str] | None = None,
    exptime: Sequence[float | None] | None = None,
    sky: Sequence[float | None] | None = None,
    readnoise: Sequence[float | None] | None = None,
    save_maps: bool = False,
    keep_data: bool = True,
    keep_maps: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    kernel: str = "fast",
    scheduler: str | None = None,
    client: Any = None,
    quicklook: bool = False,
    before_commit: Callable[[MedianResult], None] | None = None,
    connect_timeout: float = 10.0,
    **params: Any,
) -> MedianResult:
    """Make the median image of a stack of singly drizzled images.

    Parameters
    ----------
    input : str or sequence of str
        Science files (``*_single_sci.fits``), exposure names (``*_flt.fits`` ...), globs or
        ``@list`` files. Each weight file is the science name with ``_single_sci`` →
        ``_single_wht``.
    output : str or path-like, optional
        Output rootname: writes ``<output>_med.fits``. Default is no file.
    weights : sequence of str, optional
        Explicit weight file per input.
    exptime, sky, readnoise : sequence of float, optional
        Per-image exposure time (s), sky (electrons) and read noise (electrons); win over the
        headers.
    save_maps : bool
        Also write/return the count-of-good-inputs map and, for minmed, the minimum-chosen map.
    keep_data : bool
        Return the arrays (default). False keeps memory bounded for large outputs.
    keep_maps : bool
        Return the maps as arrays (with ``keep_data``) without writing map files. Default is
        False.
    workers : int, optional
        Threads; with ``scheduler="dask-local"``, worker processes. Default is all cores.
    progress : callable, optional
        ``progress(done, total)`` after each section.
    kernel : {"fast", "reference"}
        Combine implementation. Default is "fast".
    scheduler : str, optional
        Where to compute: ``"threads"`` (this machine's threads), ``"dask-local"`` (a Dask
        LocalCluster of ``workers`` processes, started and closed by the call) or the address
        of a running Dask scheduler (``"tcp://host:port"``); see :mod:`medstack.dask_backend`.
        Default is "threads" unless ``client`` is given. Same result, bit for bit.
    client : distributed.Client, optional
        A connected Dask client to compute on (left open). Default is none.
    quicklook : bool
        Also build the quick-look PNG's content as the sections come (``result.quicklook``,
        see :class:`medstack.quicklook.QuickLook`). Default is False.
    before_commit : callable, optional
        ``before_commit(result)`` when the image is made, before its files are renamed into
        place (see :func:`run`). Default is none.
    connect_timeout : float
        Seconds to wait for a Dask scheduler at an address (``scheduler="tcp://..."``) to
        answer before giving up with an error. Default is 10.
    **params
        Median-step parameters by drizzlepac name (``combine_type="median"`` ...), see
        :data:`medstack.params.PARAMETERS`.

    Returns
    -------
    MedianResult
        ``.data`` and ``.header`` are the median image and its header.

    Raises
    ------
    MedstackError
        ``InputError``, ``ParameterError`` or ``OutputError``, one line naming the culprit.
    """
    _check_api_arguments(input, output, workers, progress, kernel)
    p = validate(params)
    use_dask = client is not None or scheduler not in (None, "threads")
    if use_dask:  # imported here: Dask stays optional
        from . import dask_backend

        dask_backend.check_scheduler(scheduler, client)
    # per-image values by the one rule of every door (.cfg, --table, createMedian)
    exptime, sky, readnoise = (per_image_values(name, values) for name, values in
                               (("exptime", exptime), ("sky", sky), ("readnoise", readnoise)))
    images = open_inputs(input, weights=weights, exptime=exptime, sky=sky, readnoise=readnoise)
    plan = prepare(images, p)
    path = output_name(output) if output is not None else None
    if use_dask:
        return dask_backend.run(plan, path=path, keep_data=keep_data, save_maps=save_maps,
                                keep_maps=keep_maps, workers=workers, progress=progress,
                                kernel=kernel, scheduler=scheduler, client=client,
                                quicklook=quicklook, before_commit=before_commit,
                                connect_timeout=connect_timeout)
    return run(plan, path=path, keep_data=keep_data, save_maps=save_maps, keep_maps=keep_maps,
               workers=workers, progress=progress, kernel=kernel, quicklook=quicklook,
               before_commit=before_commit)
