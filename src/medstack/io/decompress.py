"""A gzip, bzip2 or zip-compressed input, streamed into a temporary file (disk, not memory)."""

from __future__ import annotations

import bz2
import gzip
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ..errors import InputError, OutputError

__all__ = ["decompressed_copy"]

#: Bytes decompressed at a time into the temporary copy of a compressed input.
INFLATE_BYTES = 1 << 16


def decompressed_copy(path: str, scratch: str | os.PathLike[str] | None = None
                      ) -> tuple[str, int]:
    """Decompress ``path`` (gzip, bzip2, or a zip's first member) into a new temporary file in
    ``scratch`` (default: the system's temporary directory): its name and size in bytes.

    Raises
    ------
    InputError
        If the compressed file is damaged.
    OutputError
        If the temporary file cannot be written (disk full, ...).
    """
    directory = os.fspath(scratch) if scratch is not None else tempfile.gettempdir()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".medstack-input-", suffix=".fits", dir=directory)
    except OSError as err:
        raise OutputError(f"{path}: cannot make a temporary file in {directory} to decompress "
                          f"it into ({err.strerror})") from err
    try:
        with os.fdopen(fd, "wb") as out, _open_compressed(path) as src:
            shutil.copyfileobj(src, out, INFLATE_BYTES)
            return tmp, out.tell()
    except BaseException as err:
        with suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile,
                            ValueError)) or (isinstance(err, OSError) and err.errno is None):
            # (an OSError without errno is a decompressor's complaint, not the disk's)
            raise InputError(f"{path}: damaged compressed file ({err})") from err
        if isinstance(err, OSError):
            raise OutputError(f"{path}: cannot decompress it into {directory} "
                              f"({err.strerror or err})") from err
        raise


@contextmanager
def _open_compressed(path: str) -> Iterator[Any]:
    """A binary file object of the decompressed bytes of a gzip, bzip2 or zip file."""
    with open(path, "rb") as fh:
        head = fh.read(3)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh":
        with (gzip.open if head[:2] == b"\x1f\x8b" else bz2.open)(path, "rb") as src:
            yield src
        return
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if not names:
            raise InputError(f"{path}: empty zip archive")
        with archive.open(names[0]) as src:
            yield src
