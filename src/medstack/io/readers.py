"""Readers of the inputs' pixels: ``path``, ``shape``, ``integer``, ``in_memory``,
``read(y0, y1, out=None)`` (rows ``[y0, y1)`` as native float32) and ``close()``.

:class:`RawReader` maps plain float32 files, :class:`ImageReader` reads anything else astropy
reads, :class:`ArrayReader` images in memory; :func:`image_reader` picks one per input.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
import time
from contextlib import suppress
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from .decompress import decompressed_copy
from .headerscan import scan_header, verify_error
from .inputs import InputImage, _fits_warnings, _raw_offset, is_compressed

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = ["ArrayReader", "ImageReader", "RawReader", "Reader", "image_reader", "open_reader"]

log = logging.getLogger(__name__)


class RawReader:
    """Rows of an uncompressed, unscaled float32 FITS image as they lie in the file: each call
    of :meth:`rows` maps just those rows, read-only, as a big-endian view (the fast kernels
    swap as they load). Safe from several threads; made by :func:`open_reader`.

    Notes
    -----
    One mapping per call, not one of the whole file: the kernel maps more than was touched
    (fault-around, large page-cache folios), which would count in the resident size until
    the file is closed; a mapping of the section's rows bounds that.
    """

    integer = False
    in_memory = False

    def __init__(self, path: str, shape: tuple[int, int], offset: int,
                 keep_open: bool = True) -> None:
        self.path = path
        self.shape = shape
        self._offset = offset
        self._row_bytes = shape[1] * 4
        #: Whether the file stays open (rows mapped); else each read opens it, so that
        #: thousands of inputs need no file descriptor each.
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
        """A reader for ``path``'s HDU ``hdu``, or None if its data do not lie raw. ``known``:
        the ``(offset, shape)`` found when the input was checked (the header is not read again)."""
        try:
            if known is None:
                scan = scan_header(path, hdu=hdu)
                if scan is None or min(scan.shape) <= 0:
                    return None
                offset = _raw_offset(path, scan.header, scan.shape, scan.data_offset)
                if offset is None:
                    return None
                known = (offset, scan.shape)
            return cls(path, known[1], known[0], keep_open)
        except (InputError, OSError, KeyError, ValueError, verify_error()):
            return None  # ImageReader reports it

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``[y0, y1)``: a read-only big-endian view of a mapping of just those rows.

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

    def read(self, y0: int, y1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``[y0, y1)`` as native float32, into ``out`` when given.

        Raises
        ------
        InputError
            If the file is shorter than its header says or cannot be read.
        """
        if out is None:
            out = np.empty((y1 - y0, self.shape[1]), dtype=np.float32)
        if self.mappable:
            try:
                out[...] = self.rows(y0, y1)
            except (OSError, ValueError) as err:
                raise InputError(f"{self.path}: cannot read rows {y0}-{y1} ({err})") from err
            return out
        if self._fd == -1:
            raise InputError(f"{self.path}: reader closed")
        view = out.view(np.uint32).data.cast("B")  # the rows as they lie, swapped below
        pos, want, done = self._offset + y0 * self._row_bytes, (y1 - y0) * self._row_bytes, 0
        fd = self._open()
        try:
            while done < want:
                got = os.preadv(fd, [view[done:want]], pos + done)
                if got <= 0:
                    raise InputError(f"{self.path}: cannot read rows {y0}-{y1} (file truncated)")
                done += got
        except OSError as err:
            raise InputError(f"{self.path}: cannot read rows {y0}-{y1} ({err.strerror})") from err
        finally:
            os.close(fd)
        if np.little_endian:
            out.view(np.uint32).byteswap(inplace=True)
        return out

    def prefetch(self, y0: int, y1: int) -> None:
        """Ask the kernel to start reading rows ``[y0, y1)`` (``POSIX_FADV_WILLNEED``) unless
        their first and last bytes are already cached (``RWF_NOWAIT`` probe): the advice would
        walk every cached page for nothing."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is None or self._fd < 0 or y1 <= y0:
            return
        start, size = self._offset + y0 * self._row_bytes, (y1 - y0) * self._row_bytes
        if self._cached(start) and self._cached(start + size - 1):
            return
        with suppress(OSError):  # advice only
            advise(self._fd, start, size, os.POSIX_FADV_WILLNEED)

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


def open_reader(path: str, hdu: int, scratch: str | os.PathLike[str] | None = None,
                keep_open: bool = True, known: tuple[int, tuple[int, int]] | None = None
                ) -> RawReader | ImageReader:
    """The fastest reader for one input image: :class:`RawReader` where the data are plain
    float32, else :class:`ImageReader`. A gzip/bzip2/zip file is first decompressed into a
    temporary file in ``scratch`` (default: the system's temporary directory), unlinked at once
    (the reader holds it open).

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
    if not compressed:
        return RawReader.open(path, hdu, keep_open, known) or ImageReader(path, hdu)
    start = time.perf_counter()
    tmp, size = decompressed_copy(path, scratch)
    try:
        try:
            reader = RawReader.open(tmp, hdu) or ImageReader(tmp, hdu)
        except InputError as err:
            raise InputError(f"{path}: {str(err).removeprefix(tmp + ': ')}") from err
        reader.path = path
    finally:
        with suppress(OSError):  # the reader holds the file open; nothing is left behind
            os.unlink(tmp)
    log.info("%s: compressed; decompressed once into a temporary file in %s (%.1f MiB of "
             "disk, %.2f s)", path, os.path.dirname(tmp), size / 2**20,
             time.perf_counter() - start)
    return reader


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


class ImageReader:
    """Reads row ranges of one image HDU as native-endian float32, file opened once.

    Unscaled float images are memory-mapped, their pages dropped from the process after each
    read; tile-compressed ones (drizzlepac's ``driz_sep_compress``) are decompressed only in
    the tiles of the rows read; anything else is read whole once (``in_memory`` True).

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
        """Unmap every page of the file (MADV_DONTNEED over the whole mapping: the kernel maps
        pages around those touched, so dropping just the rows read would leave some)."""
        mm = getattr(self._array, "_mmap", None)
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if mm is None or advice is None:  # pragma: no cover - not Linux/BSD/macOS
            return
        with suppress(OSError, ValueError):  # closed meanwhile
            mm.madvise(advice)

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
            with suppress(BufferError, ValueError):
                mm.close()


class ArrayReader(ImageReader):
    """Rows of an image held in memory (``array``, any numeric dtype), named ``name``."""

    def __init__(self, name: str, array: np.ndarray) -> None:
        if array.ndim != 2:
            raise InputError(f"{name}: in-memory image is {array.ndim}-D, expected 2-D")
        self.path, self._array, self._tiles, self.in_memory = name, array, None, True
        self.shape = (int(array.shape[0]), int(array.shape[1]))
        self.integer = array.dtype.kind in "iu"

    def close(self) -> None:
        """Nothing to release: the array (maybe a mapping) belongs to its owner."""


#: Any reader of this module.
Reader = RawReader | ImageReader | ArrayReader
