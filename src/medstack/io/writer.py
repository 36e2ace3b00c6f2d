"""Writing FITS images section by section, atomically: row blocks in any order, from several
threads, into a temporary file renamed over the final name on commit (removed on failure).

Notes
-----
drizzlepac deletes the old ``_med.fits`` before it computes the new one, and holds the whole
output in memory. medstack never holds a full-size output array when writing to a file.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from ..errors import OutputError
from .fitsheader import OutputHeader
from .outputs import Products, atomic_file, check_output_path
from .writeback import pwrite_all, start_writeback

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = ["FitsImageWriter", "RowTarget", "atomic_file", "check_output_path"]

BLOCK = 2880
log = logging.getLogger(__name__)

# FITS layout per output dtype: (BITPIX, BZERO, on-disk dtype)
_LAYOUT = {
    np.dtype(np.float32): (-32, None, ">f4"),
    np.dtype(np.uint16): (16, 32768, ">i2"),
    np.dtype(np.uint8): (8, None, "u1"),
}
#: Bytes written between two starts of the write-back (one call per few MiB, not per block).
WRITEBACK_BYTES = 4 << 20


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
    header : OutputHeader or astropy.io.fits.Header, optional
        Cards to write after the structural ones. Default is none.
    into : Products, optional
        The run whose products the file is one of: its temporary file is staged there from
        before it exists (the run's :meth:`Products.abort` removes it at any moment) and
        committed with the others. Default is a file on its own.

    Leaving its ``with`` block by an exception aborts; :meth:`commit` publishes the file.
    """

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, int],
                 dtype: np.dtype | type = np.float32,
                 header: OutputHeader | fits.Header | None = None, *,
                 into: Products | None = None) -> None:
        self.path = Path(path)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        if self.dtype not in _LAYOUT:
            raise ValueError(f"unsupported output dtype {self.dtype}")
        bitpix, bzero, self._disk = _LAYOUT[self.dtype]
        if not isinstance(header, OutputHeader):
            header = OutputHeader() if header is None else OutputHeader.from_astropy(header)
        head = header.tobytes(self.shape, bitpix, bzero)
        self._data_offset = len(head)
        self._row_bytes = self.shape[1] * np.dtype(self._disk).itemsize
        self._total = self._data_offset + -(-self._row_bytes * self.shape[0] // BLOCK) * BLOCK
        self._closed = False
        self._writeback = True  # start write-back of the rows written every few MiB
        self._unsynced = 0
        self._lock = threading.Lock()
        self._products = Products() if into is None else into
        try:
            self._fd, self.tmp_path = self._products.create(self.path)
        except OSError as err:
            raise OutputError(f"{self.path}: cannot create a temporary file ({err.strerror})") from err
        try:
            pwrite_all(self._fd, head, 0)
            try:  # claim the file's space now, so that a full disk fails before any work
                os.posix_fallocate(self._fd, 0, self._total)
            except (OSError, AttributeError) as err:  # (AttributeError: none on macOS)
                if getattr(err, "errno", None) == errno.ENOSPC:
                    raise
                os.ftruncate(self._fd, self._total)  # sparse: a full disk shows on write
        except BaseException as err:
            self.abort()
            if isinstance(err, OSError):
                raise self._error(err) from err
            raise

    def _error(self, err: OSError) -> OutputError:
        if err.errno == errno.ENOSPC:
            return OutputError(f"{self.path}: no space left on device while writing")
        return OutputError(f"{self.path}: write failed ({err.strerror or err})")

    def write_rows(self, y0: int, rows: np.ndarray) -> None:
        """Write ``rows`` (shape (k, nx)) at image rows ``[y0, y0 + k)``, starting their
        write-back every :data:`WRITEBACK_BYTES`. Thread-safe."""
        data = _encode_rows(rows, y0, self.shape, self.dtype)
        try:
            pwrite_all(self._fd, data, self._data_offset + y0 * self._row_bytes)
        except OSError as err:
            raise self._error(err) from err
        if not self._writeback:
            return
        with self._lock:
            self._unsynced += len(data)
            kick = self._unsynced >= WRITEBACK_BYTES
            if kick:
                self._unsynced = 0
        # the whole file: rows come in any order, and clean pages are skipped cheaply
        if kick and not start_writeback(self._fd, 0, self._total):
            self._writeback = False  # not available: the final fsync does it all

    def target(self) -> RowTarget:
        """A picklable handle for writing rows from another process (:class:`RowTarget`)."""
        return RowTarget(str(self.path), str(self.tmp_path), self.shape, self.dtype.str,
                         self._data_offset)

    def finish(self) -> Path:
        """Flush and close the temporary file, ready for :meth:`Products.commit`; its name."""
        try:
            os.fsync(self._fd)
        except OSError as err:
            self.abort()
            raise self._error(err) from err
        os.close(self._fd)
        self._closed = True
        return self.tmp_path

    def commit(self) -> Path:
        """Flush, close and rename the temporary file over the final name (with the other
        products of ``into``, if given: :meth:`Products.commit`)."""
        self.finish()
        self._products.commit()
        return self.path

    def abort(self) -> None:
        """Close and remove the temporary file; the final name is left untouched."""
        if not self._closed:
            with suppress(OSError):
                os.close(self._fd)
            self._closed = True
        self._products.discard(self.path)

    def __enter__(self) -> FitsImageWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None or not self._closed:
            self.abort()


def _encode_rows(rows: np.ndarray, y0: int, shape: tuple[int, int], dtype: np.dtype
                 ) -> memoryview:
    """``rows`` as the bytes stored on disk for an image of ``shape`` and ``dtype``."""
    block = np.ascontiguousarray(rows, dtype=dtype)
    if block.ndim != 2 or block.shape[1] != shape[1] or y0 < 0 or y0 + block.shape[0] > shape[0]:
        raise ValueError(f"rows of shape {block.shape} do not fit at row {y0} of {shape}")
    if dtype == np.uint16:
        disk = (block.astype(np.int32) - 32768).astype(">i2")
    else:
        disk = block.astype(_LAYOUT[np.dtype(dtype)][2], copy=False)
    return np.ascontiguousarray(disk).data.cast("B")


@dataclass(frozen=True)
class RowTarget:
    """Where rows go in an unfinished :class:`FitsImageWriter`'s temporary file, as plain data
    for another process (a Dask worker). The file is opened by name, never created: once the
    writer has committed or aborted, a late task fails instead of leaving a stray file."""

    path: str
    tmp_path: str
    shape: tuple[int, int]
    dtype: str
    data_offset: int

    @contextmanager
    def _opened(self) -> Iterator[int]:
        """The temporary file, open for writing; an OSError while it is used as OutputError."""
        try:
            fd = os.open(self.tmp_path, os.O_WRONLY)
        except OSError as err:
            raise OutputError(
                f"{self.path}: cannot open its temporary file {self.tmp_path} "
                f"({err.strerror}); is the output directory on a filesystem this machine sees?"
            ) from err
        try:
            yield fd
        except OSError as err:
            raise OutputError(f"{self.path}: write failed ({err.strerror or err})") from err
        finally:
            os.close(fd)

    def write_rows(self, y0: int, rows: np.ndarray) -> None:
        """Write ``rows`` (shape (k, nx)) at image rows ``[y0, y0 + k)``."""
        dtype = np.dtype(self.dtype)
        data = memoryview(_encode_rows(rows, y0, self.shape, dtype))
        offset = self.data_offset + y0 * self.shape[1] * dtype.itemsize
        with self._opened() as fd:
            pwrite_all(fd, data, offset)
            start_writeback(fd, offset, data.nbytes)

    def sync(self) -> None:
        """Flush the rows written so far to stable storage (``fsync``)."""
        with self._opened() as fd:
            os.fsync(fd)
