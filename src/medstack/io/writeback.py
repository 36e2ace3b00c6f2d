"""Bytes on their way to disk: written whole with ``pwrite``, their write-back started early
(Linux's ``sync_file_range``) so that the ``fsync`` before the rename has little left to do."""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

__all__ = ["pwrite_all", "start_writeback"]

#: ``sync_file_range`` flag: start write-back of the dirty pages of a range, without waiting.
_SYNC_FILE_RANGE_WRITE = 2


#: Linux's ``sync_file_range`` from libc through ctypes (which releases the GIL), or None.
_sync_file_range: Any = None
if sys.platform.startswith("linux"):
    try:
        _sync_file_range = ctypes.CDLL(None, use_errno=True).sync_file_range
        _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        _sync_file_range.restype = ctypes.c_int
    except (OSError, AttributeError):  # pragma: no cover - no such libc function
        _sync_file_range = None


def start_writeback(fd: int, offset: int, nbytes: int) -> bool:
    """Ask the kernel to start writing ``nbytes`` at ``offset`` of ``fd`` to disk, without
    waiting; False (doing nothing) where that is not available. Never raises."""
    func = _sync_file_range
    if func is None or nbytes <= 0:
        return False
    try:
        return func(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE) == 0
    except (OSError, ctypes.ArgumentError):  # pragma: no cover - defensive
        return False


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of ``fd`` (``os.pwrite`` may write less)."""
    view = memoryview(data)
    while view.nbytes:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
