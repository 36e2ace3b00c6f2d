"""The frames' nanmedian kernels: reference, compiled and ``np.nanmedian`` bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from medstack.kernels import fast_unavailable
from medstack.kernels.framemedian import FrameRows, combine_frames, footprint, rectangles
from medstack.kernels.reference import nanmedian

KERNELS = ["reference"] + ([] if fast_unavailable() else ["fast"])
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, 3e38, -3e38, 1.7e308, 1e-45, -1e-45, 5e-324,
                    1.0, 1.0, 2.5, -2.5, np.nan])


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32 if a.dtype == np.float32 else np.uint64)


def numpy_median(cube: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(cube, axis=0)


def combine(cube: np.ndarray, kernel: str, boxes=None) -> np.ndarray:
    """The median of a dense cube through combine_frames (each frame whole, or cut to a box)."""
    rows, cols = cube.shape[1:]
    parts = []
    for i, frame in enumerate(cube):
        y0, y1, x0, x1 = boxes[i] if boxes is not None else (0, rows, 0, cols)
        if y1 > y0 and x1 > x0:
            parts.append(FrameRows(i, frame[y0:y1, x0:x1], y0, x0))
    out = np.empty((rows, cols), cube.dtype)
    ngood = np.empty((rows, cols), np.uint16)
    combine_frames(parts, out, ngood, cube.shape[0], kernel)
    assert np.array_equal(ngood, np.count_nonzero(~np.isnan(cube), axis=0))
    return out


def random_cube(rng: np.random.Generator, n: int, pixels: int, dtype: type) -> np.ndarray:
    if rng.random() < 0.5:
        values = rng.choice(SPECIAL, size=(n, 1, pixels))
    else:  # ties: few distinct values
        values = np.round(rng.normal(size=(n, 1, pixels)), int(rng.integers(0, 3)))
    with np.errstate(over="ignore"):
        cube = values.astype(dtype)
    cube[rng.random(cube.shape) < rng.choice([0.0, 0.3, 0.9, 1.0])] = np.nan
    return cube


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parity_with_numpy_every_size(dtype: type) -> None:
    rng = np.random.default_rng(11)
    sizes = list(range(1, 40)) + [63, 64, 65, 128, 599, 600, 601, 650, 700]
    for n in sizes:
        for _ in range(2 if n < 100 else 1):
            cube = random_cube(rng, n, 64 if n < 100 else 6, dtype)
            want = bits(numpy_median(cube))
            for kernel in KERNELS:
                got = bits(combine(cube, kernel))
                assert np.array_equal(got, want), (n, kernel)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [3, 40, 600])
def test_overlapping_footprints(dtype: type, n: int) -> None:
    """Frames cut to boxes (NaN outside) give what the dense cube gives."""
    rng = np.random.default_rng(n)
    rows, cols = (9, 11) if n >= 600 else (40, 50)
    cube = np.full((n, rows, cols), np.nan, dtype)
    boxes = []
    for i in range(n):
        y0, x0 = int(rng.integers(0, rows)), int(rng.integers(0, cols))
        y1, x1 = int(rng.integers(y0, rows + 1)), int(rng.integers(x0, cols + 1))
        boxes.append((y0, y1, x0, x1))
        with np.errstate(over="ignore"):
            cube[i, y0:y1, x0:x1] = rng.choice(SPECIAL[:-1], size=(y1 - y0, x1 - x0))
    want = bits(numpy_median(cube))
    for kernel in KERNELS:
        assert np.array_equal(bits(combine(cube, kernel, boxes)), want)


def test_rectangles_have_constant_cover() -> None:
    a = FrameRows(0, np.zeros((4, 4), np.float32), 0, 0)
    b = FrameRows(1, np.zeros((4, 4), np.float32), 2, 2)
    rects = rectangles([b, a], 6, 8)
    covered = {(r0, r1, c0, c1): [p.index for p in cover] for r0, r1, c0, c1, cover in rects}
    assert covered == {(0, 2, 0, 4): [0], (2, 4, 0, 2): [0], (2, 4, 2, 4): [0, 1],
                       (2, 4, 4, 6): [1], (4, 6, 2, 6): [1]}


@pytest.mark.parametrize("kernel", KERNELS)
def test_hand_computed(kernel: str) -> None:
    def med(values: list[float], n: int, dtype: type = np.float32) -> np.ndarray:
        cube = np.full((n, 1, 1), np.nan, dtype)
        cube[:len(values), 0, 0] = values
        return combine(cube, kernel)[0, 0]

    with np.errstate(over="ignore"):
        assert med([3e38], 3) == np.inf  # x + x overflows, then halves
        assert med([3e38], 600) == np.float32(3e38)  # the value itself
        assert med([3e38, 3e38], 600) == np.inf  # (a + b) / 2 in float32
    assert med([3e38, 3e38], 4, np.float64) == 3e38
    assert med([1.0, 2.0, 4.0, 8.0], 4) == 3.0
    assert np.isnan(med([np.inf, -np.inf], 2))
    assert bits(np.array(med([-0.0, -0.0, -0.0], 3))) == 0  # +0.0, as NumPy
    assert bits(np.array(med([-0.0], 601))) == 0
    assert bits(np.array(med([], 5))) == 0x7FC00000  # the canonical NaN


def test_last_frames_nan_from_600_frames() -> None:
    """From 600 frames on NumPy returns the last frame's own NaN where no frame has data."""
    for kernel in KERNELS:
        cube = np.full((600, 1, 2), np.nan, np.float32)
        cube.view(np.uint32)[-1, 0, 0] = 0xFFC00001
        cube[0, 0, 1] = 1.0
        assert np.array_equal(bits(combine(cube, kernel)), bits(numpy_median(cube)))
        assert bits(combine(cube, kernel))[0, 0] == 0xFFC00001


def test_reference_is_numpy_on_a_dense_block() -> None:
    rng = np.random.default_rng(5)
    cube = random_cube(rng, 7, 100, np.float32)[:, 0]
    med, count = nanmedian(cube, 7)
    assert np.array_equal(bits(med), bits(numpy_median(cube)))
    assert np.array_equal(count, np.count_nonzero(~np.isnan(cube), axis=0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_footprint(dtype: type) -> None:
    rng = np.random.default_rng(9)
    assert footprint(np.full((5, 130), np.nan, dtype), "fast" if "fast" in KERNELS else
                     "reference") is None
    for _ in range(200):
        frame = np.full((7, 130), np.nan, dtype)
        for _ in range(int(rng.integers(1, 4))):
            frame[int(rng.integers(0, 7)), int(rng.choice([0, 1, 63, 64, 65, 127, 128, 129,
                                                            int(rng.integers(0, 130))]))] = 1.0
        rows = np.flatnonzero(~np.isnan(frame).all(axis=1))
        cols = np.flatnonzero(~np.isnan(frame).all(axis=0))
        want = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
        for kernel in KERNELS:
            assert footprint(frame, kernel) == want
            assert footprint(frame[:, 1:], kernel) == footprint(~np.isnan(frame[:, 1:]))
            assert footprint(frame.astype(frame.dtype.newbyteorder(">")), kernel) == want
