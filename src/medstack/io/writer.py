"""Writing FITS images section by section, atomically.

:class:`FitsImageWriter` writes a single-HDU FITS image under a temporary name in the
destination directory, accepts row blocks in any order (``os.pwrite``; safe from several
threads), and renames the file over the final name only on :meth:`~FitsImageWriter.commit`
(or, with a run's other products, :meth:`medstack.io.outputs.Products.commit`). On any
failure the temporary file is removed and an earlier file of the final name is untouched.

Notes
-----
drizzlepac deletes the old ``_med.fits`` before it computes the new one, and holds the whole
output in memory. medstack never holds a full-size output array when writing to a file.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from ..errors import OutputError
from .outputs import (
    _hold,
    _release,
    atomic_file,
    check_distinct_outputs,
    check_output_path,
    map_name,
    same_file_key,
    temp_prefix,
    umask,
)
from .rawheader import STRUCTURAL, NotPlain, RawHeader, format_card

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = ["FitsImageWriter", "RowTarget", "atomic_file", "check_distinct_outputs", "check_output_path",
           "map_name", "output_header", "same_file_key", "temp_prefix"]

BLOCK = 2880
log = logging.getLogger(__name__)

_STRUCTURAL = STRUCTURAL
# FITS layout per output dtype: (BITPIX, BZERO, on-disk dtype)
_LAYOUT = {
    np.dtype(np.float32): (-32, None, ">f4"),
    np.dtype(np.uint16): (16, 32768, ">i2"),
    np.dtype(np.uint8): (8, None, "u1"),
}


#: ``sync_file_range`` flag: start write-back of the dirty pages of a range, without waiting.
_SYNC_FILE_RANGE_WRITE = 2

#: :class:`FitsImageWriter` starts the write-back of what it has written each time this many
#: more bytes have been written (one call per few MiB costs far less than one per block of rows).
WRITEBACK_BYTES = 4 << 20


def _libc_sync_file_range() -> object | None:
    """Linux's ``sync_file_range`` from libc through ctypes (which releases the GIL during the
    call), or None where there is none."""
    if not sys.platform.startswith("linux"):  # pragma: no cover - not Linux
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - no such libc function
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_sync_file_range = _libc_sync_file_range()


def start_writeback(fd: int, offset: int, nbytes: int) -> bool:
    """Ask the kernel to start writing ``nbytes`` at ``offset`` of ``fd`` to disk now, without
    waiting (``sync_file_range(..., SYNC_FILE_RANGE_WRITE)``), so that the ``fsync`` before the
    final rename finds little left to do. Not a durability guarantee: that is the ``fsync``.

    Returns False (and does nothing) where that is not available; never raises.
    """
    func = _sync_file_range
    if func is None or nbytes <= 0:
        return False
    try:
        return func(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE) == 0
    except (OSError, ctypes.ArgumentError):  # pragma: no cover - defensive
        return False


def output_header(template: fits.Header | None, extra: list[tuple[str, object, str]] = (),
                  history: list[str] = (), source: str | None = None) -> fits.Header:
    """A copy of ``template`` without its structural keywords, plus ``extra`` cards and
    ``history`` lines.

    A card of ``template`` that is not FITS standard is copied as astropy fixes it, with one
    warning line naming ``source`` (the file the template came from) and the card; one that
    cannot be fixed is left out, with a warning. astropy's own warnings about it are not shown.

    :func:`medstack.io.rawheader.raw_output_header` builds the same header from a plain
    template's raw cards without astropy.
    """
    from astropy.io import fits

    header = fits.Header()
    where = source or "input header"
    if template is not None:
        for card in template.cards:
            if card.keyword in _STRUCTURAL:
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    image = card.image  # verified (and fixed) now, not when written
                except (ValueError, fits.VerifyError) as err:
                    log.warning("%s: header card %s is not FITS standard and cannot be fixed; "
                                "left out of the output header (%s)", where, card.keyword,
                                " ".join(str(err).split()))
                    continue
            if any(issubclass(w.category, fits.verify.VerifyWarning) for w in caught):
                log.warning("%s: header card %s is not FITS standard; copied as fixed: %s",
                            where, card.keyword, " ".join(image.split()))
            header.append(card, end=True)
    for key, value, comment in extra:
        header[key] = (value, comment)
    for line in history:
        header.add_history(line)
    return header


class FitsImageWriter:
    """A 2-D FITS image written row block by row block under a temporary name.

    Parameters
    ----------
    path : path-like
        Final file name.
    shape : (int, int)
        ``(ny, nx)``.
    dtype : numpy dtype
        float32, uint16 (stored as BITPIX 16 with BZERO 32768) or uint8.
    header : astropy.io.fits.Header or RawHeader, optional
        Cards to write after the structural ones (a
        :class:`~medstack.io.rawheader.RawHeader`'s are written as they are, without astropy;
        so is the header of a writer given none).

    Use as a context manager: leaving the block by an exception aborts (removes the temporary
    file); call :meth:`commit` to publish the file.
    """

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, int],
                 dtype: np.dtype | type = np.float32,
                 header: fits.Header | RawHeader | None = None) -> None:
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        if self.dtype not in _LAYOUT:
            raise ValueError(f"unsupported output dtype {self.dtype}")
        bitpix, bzero, self._disk = _LAYOUT[self.dtype]
        head = _header_bytes(self.shape, bitpix, bzero, header)
        self._data_offset = len(head)
        self._row_bytes = self.shape[1] * np.dtype(self._disk).itemsize
        data_bytes = self._row_bytes * self.shape[0]
        self._total = self._data_offset + -(-data_bytes // BLOCK) * BLOCK
        self._closed = False
        self._writeback = True  # start write-back of the rows written every few MiB
        self._unsynced = 0
        self._lock = threading.Lock()
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=temp_prefix(self.path), suffix=".tmp", dir=self.path.parent or "."
            )
        except OSError as err:
            raise OutputError(f"{self.path}: cannot create a temporary file ({err.strerror})") from err
        self._fd = fd
        self.tmp_path = Path(tmp)
        try:
            self._pwrite(head, 0)
            self._reserve()
        except BaseException:
            self.abort()
            raise

    def _error(self, err: OSError) -> OutputError:
        if err.errno == errno.ENOSPC:
            return OutputError(f"{self.path}: no space left on device while writing")
        return OutputError(f"{self.path}: write failed ({err.strerror or err})")

    def _pwrite(self, data: bytes | memoryview, offset: int) -> None:
        view = memoryview(data)
        try:
            while view.nbytes:
                written = os.pwrite(self._fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as err:
            raise self._error(err) from err

    def _reserve(self) -> None:
        """Claim the whole file's space now, so a full disk fails before any work."""
        try:
            os.posix_fallocate(self._fd, 0, self._total)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise self._error(err) from err
            # Filesystems without fallocate: extend sparsely; a full disk shows up on write.
            try:
                os.ftruncate(self._fd, self._total)
            except OSError as err2:
                raise self._error(err2) from err2
        except AttributeError:  # pragma: no cover - no posix_fallocate (macOS)
            os.ftruncate(self._fd, self._total)

    def write_rows(self, y0: int, rows: np.ndarray) -> None:
        """Write ``rows`` (shape (k, nx)) at image rows ``[y0, y0 + k)``; every
        :data:`WRITEBACK_BYTES` written, start writing them to disk in the background (so that
        :meth:`commit` has little left to sync). Thread-safe."""
        data = _encode_rows(rows, y0, self.shape, self.dtype)
        self._pwrite(data, self._data_offset + y0 * self._row_bytes)
        if not self._writeback:
            return
        with self._lock:
            self._unsynced += len(data)
            kick = self._unsynced >= WRITEBACK_BYTES
            if kick:
                self._unsynced = 0
        # the whole file: rows come in any order, and clean pages are skipped cheaply
        if kick and not start_writeback(self._fd, 0, self._total):
            self._writeback = False  # not available here: the final fsync does it all

    def target(self) -> RowTarget:
        """A picklable handle for writing rows into this writer's temporary file from another
        process (see :class:`RowTarget`)."""
        return RowTarget(str(self.path), str(self.tmp_path), self.shape, self.dtype.str,
                         self._data_offset)

    def finish(self) -> Path:
        """Flush and close the temporary file, ready to be renamed over the final name (with
        the run's other products: :meth:`medstack.io.outputs.Products.commit`); returns its
        name."""
        try:
            os.fsync(self._fd)
        except OSError as err:
            self.abort()
            raise self._error(err) from err
        os.close(self._fd)
        self._closed = True
        os.chmod(self.tmp_path, 0o644 & ~umask())
        return self.tmp_path

    def commit(self) -> Path:
        """Flush, close and rename the temporary file over the final name."""
        self.finish()
        earlier = _hold(self.path)
        try:
            os.replace(self.tmp_path, self.path)
        except OSError as err:
            _release(earlier, wait=True)
            self._remove_tmp()
            raise OutputError(f"{self.path}: cannot rename the finished file ({err.strerror})") from err
        _release(earlier)
        return self.path

    def abort(self) -> None:
        """Close and remove the temporary file; the final name is left untouched."""
        if not self._closed:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._closed = True
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            self.tmp_path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> FitsImageWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None or not self._closed:
            self.abort()


def _structural(shape: tuple[int, int], bitpix: int, bzero: int | None
                ) -> list[tuple[str, object, str | None]]:
    """The structural cards of an output image, in order: ``(keyword, value, comment)``."""
    cards: list[tuple[str, object, str | None]] = [
        ("SIMPLE", True, "conforms to FITS standard"),
        ("BITPIX", bitpix, "array data type"),
        ("NAXIS", 2, "number of array dimensions"),
        ("NAXIS1", shape[1], None),
        ("NAXIS2", shape[0], None),
    ]
    if bzero is not None:
        cards += [("BSCALE", 1, None), ("BZERO", bzero, None)]
    return cards


def _header_bytes(shape: tuple[int, int], bitpix: int, bzero: int | None,
                  header: fits.Header | RawHeader | None) -> bytes:
    """The header blocks of an output image: the structural cards, then ``header``'s other
    cards; without astropy for a :class:`RawHeader` or none, as astropy writes them."""
    structural = _structural(shape, bitpix, bzero)
    if header is None or isinstance(header, RawHeader):
        try:
            images = [format_card(*card) for card in structural]
        except NotPlain:  # pragma: no cover - the structural cards are always plain
            images = None
        if images is not None:
            if header is not None:
                images += [image for image, key in zip(header.images, header.keywords)
                           if key not in _STRUCTURAL]
            text = "".join(images) + "END".ljust(80)
            return (text + " " * (-len(text) % BLOCK)).encode("ascii")
        header = header.to_astropy() if header is not None else None
    from astropy.io import fits

    full = fits.Header()
    for key, value, comment in structural:
        full[key] = value if comment is None else (value, comment)
    for card in (header or fits.Header()).cards:
        if card.keyword not in _STRUCTURAL:
            full.append(card, end=True)
    return full.tostring(padding=True).encode("ascii")


def _encode_rows(rows: np.ndarray, y0: int, shape: tuple[int, int], dtype: np.dtype
                 ) -> memoryview:
    """``rows`` as the bytes stored on disk for an image of ``shape`` and ``dtype`` (a byte
    view of a new array, or of ``rows`` itself where they are already as on disk)."""
    block = np.ascontiguousarray(rows, dtype=dtype)
    if block.ndim != 2 or block.shape[1] != shape[1] or y0 < 0 or y0 + block.shape[0] > shape[0]:
        raise ValueError(f"rows of shape {block.shape} do not fit at row {y0} of {shape}")
    if dtype == np.uint16:
        disk = (block.astype(np.int32) - 32768).astype(">i2")
    else:
        disk = block.astype(_LAYOUT[np.dtype(dtype)][2], copy=False)
    return memoryview(np.ascontiguousarray(disk)).cast("B")


@dataclass(frozen=True)
class RowTarget:
    """Where rows go in the temporary file of an unfinished :class:`FitsImageWriter`, as plain
    data that can be sent to another process (a Dask worker) and used there.

    The file is opened by name, never created: once the writer has committed or aborted,
    :meth:`write_rows` fails with :class:`OutputError` instead of leaving a stray file, so a
    late or repeated task can never publish a partial image. Writing the same rows twice writes
    the same bytes (idempotent).

    Attributes
    ----------
    path : str
        The final name (for messages).
    tmp_path : str
        The temporary file being written.
    shape : (int, int)
        ``(ny, nx)``.
    dtype : str
        Output dtype (``numpy.dtype.str``): float32, uint16 or uint8.
    data_offset : int
        Byte offset of the first data row.
    """

    path: str
    tmp_path: str
    shape: tuple[int, int]
    dtype: str
    data_offset: int

    def _open(self) -> int:
        try:
            return os.open(self.tmp_path, os.O_WRONLY)
        except OSError as err:
            raise OutputError(
                f"{self.path}: cannot open its temporary file {self.tmp_path} "
                f"({err.strerror}); is the output directory on a filesystem this machine sees?"
            ) from err

    def write_rows(self, y0: int, rows: np.ndarray) -> None:
        """Write ``rows`` (shape (k, nx)) at image rows ``[y0, y0 + k)``."""
        dtype = np.dtype(self.dtype)
        data = memoryview(_encode_rows(rows, y0, self.shape, dtype))
        offset = self.data_offset + y0 * self.shape[1] * dtype.itemsize
        fd = self._open()
        try:
            start, nbytes = offset, data.nbytes
            while data.nbytes:
                written = os.pwrite(fd, data, offset)
                data = data[written:]
                offset += written
            start_writeback(fd, start, nbytes)
        except OSError as err:
            raise OutputError(f"{self.path}: write failed ({err.strerror or err})") from err
        finally:
            os.close(fd)

    def sync(self) -> None:
        """Flush the rows written so far to stable storage (``fsync``)."""
        fd = self._open()
        try:
            os.fsync(fd)
        except OSError as err:
            raise OutputError(f"{self.path}: write failed ({err.strerror or err})") from err
        finally:
            os.close(fd)
