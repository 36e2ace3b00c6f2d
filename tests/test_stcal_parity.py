"""medstack.stcal's median against stcal 1.20.0's, bit for bit (uint views of the results).

The sweep: stack sizes from 1 to past numpy's 600-frame switch; float32 and float64; NaN
fractions from none to all (all-NaN pixels and all-NaN frames), frames with data only in a
part of the image (sparse footprints), ±inf, signed zeros, values near the dtype's maximum,
subnormals, ties and NaNs with payloads; ``nanmedian3D``, ``MedianComputer`` in memory and on
disk at several ``buffer_size`` values, including those where stcal raises ``IndexError: Too
many calls to add_image`` (there medstack equals stcal's in-memory result: docs/deviations.md).
The one difference allowed is the frames door's documented one: with 600 frames or more, a
pixel with no data outside the last frame's footprint (its tiles) is the canonical NaN where numpy returns
the last frame's own NaN. The counts of cases and pixels compared are printed.

These tests need stcal (``pip install ".[pipelines]"``, which ``make test`` installs); they
skip without it, except where ``MEDSTACK_REQUIRE_PIPELINES=1`` (CI) makes that an error.
"""

from __future__ import annotations

import gc
import math
import os

import numpy as np
import pytest

if os.environ.get("MEDSTACK_REQUIRE_PIPELINES") == "1":
    import stcal  # noqa: F401  (CI: these tests must run, not skip)
stcal_median = pytest.importorskip("stcal.outlier_detection.median")

import medstack.stcal as ms  # noqa: E402
from medstack.frames import TILE_ROWS  # noqa: E402

#: numpy's median (stcal's side) warns on overflow and inf - inf; medstack's side does not.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                                        "ignore:invalid value encountered:RuntimeWarning")
STCAL_MC = stcal_median.MedianComputer
STCAL_NANMEDIAN3D = stcal_median.nanmedian3D
#: numpy's nanmedian switches algorithm at 600 frames; the sweep goes past it.
NS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33, 64, 101, 256, 599, 600, 601, 640]
DTYPES = ["float32", "float64"]
SHAPE = (70, 48)  # two bands of tiles (64 rows each)
#: ``buffer_size`` values, as functions of (n, ny, nx, itemsize): None, one row per frame, three
#: rows per frame, the whole cube (one section), and one byte (raised to a row by stcal).
BUFFERS = {"none": lambda n, ny, nx, s: None, "1 row": lambda n, ny, nx, s: n * nx * s,
           "3 rows": lambda n, ny, nx, s: 3 * n * nx * s,
           "whole cube": lambda n, ny, nx, s: n * ny * nx * s, "1 byte": lambda n, ny, nx, s: 1}
COUNTS = {"cases": 0, "pixels": 0, "stcal raised": 0, "documented NaN differences": 0}


def _cube(n: int, dtype: str, seed: int) -> np.ndarray:
    """(n, *SHAPE): each column group a kind of value, each row a NaN fraction."""
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    ny, nx = SHAPE
    cube = rng.normal(0, 1, (n, ny, nx)).astype(dtype)
    sign = np.where(rng.random((n, ny, 8)) < 0.5, -1, 1).astype(dtype)
    cube[:, :, 8:16] = rng.integers(0, 3, (n, ny, 8)).astype(dtype)                  # ties
    cube[:, :, 16:24] = sign * np.array(0.0, dtype)                                    # ±0
    cube[:, :, 24:32] = sign * (info.max * rng.uniform(0.5, 1.0, (n, ny, 8))).astype(dtype)
    cube[:, :, 32:40] = sign * (info.smallest_subnormal * rng.integers(0, 9, (n, ny, 8)))
    infs = rng.random((n, ny, 8)) < 0.3                                                # ±inf
    cube[:, :, 40:48][infs] = (sign * np.array(np.inf, dtype))[infs]
    cube[:, :, 44:48] = np.where(rng.random((n, ny, 4)) < 0.3, sign[..., :4] * 0.0,
                                 cube[:, :, 44:48])                                    # mixed
    fractions = np.linspace(0.0, 1.0, ny)                                              # 0..all
    cube[rng.random((n, ny, nx)) < fractions[None, :, None]] = np.nan
    for i in range(n):  # sparse footprints and all-NaN frames
        pick = rng.random()
        if pick < 0.3:
            y0, x0 = rng.integers(0, ny), rng.integers(0, nx)
            keep = np.zeros(SHAPE, bool)
            keep[y0:y0 + rng.integers(1, ny), x0:x0 + rng.integers(1, nx)] = True
            cube[i][~keep] = np.nan
        elif pick < 0.35:
            cube[i] = np.nan
    bits = cube.view(np.uint32 if dtype == "float32" else np.uint64)
    payload = rng.random(cube.shape) < 0.05  # NaNs with other payloads and signs
    nan_bits = np.array([0xFFC00000, 0x7FC00001] if dtype == "float32" else
                        [0xFFF8000000000000, 0x7FF8000000000001], bits.dtype)
    bits[payload] = nan_bits[rng.integers(0, 2, payload.sum())]
    return cube


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _assert_same(ours: np.ndarray, theirs: np.ndarray, cube: np.ndarray) -> None:
    """Bit for bit, except the frames door's documented NaN difference (600 frames or more, a
    pixel with no data outside the last frame's footprint: the canonical NaN)."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    differ = _bits(ours) != _bits(theirs)
    if differ.any():
        n = cube.shape[0]
        valid = ~np.isnan(cube[-1])
        footprint = np.zeros(valid.shape, bool)  # the last frame's tiles
        for t0 in range(0, valid.shape[0], TILE_ROWS):
            band = valid[t0:t0 + TILE_ROWS]
            if band.any():
                rows, cols = np.flatnonzero(band.any(1)), np.flatnonzero(band.any(0))
                footprint[t0 + rows[0]:t0 + rows[-1] + 1, cols[0]:cols[-1] + 1] = True
        canonical = _bits(np.array([np.nan], ours.dtype))[0]
        allowed = (n >= 600) & np.isnan(cube).all(0) & ~footprint & (_bits(ours) == canonical)
        assert np.isnan(theirs[differ]).all()
        assert not (differ & ~allowed).any(), (
            f"{int((differ & ~allowed).sum())} pixels differ: "
            f"{ours[differ & ~allowed][:5]} vs {theirs[differ & ~allowed][:5]}")
        COUNTS["documented NaN differences"] += int(differ.sum())
    COUNTS["cases"] += 1
    COUNTS["pixels"] += ours.size


def _stcal_in_memory(cube: np.ndarray) -> np.ndarray:
    mc = STCAL_MC(cube.shape, True, dtype=cube.dtype.name)
    for i, frame in enumerate(cube):
        mc.append(frame, i)
    return mc.evaluate()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", NS)
def test_parity_sweep(tmp_path, n, dtype):
    cube = _cube(n, dtype, seed=n)
    reference = _stcal_in_memory(cube)
    assert np.array_equal(_bits(reference), _bits(STCAL_NANMEDIAN3D(cube.copy())))
    before = cube.copy()
    _assert_same(ms.nanmedian3D(cube), reference, cube)
    assert np.array_equal(_bits(cube), _bits(before))  # never modified
    ours = ms.MedianComputer(cube.shape, True, dtype=dtype)
    for i, frame in enumerate(cube):
        ours.append(frame, i)
    _assert_same(ours.evaluate(), reference, cube)
    ny, nx = SHAPE
    for name, buffer in BUFFERS.items():
        size = buffer(n, ny, nx, cube.itemsize)
        theirs = STCAL_MC(cube.shape, False, buffer_size=size, dtype=dtype, tempdir=str(tmp_path))
        rows = max(1, min(ny, int((size or ny * nx * cube.itemsize) / n // (nx * cube.itemsize))))
        stcal_raises = math.ceil(ny / rows) < n
        try:
            for frame in cube:
                theirs.append(frame)
        except IndexError:
            assert stcal_raises, name
            COUNTS["stcal raised"] += 1
            expected = reference
        else:
            assert not stcal_raises, name
            expected = theirs.evaluate()
        ours = ms.MedianComputer(cube.shape, False, buffer_size=size, dtype=dtype,
                                 tempdir=str(tmp_path))
        for frame in cube:
            ours.append(frame)
        _assert_same(ours.evaluate(), expected, cube)
        del theirs
    gc.collect()
    assert list(tmp_path.iterdir()) == []  # every temporary folder removed


def test_sweep_counts(capsys):
    """Every case of the sweep ran (after it, in file order); the counts go to the terminal."""
    if COUNTS["cases"] == 0:
        pytest.skip("run with the sweep (tests/test_stcal_parity.py as a whole)")
    per_case = 2 + len(BUFFERS)
    assert COUNTS["cases"] == len(NS) * len(DTYPES) * per_case
    assert COUNTS["pixels"] == COUNTS["cases"] * SHAPE[0] * SHAPE[1]
    assert COUNTS["stcal raised"] > 0
    with capsys.disabled():
        print(f"\nstcal parity sweep: {COUNTS['cases']} cases, {COUNTS['pixels']} pixels "
              f"compared bit for bit; stcal raised IndexError in {COUNTS['stcal raised']} "
              f"on-disk cases (compared with its in-memory result); "
              f"{COUNTS['documented NaN differences']} pixels with the documented NaN payload "
              "difference (600+ frames)")
