"""Readers of the inputs' pixels, one small protocol for every kind of input.

Every reader has ``path``, ``shape``, ``integer``, ``in_memory``, ``read(y0, y1, out=None)``
(rows ``[y0, y1)`` as native float32) and ``close()``:

- :class:`RawReader`: uncompressed, unscaled float32 files. Each section's rows are mapped as
  they lie in the file (:meth:`RawReader.rows`, big-endian, no copy: the fast kernels swap as
  they load); the data offset is found once, from the header blocks, when it is opened.
- :class:`ImageReader`: everything else astropy reads (tile-compressed HDUs section by section,
  integer or scaled data).
- :class:`ArrayReader`: images that live in memory (AstroDrizzle's ``in_memory=True``).

:func:`image_reader` picks the reader of one input; gzip/bzip2/zip files are first streamed
into a temporary file and read from there.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import mmap
import os
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, OutputError
from .headerscan import header_cards
from .inputs import (
    InputImage,
    _fits_warnings,
    compressed_magic,
    is_compressed,
    read_header,
)

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = [
    "ArrayReader",
    "ImageReader",
    "RawReader",
    "Reader",
    "image_header",
    "image_header_cards",
    "image_reader",
    "open_reader",
]

log = logging.getLogger(__name__)

class RawReader:
    """Rows of an uncompressed, unscaled float32 FITS image as they lie in the file: each call
    of :meth:`rows` maps just those rows, read-only, and hands them out as a big-endian float32
    view (no copy, no byte swap: the fast kernels swap as they load). The mapping goes when the
    view does, so the resident size holds only the rows in use. Opens the file once; safe from
    several threads.

    Use :func:`open_reader`, which falls back to :class:`~medstack.io.readers.ImageReader` for
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
        self._probe = bytearray(1)  # where :meth:`_cached` reads its byte

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as err:
            raise InputError(f"{self.path}: cannot open ({err.strerror})") from err

    @classmethod
    def open(cls, path: str, hdu: int, keep_open: bool = True,
             known: tuple[int, tuple[int, int]] | None = None) -> RawReader | None:
        """A reader for ``path``'s HDU ``hdu``, or None if its data cannot be mapped raw
        (``keep_open=False``: see :attr:`mappable`). ``known``: the ``(offset, shape)`` found
        when the input was opened and checked (then the header is not read again)."""
        if known is not None:
            try:
                return cls(path, hdu, known[1], known[0], keep_open)
            except InputError:
                return None  # ImageReader reports it
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
        ``(y1 - y0) × nx`` 4-byte items), as they lie in the file (big-endian float32), for a
        reader that does not map its file (:attr:`mappable` False).

        Raises
        ------
        InputError
            If the file is shorter than its header says or cannot be read.
        """
        view = out.data.cast("B")
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
        a later read of a cold file finds them in the page cache; nothing where unsupported.

        Rows already in the page cache are left alone: the advice would walk every page of
        them for nothing (about 0.3 ms a section of a 10 × 4096² stack). Whether they are is
        probed by reading their first and last bytes without waiting (``RWF_NOWAIT``)."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is None or self._fd < 0 or y1 <= y0:
            return
        start, size = self._offset + y0 * self._row_bytes, (y1 - y0) * self._row_bytes
        if self._cached(start) and self._cached(start + size - 1):
            return
        try:
            advise(self._fd, start, size, os.POSIX_FADV_WILLNEED)
        except OSError:  # pragma: no cover - advice only
            pass

    def _cached(self, pos: int) -> bool:
        """Whether the byte at ``pos`` is in the page cache (False where that cannot be told)."""
        nowait = getattr(os, "RWF_NOWAIT", None)
        if nowait is None:
            return False
        try:
            return os.preadv(self._fd, [self._probe], pos, nowait) > 0
        except OSError:  # EAGAIN: not cached; EOPNOTSUPP: cannot tell
            return False

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
                keep_open: bool = True, known: tuple[int, tuple[int, int]] | None = None
                ) -> RawReader | ImageReader:
    """The fastest reader for one input image: :class:`RawReader` where the data are plain
    float32 (with ``keep_open=False``, one that holds no open file), else
    :class:`~medstack.io.readers.ImageReader`.

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
    return RawReader.open(path, hdu, keep_open, known) or ImageReader(path, hdu)


def image_reader(img: InputImage, which: str, scratch: str | os.PathLike[str] | None = None,
                 keep_open: bool = True) -> RawReader | ImageReader | ArrayReader:
    """The reader of one input's science (``which="sci"``) or weight (``"wht"``) image: its
    in-memory array when it has one, else :func:`open_reader` of its file."""
    if img.memory is not None:
        return ArrayReader(getattr(img, which), getattr(img.memory, which))
    offset = getattr(img, f"{which}_offset")
    known = (offset, img.shape) if offset is not None else None  # found when it was opened
    return open_reader(getattr(img, which), getattr(img, f"{which}_hdu"), scratch, keep_open,
                       known)


def image_header(img: InputImage) -> fits.Header:
    """A copy of the header of one input's science image (file or memory)."""
    if img.memory is not None:
        return img.memory.header.copy()
    return read_header(img.sci, img.sci_hdu)


def image_header_cards(img: InputImage) -> list[str] | None:
    """The raw cards (80 characters each, no ``END``) of one input's science header, where it
    is a plain primary header of a file (:func:`~medstack.io.headerscan.header_cards`); None
    for anything else (an image in memory, extension 1, a compressed file...), or a file that
    cannot be read now: :func:`image_header` says what is wrong with it."""
    if img.memory is not None or img.sci_hdu != 0:
        return None
    try:
        return header_cards(img.sci)
    except OSError:
        return None


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



class ImageReader:
    """Reads row ranges of one image HDU as native-endian float32, file opened once.

    Uncompressed floating-point images without scaling are memory-mapped directly at their
    data offset, and their pages are dropped from the process after each read (they stay in
    the OS page cache), so the resident size does not grow with the image. Tile-compressed
    images (an empty primary HDU and a ``CompImageHDU`` in extension 1, as drizzlepac writes
    with ``driz_sep_compress``) are decompressed tile by tile, only the tiles of the rows read
    (astropy's ``CompImageHDU.section``). Anything else (integer or scaled data) is read
    through astropy once and converted to float32 (``in_memory`` is then True).

    Parameters
    ----------
    path : str
        FITS file.
    hdu : int
        HDU index.
    """

    def __init__(self, path: str, hdu: int) -> None:
        from astropy.io import fits

        self.path = path
        self.hdu = hdu
        self._array: np.ndarray
        self._tiles: fits.HDUList | None = None
        self._lock = threading.Lock()
        try:
            with _fits_warnings(path), fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                header = hdul[hdu].header
                tiled = isinstance(hdul[hdu], fits.CompImageHDU)
                info = hdul.fileinfo(hdu)
                bitpix = header["BITPIX"]
                ny, nx = int(header["NAXIS2"]), int(header["NAXIS1"])
                scaled = header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0
                compressed = is_compressed(path) or tiled or hdul[hdu].header.get("ZIMAGE", False)
            self.in_memory = not (bitpix in (-32, -64) and not scaled and not compressed)
            if tiled and not is_compressed(path):
                # tile-compressed (astropy hides ZIMAGE from the image header): decompressed
                # tile row by tile row as sections are read, never whole
                self.in_memory = False
                self._tiles = fits.open(path, memmap=False, lazy_load_hdus=True)
                self._array = self._tiles[hdu].section  # type: ignore[assignment]
            elif not self.in_memory:
                dtype = ">f4" if bitpix == -32 else ">f8"
                self._array = np.memmap(
                    path, dtype=dtype, mode="r", offset=info["datLoc"], shape=(ny, nx)
                )
            else:
                with _fits_warnings(path), fits.open(path, memmap=False) as hdul:
                    data = hdul[hdu].data
                    if data is None:
                        raise InputError(f"{path}: no image data in HDU {hdu}")
                    self._array = np.asarray(data, dtype=np.float32)
        except InputError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(f"{path}: cannot read image data ({err})") from err
        self.shape = (ny, nx)
        self.integer = bitpix > 0

    def read(self, y0: int, y1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``[y0, y1)`` as native float32, into ``out`` when given.

        Raises
        ------
        InputError
            If the file is truncated or cannot be read.
        """
        if out is None:
            out = np.empty((y1 - y0, self.shape[1]), dtype=np.float32)
        try:
            if self._tiles is not None:
                with self._lock, _fits_warnings(self.path):  # one file handle: one at a time
                    out[...] = self._array[y0:y1]
            else:
                out[...] = self._array[y0:y1]
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise InputError(f"{self.path}: cannot read rows {y0}-{y1} ({err})") from err
        if not self.in_memory and self._tiles is None:
            self._drop_pages()
        return out

    def _drop_pages(self) -> None:
        """Unmap every page of the file from this process (MADV_DONTNEED over the whole
        mapping: the kernel maps pages around those touched, large page-cache folios on Linux
        6, so dropping just the rows read would leave some behind). Rows read later, by this
        thread or another, are simply mapped again from the page cache."""
        mm = getattr(self._array, "_mmap", None)
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if mm is None or advice is None:  # pragma: no cover - not Linux/BSD/macOS
            return
        try:
            mm.madvise(advice)
        except (OSError, ValueError):  # pragma: no cover - closed meanwhile
            pass

    def close(self) -> None:
        """Release the mapping (or the tile-compressed file)."""
        if self._tiles is not None:
            self._tiles.close()
            self._tiles = None
        array = self._array
        self._array = np.empty((0, 0), dtype=np.float32)
        mm = getattr(array, "_mmap", None)
        del array
        if mm is not None:
            try:
                mm.close()
            except (BufferError, ValueError):
                pass


class ArrayReader:
    """Rows of an image held in memory, with the reader interface of :class:`ImageReader`.

    Parameters
    ----------
    name : str
        The name the image goes by, for messages.
    array : ndarray
        The ``(ny, nx)`` image, of any numeric dtype and byte order.
    """

    in_memory = True

    def __init__(self, name: str, array: np.ndarray) -> None:
        self.path = name
        self.hdu = 0
        self._array = array
        if array.ndim != 2:
            raise InputError(f"{name}: in-memory image is {array.ndim}-D, expected 2-D")
        self.shape = (int(array.shape[0]), int(array.shape[1]))
        self.integer = array.dtype.kind in "iu"

    def read(self, y0: int, y1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``[y0, y1)`` as native float32, into ``out`` when given."""
        if out is None:
            out = np.empty((y1 - y0, self.shape[1]), dtype=np.float32)
        out[...] = self._array[y0:y1]
        return out

    def close(self) -> None:
        """Nothing to release: the array belongs to its owner."""


#: Any reader of this module.
Reader = RawReader | ImageReader | ArrayReader
