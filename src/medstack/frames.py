"""The frames door (:class:`FrameStack`): the NaN-skipping median of frames handed over one
at a time, as JWST's and Roman's outlier detection builds it (stcal's ``MedianComputer``)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import numpy as np

from .core.plan import default_workers, prepare_frames
from .core.run import run
from .errors import InputError, OutputError, ParameterError
from .executors import make_executor
from .io.framestore import FrameStore
from .kernels import choose_kernel
from .kernels.framemedian import footprint
from .options import parse_size, run_options

__all__ = ["DEFAULT_READ_BYTES", "TILE_ROWS", "FrameStack"]

#: Bytes of stored frame values and output rows one section holds, by default.
DEFAULT_READ_BYTES = 4 << 20
#: Rows of a frame's tiles (bands cut to the bounding box of their valid pixels, so that a
#: frame at an angle to the image holds little more than its own pixels).
TILE_ROWS = 64


def _store_count(name: str, doc: str) -> Any:
    """A read-only property: the frame store's count ``name``."""
    return property(lambda self: getattr(self._store, name), doc=doc)


class FrameStack:
    """NumPy's ``np.nanmedian(cube, axis=0)`` of frames added one at a time, bit for bit as
    stcal's ``nanmedian3D`` computes it, without ever holding the cube.

    Each frame is kept cropped to its footprint (:data:`TILE_ROWS`), in memory while
    ``max_memory`` allows, spilled beyond it to a private temporary folder; each pixel's
    median combines only the frames whose footprints cover it.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` of every frame, pixels.
    dtype : {"float32", "float64"}, optional
        The frames' and the median's dtype. Default is "float32".
    max_memory : int or str, optional
        Bytes (or a size such as ``"2GiB"``) the stack may hold, the stored frames after the
        median, the sections in flight and one frame's transients. Default is no limit.
    in_memory : bool, optional
        True: never spill; False: spill every frame; None: spill what ``max_memory`` cannot
        hold. Default is None.
    tempdir : str, optional
        Where the private spill folder is made (``""``: the current folder, as stcal).
        Default is the system's temporary folder.
    read_bytes : int or str, optional
        Bytes of stored frame values (and output rows) one section of the median holds (stcal's
        ``buffer_size``). Default is 4 MiB.
    max_frames : int, optional
        Frames the stack accepts at most. Default is no limit.
    workers : int, optional
        Threads the median runs on (worker processes of a ``dask-local`` cluster). Default is
        all cores this process may use.
    kernel : {"auto", "fast", "reference"}, optional
        The compiled or the NumPy reference kernel (the same bits). Default is "auto".
    scheduler : str, optional
        ``"threads"``, ``"dask-local"`` or the address of a running Dask scheduler, as for
        :func:`medstack.median_image`. On Dask every frame is spilled (``in_memory`` must not
        be True), and the workers read the frames' tiles from the spill folder by name, offset,
        dtype and shape: ``tempdir`` must be on a filesystem they see, at the same path.
        Default is threads unless a client is given.
    client : distributed.Client, optional
        A connected Dask client to compute on (left open). Default is none.

    Notes
    -----
    Deviations from ``np.nanmedian`` on the full cube (docs/deviations.md): NaN payloads
    outside a frame's footprint are not kept, so with 600 frames or more a pixel with no data
    that lies outside the last frame's footprint is the canonical NaN where NumPy returns the
    last frame's own NaN there; pixels masked by ``weight``/``threshold`` or ``mask`` become the
    canonical NaN, as stcal's callers set them.
    """

    def __init__(self, shape: tuple[int, int], dtype: str = "float32", *,
                 max_memory: int | str | None = None, in_memory: bool | None = None,
                 tempdir: str | None = None, read_bytes: int | str | None = None,
                 max_frames: int | None = None, workers: int | None = None,
                 kernel: str = "auto", scheduler: str | None = None,
                 client: Any = None) -> None:
        try:
            ny, nx = (int(v) for v in shape)
            if ny < 1 or nx < 1 or (ny, nx) != tuple(shape):
                raise ValueError
        except (TypeError, ValueError) as err:
            raise ParameterError(f"shape: expected (ny, nx), two whole numbers >= 1, got "
                                 f"{shape!r}") from err
        try:
            self.dtype = np.dtype(dtype).name
        except TypeError:
            self.dtype = ""
        if self.dtype not in ("float32", "float64"):
            raise ParameterError(f"dtype: expected float32 or float64, got {dtype!r}")
        if in_memory not in (None, True, False):
            raise ParameterError(f"in_memory: expected True, False or None, got {in_memory!r}")
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(
                max_frames, (int, np.integer)) or max_frames < 1):
            raise ParameterError(f"max_frames: expected a whole number >= 1, got {max_frames!r}")
        self.shape = (ny, nx)
        self.max_frames = max_frames
        self._options = run_options(keep_data=True, kernel=kernel, workers=workers,
                                    scheduler=scheduler, client=client)
        self._executor = make_executor(self._options)
        on_dask = self._options.on_dask
        if on_dask and in_memory:
            raise ParameterError("in_memory: frames held in memory are combined on this "
                                 "machine's threads; on Dask every frame is spilled (leave "
                                 "in_memory as None or False)")
        self._threads = self._options.workers or default_workers()
        self._kernel = choose_kernel(kernel)
        self.read_bytes = parse_size(read_bytes, "read_bytes") or DEFAULT_READ_BYTES
        budget = parse_size(max_memory, "max_memory")
        frame_bytes = ny * nx * np.dtype(self.dtype).itemsize
        if budget is not None:
            # the median, the sections in flight, one frame's mask and crop while added
            reserve = 2 * frame_bytes + ny * nx + (self._threads + 1) * self.read_bytes
            if budget < reserve:
                raise ParameterError(f"max_memory: {budget / 2**20:.4g} MiB is too small for "
                                     f"frames of {ny}x{nx}; it needs at least "
                                     f"{reserve / 2**20:.4g} MiB")
            budget -= reserve
        self._store = FrameStore(self.shape, self.dtype, tempdir=tempdir, memory_bytes=(
            0 if in_memory is False or on_dask else None if in_memory else budget))
        self._closed = False

    def _open_store(self, what: str) -> FrameStore:
        if self._closed:
            raise InputError(f"{what}: the frame stack is closed (median() closes it)")
        return self._store

    n_frames: int = _store_count("n_frames", "Frames added so far.")
    stored_bytes: int = _store_count("stored_bytes", "Bytes of frame values held in memory now.")
    spilled_bytes: int = _store_count("spilled_bytes",
                                      "Bytes of frame values in the spill folder now.")
    peak_spilled_bytes: int = _store_count("peak_spilled_bytes",
                                           "The most bytes of frame values the spill folder held.")

    def _plane(self, index: int, name: str, value: Any, dtype: str | None) -> np.ndarray:
        """``value`` as an array of the frames' shape and ``dtype`` (any byte order)."""
        arr = np.asarray(value)
        if arr.shape != self.shape:
            raise InputError(f"frame {index}: {name} has shape {arr.shape}, expected {self.shape}")
        if dtype is not None and arr.dtype.newbyteorder("=") != dtype:
            raise InputError(f"frame {index}: {name} has dtype {arr.dtype}, expected {dtype}")
        return arr

    def add(self, frame: np.ndarray, *, weight: np.ndarray | None = None,
            threshold: float | None = None, mask: np.ndarray | None = None) -> None:
        """Add the next frame (the caller's arrays are not modified).

        Parameters
        ----------
        frame : ndarray, shape ``shape``, the stack's dtype
            NaN is no data.
        weight, threshold : ndarray and float, optional
            Pixels where ``weight < threshold`` (compared in float64) are no data. Default is
            none.
        mask : ndarray of bool, optional
            True where there is no data. Default is none.

        Raises
        ------
        InputError
            A frame (or weight, mask) of the wrong shape or dtype, more than ``max_frames``
            frames, or a closed stack; one line naming the frame by its 0-based index.
        OutputError
            A spilled frame cannot be written (the stack is then closed: nothing is left).
        """
        store = self._open_store("add")
        index = store.n_frames
        if self.max_frames is not None and index >= self.max_frames:
            raise InputError(f"frame {index}: more than max_frames = {self.max_frames} frames")
        arr = self._plane(index, "frame", frame, self.dtype)
        if (weight is None) != (threshold is None):
            raise InputError(f"frame {index}: weight and threshold go together")
        valid = None  # where a weight or mask says no data: a boolean plane of valid pixels
        if weight is not None or mask is not None:
            valid = ~np.isnan(arr)
            if weight is not None:
                valid &= ~(self._plane(index, "weight", weight, None) < np.float64(threshold))
            if mask is not None:
                valid &= ~self._plane(index, "mask", mask, "bool")
        boxes: list[list[int]] = []  # per band of rows; bands of equal columns merged
        for t0 in range(0, self.shape[0], TILE_ROWS):
            band = slice(t0, t0 + TILE_ROWS)
            box = footprint(arr[band] if valid is None else valid[band], self._kernel.name)
            if box is None:
                continue
            y0, y1, x0, x1 = box[0] + t0, box[1] + t0, box[2], box[3]
            if boxes and boxes[-1][1] == y0 and boxes[-1][2:] == [x0, x1]:
                boxes[-1][1] = y1
            else:
                boxes.append([y0, y1, x0, x1])
        tiles = []
        for y0, y1, x0, x1 in boxes:
            crop = np.array(arr[y0:y1, x0:x1], dtype=self.dtype, order="C")
            if valid is not None:
                crop[~valid[y0:y1, x0:x1]] = np.nan
            tiles.append(((y0, y1, x0, x1), crop))
        try:
            store.add(tiles)
        except OutputError:
            self.close()
            raise

    def median(self) -> np.ndarray:
        """NumPy's ``np.nanmedian`` over every frame added, shape ``shape``, the stack's dtype;
        then the stack is closed (its spilled files removed), whatever happens.

        Raises
        ------
        InputError
            No frame added, or a closed stack.
        """
        store = self._open_store("median")
        try:
            plan = prepare_frames(store, workers=self._threads,
                                  read_bytes=self.read_bytes)
            data = run(plan, self._executor, self._options).data
            assert data is not None
            return data
        finally:
            self.close()

    def close(self) -> None:
        """Drop every frame and remove the spill folder (idempotent)."""
        self._closed = True
        self._store.close()

    def __enter__(self) -> FrameStack:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.n_frames} frames"
        return f"<FrameStack {self.shape[0]}x{self.shape[1]} {self.dtype}, {state}>"
