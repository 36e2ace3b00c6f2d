"""The frames' store (:class:`FrameStore`): each frame's tiles, held in memory or spilled as
one raw file to a private temporary folder, and read back by rows (a spilled tile by its
file's name, offset, dtype and shape alone)."""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import OutputError

__all__ = ["FrameStore", "StoredFrame"]


@dataclass(frozen=True)
class StoredFrame:
    """One tile of a frame: its footprint and where its values are.

    Attributes
    ----------
    index : int
        The frame's number, from 0.
    box : (int, int, int, int)
        Its footprint ``(y0, y1, x0, x1)``: image rows ``[y0, y1)``, columns ``[x0, x1)``.
    dtype : str
        ``float32`` or ``float64`` (native byte order).
    values : ndarray or None
        Its values, in memory; None when spilled.
    path : str or None
        When spilled, the raw file holding them (C order).
    offset : int
        Where in that file they start, bytes. Default is 0.
    """

    index: int
    box: tuple[int, int, int, int]
    dtype: str
    values: np.ndarray | None = None
    path: str | None = None
    offset: int = 0

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """Its values in the image rows ``[r0, r1)`` (clipped to its footprint): a view of the
        values in memory, or read from the spilled file."""
        y0, y1, x0, x1 = self.box
        a, b = max(r0, y0), min(r1, y1)
        if self.values is not None:
            return self.values[a - y0:b - y0]
        width = x1 - x0
        start = self.offset + (a - y0) * width * np.dtype(self.dtype).itemsize
        return np.fromfile(self.path or "", dtype=self.dtype, count=(b - a) * width,
                           offset=start).reshape(b - a, width)


def _write(path: str, arrays: Sequence[np.ndarray]) -> None:
    """Write ``arrays`` raw, one after the other, to a new file ``path``."""
    with open(path, "xb") as f:
        for values in arrays:
            f.write(np.ascontiguousarray(values).data)


class FrameStore:
    """Frames cropped to their footprints, in memory or spilled (``frames``: their tiles).

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` of every frame.
    dtype : str
        ``float32`` or ``float64``.
    memory_bytes : int, optional
        Frame bytes kept in memory at most (0: spill every frame), the rest spilled. Default
        is no limit.
    tempdir : str, optional
        Where the private spill folder is made (``""``: the current folder). Default is the
        system's temporary folder.
    """

    def __init__(self, shape: tuple[int, int], dtype: str, *, memory_bytes: int | None = None,
                 tempdir: str | None = None) -> None:
        self.shape = shape
        self.dtype = dtype
        self.memory_bytes = memory_bytes
        self.tempdir = tempdir
        self.frames: list[StoredFrame] = []
        self.n_frames = 0
        self.stored_bytes = 0
        self.spilled_bytes = 0
        self.peak_spilled_bytes = 0
        self.folder: str | None = None
        self._cleanup: weakref.finalize | None = None

    def add(self, tiles: Sequence[tuple[tuple[int, int, int, int], np.ndarray]]) -> None:
        """Add the next frame: its tiles, each a footprint ``(y0, y1, x0, x1)`` and its values
        (C-contiguous, the store's dtype); none for a frame with no valid pixel (it still
        counts). A spilled frame's tiles go to one file, one after the other.

        Raises
        ------
        OutputError
            The spill folder cannot be made or written, naming it (no partial file is left).
        """
        index = self.n_frames
        nbytes = sum(values.nbytes for _, values in tiles)
        if self.memory_bytes is None or self.stored_bytes + nbytes <= self.memory_bytes:
            self.frames += [StoredFrame(index, box, self.dtype, values=values)
                            for box, values in tiles]
            self.stored_bytes += nbytes
        elif tiles:
            if self.folder is None:
                where = self.tempdir if self.tempdir is not None else tempfile.gettempdir()
                try:
                    self.folder = os.path.abspath(  # (the name Dask workers read by)
                        tempfile.mkdtemp(prefix="medstack-frames-", dir=where or "."))
                except OSError as err:
                    raise OutputError(f"{where or os.getcwd()}: cannot make the frames' spill "
                                      f"folder there ({err.strerror or err})") from err
                # removed with the store at the latest, even when nobody closes it
                self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, True)
            path = os.path.join(self.folder, f"frame-{index:06d}.raw")
            try:
                _write(path, [values for _, values in tiles])
            except BaseException as err:
                if os.path.exists(path):
                    os.unlink(path)
                if isinstance(err, OSError):
                    raise OutputError(f"{self.folder}: cannot spill frame {index} there "
                                      f"({err.strerror or err})") from err
                raise
            offset = 0
            for box, values in tiles:
                self.frames.append(StoredFrame(index, box, self.dtype, path=path, offset=offset))
                offset += values.nbytes
            self.spilled_bytes += nbytes
            self.peak_spilled_bytes = max(self.peak_spilled_bytes, self.spilled_bytes)
        self.n_frames += 1

    def covering(self, r0: int, r1: int) -> list[StoredFrame]:
        """The tiles that meet the image rows ``[r0, r1)``, in frame order."""
        return [f for f in self.frames if f.box[0] < r1 and f.box[1] > r0]

    def row_bytes(self) -> np.ndarray:
        """Per image row, the bytes of frame values stored there (int64, length ny)."""
        diff = np.zeros(self.shape[0] + 1, dtype=np.int64)
        item = np.dtype(self.dtype).itemsize
        for f in self.frames:
            y0, y1, x0, x1 = f.box
            diff[y0] += (x1 - x0) * item
            diff[y1] -= (x1 - x0) * item
        return np.cumsum(diff[:-1])

    def __getstate__(self) -> dict[str, object]:
        """What a Dask worker gets: the tiles (of spilled frames: names, offsets, dtypes and
        shapes), not the duty to remove the spill folder, which stays with this store."""
        return {**self.__dict__, "_cleanup": None}

    def close(self) -> None:
        """Drop every frame and remove the spill folder (idempotent; the counts of frames and
        the peak of spilled bytes stay)."""
        self.frames = []
        self.stored_bytes = self.spilled_bytes = 0
        if self._cleanup is not None:
            self._cleanup()
