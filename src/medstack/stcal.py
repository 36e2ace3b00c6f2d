"""stcal's outlier-detection median on medstack's frames door: a drop-in for stcal 1.20.0.

:class:`MedianComputer`, :func:`nanmedian3D` and :func:`compute_weight_threshold` take the
arguments of ``stcal.outlier_detection.median`` and ``.utils`` and return the same bits, from
:class:`medstack.frames.FrameStack` (which stores each frame cropped to its valid pixels).
:func:`install` puts them into stcal, jwst and romancal (the modules imported already and
those imported later); :func:`uninstall` restores the originals. Importing this module imports
none of stcal, jwst or romancal.
"""

from __future__ import annotations

import importlib.abc
import operator
import sys
import tempfile
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .core.plan import default_workers
from .errors import MedstackError, OutputError
from .frames import FrameStack

__all__ = ["MedianComputer", "compute_weight_threshold", "install", "installed",
           "nanmedian3D", "uninstall"]

#: The dtypes the frames door computes; any other goes through numpy as in stcal.
_DOOR_DTYPES = (np.dtype("float32"), np.dtype("float64"))
#: Bytes of frame data per band of rows in :func:`nanmedian3D` (it holds one band's copy).
_BAND_BYTES = 64 << 20
#: Bytes one section of the median holds in memory: small sections cost no speed, and the
#: sections in flight add only a few MiB to the frames and the median.
_IN_MEMORY_READ_BYTES = 512 << 10


def _numpy_nanmedian3D(cube: np.ndarray, overwrite_input: bool) -> np.ndarray:  # noqa: N802
    """stcal's own loop, for the dtypes the frames door does not take."""
    out = np.empty(cube.shape[1:], dtype=cube.dtype)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        for row in range(out.shape[0]):
            np.nanmedian(cube[:, row, :], axis=0, overwrite_input=overwrite_input, out=out[row])
    return out


def nanmedian3D(cube: np.ndarray, overwrite_input: bool = True) -> np.ndarray:  # noqa: N802
    """The NaN-skipping median along axis 0 of a cube, as ``stcal``'s ``nanmedian3D``.

    Parameters
    ----------
    cube : numpy.ndarray
        (n_frames, ny, nx) values; NaN means no data.
    overwrite_input : bool, optional
        Ignored: the cube is never modified (stcal may reorder it). Default is True.

    Returns
    -------
    numpy.ndarray
        (ny, nx), the cube's dtype: bit for bit ``np.nanmedian(cube, axis=0)``. float32 and
        float64 cubes go through :class:`~medstack.frames.FrameStack` one band of rows (about
        64 MiB of frames) at a time; other dtypes through numpy row by row, as stcal.
    """
    cube = np.asarray(cube)
    if cube.ndim != 3 or cube.dtype not in _DOOR_DTYPES or cube.shape[0] == 0:
        return _numpy_nanmedian3D(cube, overwrite_input)
    n_frames, ny, nx = cube.shape
    out = np.empty((ny, nx), dtype=cube.dtype)
    band_rows = max(1, _BAND_BYTES // max(1, n_frames * nx * cube.itemsize))
    for row0 in range(0, ny, band_rows):
        band = cube[:, row0:row0 + band_rows]
        with FrameStack(band.shape[1:], dtype=cube.dtype.name, in_memory=True) as stack:
            for frame in band:
                stack.add(frame)
            out[row0:row0 + band.shape[1]] = stack.median()
    return out


def compute_weight_threshold(weight: np.ndarray, maskpt: float) -> float:
    """The weight below which a pixel counts as no data, as stcal's ``compute_weight_threshold``:
    ``maskpt`` times the float64 mean of the finite, non-zero weights after astropy's
    ``sigma_clip`` (3 sigma about the median, 5 iterations); the same float64 bits as stcal.
    """
    from astropy.stats import sigma_clip  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "invalid value", RuntimeWarning)
        good = weight[np.isfinite(weight) & (weight != 0)]
        clipped = sigma_clip(good, sigma=3, maxiters=5, masked=False, copy=False)
        return np.mean(clipped, dtype="f8") * maskpt  # type: ignore[no-any-return]


def _os_error(err: OutputError) -> OSError:
    """The OSError stcal would raise where the frames door raised ``err`` (a full disk)."""
    cause = err.__cause__
    if isinstance(cause, OSError) and cause.errno is not None:
        return type(cause)(cause.errno, cause.strerror, cause.filename)
    return OSError(str(err))


class MedianComputer:
    """stcal 1.20.0's ``MedianComputer``: frames appended one at a time, then their median.

    Parameters
    ----------
    full_shape : tuple of int
        (n_frames, ny, nx): the number of frames that will be appended and their shape.
    in_memory : bool
        True: the frames are held in memory. False: they are written to a temporary folder made
        inside ``tempdir`` and read back one band of rows at a time.
    buffer_size : int, optional
        Bytes the bands of rows read back at once hold together (on disk only). Default is
        None: one frame's bytes, as stcal; at least one row.
    dtype : str or numpy.dtype, optional
        The frames' dtype. Default is "float32".
    tempdir : str, optional
        The folder in which the temporary folder is made. Default is "": the current folder.

    Notes
    -----
    Each frame is stored cropped to its valid (non-NaN) pixels, so memory (in memory) and
    temporary disk (on disk) are at most stcal's ``n_frames * ny * nx * itemsize``, and less
    for sparse mosaics. Where stcal 1.20.0 raises ``IndexError: Too many calls to add_image``
    (on disk with fewer row sections than frames), this class returns the median of all the
    frames. Fewer frames than ``full_shape[0]``: the median of those appended (stcal: on disk
    the same, in memory uninitialised memory). In memory an ``idx`` given twice raises
    ValueError (stcal overwrites the earlier frame). See docs/deviations.md.
    """

    def __init__(self, full_shape: Sequence[int], in_memory: bool, buffer_size: int | None = None,
                 dtype: str | np.dtype[Any] = "float32", tempdir: str = "") -> None:
        self.full_shape = full_shape
        self.in_memory = in_memory
        self.buffer_size = 0 if buffer_size is None else buffer_size
        self.dtype = dtype
        shape = tuple(operator.index(n) for n in full_shape)
        if len(shape) != 3:
            raise ValueError(f"Invalid input shape {full_shape}; only three-dimensional data "
                             "are supported.")
        self._n_frames, self._frame_shape = shape[0], shape[1:]
        self._dtype = np.dtype(dtype)
        self._seen: set[int] = set()  # the places of the frames appended
        self._result: np.ndarray | None = None
        self._cube: np.ndarray | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._stack: FrameStack | None = None
        if self._dtype not in _DOOR_DTYPES:  # stcal's cube, for dtypes medstack does not take
            self._cube = np.empty(shape, dtype=self._dtype)
            return
        workers = default_workers()
        read_bytes = _IN_MEMORY_READ_BYTES
        if not in_memory:
            # stcal's folder, so that a missing or unwritable tempdir raises what stcal raises
            self._tmp = tempfile.TemporaryDirectory(dir=tempdir)
            frame_bytes = self._frame_shape[0] * self._frame_shape[1] * self._dtype.itemsize
            # the sections in flight (each read, then gathered) within stcal's buffer together
            read_bytes = max(1, (self.buffer_size or frame_bytes) // (2 * (workers + 1)))
        self._stack = FrameStack(
            self._frame_shape, dtype=self._dtype.name, in_memory=bool(in_memory),
            tempdir=None if self._tmp is None else self._tmp.name, read_bytes=read_bytes,
            max_frames=self._n_frames, workers=workers)

    def append(self, data: np.ndarray, idx: int | None = None) -> None:
        """Add one frame: ``data``, (ny, nx) values (in memory: anything numpy assigns into such
        a frame, as stcal), at place ``idx`` (0 to ``full_shape[0] - 1``; required in memory,
        ignored on disk; default is None)."""
        frame = data
        if self.in_memory:
            if idx is None:
                raise ValueError("Index must be provided when using in-memory median")
            place = operator.index(idx)
            if not -self._n_frames <= place < self._n_frames:
                raise IndexError(f"index {place} is out of bounds for axis 0 with size "
                                 f"{self._n_frames}")
            place %= self._n_frames
            if place in self._seen:
                raise ValueError(f"idx {place} was appended already")
            frame = np.asarray(data)
            if frame.shape != self._frame_shape or frame.dtype != self._dtype:
                converted = np.empty(self._frame_shape, dtype=self._dtype)
                converted[...] = frame  # numpy's assignment rules and errors, as stcal's cube
                frame = converted
        else:
            place = len(self._seen)
            if place >= self._n_frames:
                raise IndexError("Too many calls to add_image. Expected at most "
                                 f"{self._n_frames} input models.")
            if frame.shape != self._frame_shape:
                raise ValueError(f"Data shape {frame.shape} does not match expected shape "
                                 f"{self._frame_shape}.")
            if frame.dtype != self._dtype:
                raise ValueError(f"Data dtype {frame.dtype} does not match expected dtype "
                                 f"{self._dtype}.")
        if self._cube is not None:
            self._cube[place] = frame
        else:
            assert self._stack is not None
            try:
                self._stack.add(frame)
            except OutputError as err:  # stcal's tofile raises the OSError itself
                self.close()
                raise _os_error(err) from err
            except MedstackError as err:
                raise ValueError(str(err)) from err
        self._seen.add(place)

    def evaluate(self) -> np.ndarray:
        """The median of the frames appended, (ny, nx) of ``dtype``: bit for bit stcal's
        ``nanmedian3D`` over them (see the Notes); NaN where no frame has a value."""
        if self._result is not None:  # a second call: the same values, a new array
            return self._result.copy()
        try:
            if self._cube is not None:
                self._result = _numpy_nanmedian3D(self._cube[sorted(self._seen)], True)
            elif not self._seen:
                self._result = np.full(self._frame_shape, np.nan, dtype=self._dtype)
            else:
                assert self._stack is not None
                self._result = self._stack.median()
        except OutputError as err:  # from the stack's median
            raise _os_error(err) from err
        finally:
            self.close()
        return self._result

    def close(self) -> None:
        """Free the frames and remove the temporary folder (idempotent)."""
        if self._stack is not None:
            self._stack.close()
        self._cube = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


#: Each module that binds stcal's names at import (``from ... import``), stcal's own (where
#: each name is defined) first; jwst's coron and spectroscopic paths reach ``nanmedian3D``
#: through its ``utils``.
_TARGETS: dict[str, tuple[str, ...]] = {
    "stcal.outlier_detection.median": ("MedianComputer", "nanmedian3D"),
    "stcal.outlier_detection.utils": ("compute_weight_threshold",),
    "jwst.outlier_detection.utils": ("MedianComputer", "nanmedian3D", "compute_weight_threshold"),
    "jwst.outlier_detection.tso": ("nanmedian3D", "compute_weight_threshold"),
    "romancal.outlier_detection.outlier_detection": ("MedianComputer", "compute_weight_threshold"),
}
#: (module, name) -> the object :func:`uninstall` puts back.
_ORIGINALS: dict[tuple[str, str], object] = {}


def _patch(module: Any) -> None:
    for name in _TARGETS[module.__name__]:
        if not hasattr(module, name):
            continue
        current, ours = getattr(module, name), globals()[name]
        if current is ours:  # bound from a stcal module patched already: stcal's is the original
            home = next(m for m, names in _TARGETS.items() if name in names)
            current = _ORIGINALS.get((home, name), current)
        _ORIGINALS.setdefault((module.__name__, name), current)
        setattr(module, name, ours)


class _Loader(importlib.abc.Loader):
    """The module's own loader (every attribute), then :func:`_patch` while installed."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        if installed():
            _patch(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder:
    """A ``sys.meta_path`` finder that wraps the loader of the modules in :data:`_TARGETS`."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):  # a legacy finder
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


_FINDER = _Finder()


def install() -> None:
    """Put medstack's ``MedianComputer``, ``nanmedian3D`` and ``compute_weight_threshold`` into
    stcal, jwst and romancal, the modules imported already and those imported later (idempotent).
    """
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    for name in _TARGETS:
        if name in sys.modules:
            _patch(sys.modules[name])


def uninstall() -> None:
    """Put stcal's own objects back everywhere :func:`install` replaced them (idempotent)."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for (module_name, name), original in _ORIGINALS.items():
        if module_name in sys.modules:
            setattr(sys.modules[module_name], name, original)
    _ORIGINALS.clear()


def installed() -> bool:
    """Whether :func:`install` is in force."""
    return _FINDER in sys.meta_path
