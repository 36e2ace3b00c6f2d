"""The frames door (FrameStack): NumPy's nanmedian of frames added one at a time, footprints
in memory or spilled, memory and disk following the covered pixels, cleanup, bad input."""

from __future__ import annotations

import errno
import os
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from medstack import FrameStack, InputError, OutputError, ParameterError
from medstack.io import framestore
from medstack.kernels import fast_unavailable

KERNELS = ["reference"] + ([] if fast_unavailable() else ["fast"])


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def numpy_median(frames: list[np.ndarray]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(np.stack(frames), axis=0)


def mosaic(n: int, shape=(120, 160), block=(30, 40), dtype=np.float32, seed=0):
    """n frames, each a block at its own place (NaN elsewhere, some NaN inside)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        f = np.full(shape, np.nan, dtype)
        y, x = rng.integers(0, shape[0] - block[0] + 1), rng.integers(0, shape[1] - block[1] + 1)
        part = np.round(rng.normal(size=block), 1).astype(dtype)
        part[rng.random(block) < 0.05] = np.nan
        f[y:y + block[0], x:x + block[1]] = part
        frames.append(f)
    return frames


def spill_folders(where: Path) -> list[Path]:
    return sorted(where.glob("medstack-frames-*"))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("how", [dict(), dict(in_memory=False), dict(read_bytes=3000, workers=2),
                                 dict(max_memory="3MiB", read_bytes=20000, workers=1)])
def test_mosaic_matches_numpy(kernel: str, how: dict, tmp_path: Path) -> None:
    frames = mosaic(25)
    with FrameStack((120, 160), kernel=kernel, tempdir=str(tmp_path), **how) as stack:
        for f in frames:
            stack.add(f)
        assert stack.n_frames == 25
        got = stack.median()
    assert got.dtype == np.float32 and got.shape == (120, 160)
    assert np.array_equal(bits(got), bits(numpy_median(frames)))
    assert spill_folders(tmp_path) == []


@pytest.mark.parametrize("in_memory", [True, False])
def test_frames_at_an_angle_are_tiled(in_memory: bool) -> None:
    """Diamonds (frames at 45°) keep about their own pixels, not their bounding boxes."""
    ny, nx = 700, 500
    yy, xx = np.mgrid[:ny, :nx]
    rng = np.random.default_rng(4)
    frames, valid = [], 0
    for i in range(6):
        cy, cx = 300 + 20 * i, 200 + 15 * i
        inside = np.abs(yy - cy) + np.abs(xx - cx) < 250
        f = np.where(inside, np.round(rng.normal(size=(ny, nx)), 1), np.nan).astype(np.float32)
        frames.append(f)
        valid += int(inside.sum()) * 4
    with FrameStack((ny, nx), in_memory=in_memory) as stack:
        for f in frames:
            stack.add(f)
        held = stack.stored_bytes + stack.spilled_bytes
        assert valid < held < 1.5 * valid  # the bounding boxes: 2 x valid
        got = stack.median()
    assert np.array_equal(bits(got), bits(numpy_median(frames)))


@pytest.mark.parametrize("n", [1, 2, 601])
def test_float64_and_the_600_frame_path(n: int) -> None:
    frames = mosaic(n, shape=(6, 7), block=(3, 4), dtype=np.float64, seed=n)
    with FrameStack((6, 7), "float64") as stack:
        for f in frames:
            stack.add(f)
        got = stack.median()
    assert got.dtype == np.float64
    assert np.array_equal(bits(got), bits(numpy_median(frames)))


def test_weight_threshold_and_mask_as_stcal_callers() -> None:
    rng = np.random.default_rng(1)
    frames = mosaic(6, seed=2)
    weights = [rng.random(f.shape).astype(np.float32) for f in frames]
    masks = [rng.random(f.shape) < 0.1 for f in frames]
    kept = [f.copy() for f in frames]
    expected = []
    for f, w, m in zip(frames, weights, masks):
        g = f.copy()
        g[w < np.float64(0.3)] = np.nan  # what stcal's callers do
        g[m] = np.nan
        expected.append(g)
    with FrameStack((120, 160)) as stack:
        for f, w, m in zip(frames, weights, masks):
            stack.add(f, weight=w, threshold=0.3, mask=m)
        got = stack.median()
    assert np.array_equal(bits(got), bits(numpy_median(expected)))
    for f, k in zip(frames, kept):  # the caller's arrays are untouched
        assert np.array_equal(bits(f), bits(k))


def test_all_nan_frames_count() -> None:
    frames = [np.full((5, 5), np.nan, np.float32), np.arange(25, dtype=">f4").reshape(5, 5),
              np.full((5, 5), np.nan, np.float32)]  # a big-endian frame is read as it is
    with FrameStack((5, 5), in_memory=False) as stack:
        for f in frames:
            stack.add(f)
        assert (stack.n_frames, stack.spilled_bytes) == (3, 100)
        got = stack.median()
    assert np.array_equal(bits(got), bits(numpy_median(frames)))


def test_memory_and_disk_follow_covered_pixels(tmp_path: Path) -> None:
    """40 frames of 128² in a 1024² mosaic: the stack holds its covered bytes, not 40 × the
    mosaic; with a budget the rest goes to disk, and the folder goes when done."""
    shape, block, n = (1024, 1024), (128, 128), 40
    covered = n * block[0] * block[1] * 4
    frame = np.full(shape, np.nan, np.float32)  # the caller's buffer, reused
    rng = np.random.default_rng(3)
    places = [(int(rng.integers(0, 896)), int(rng.integers(0, 896))) for _ in range(n)]

    def feed(stack: FrameStack) -> None:
        for y, x in places:
            frame[:] = np.nan
            frame[y:y + 128, x:x + 128] = rng.normal(size=block)
            stack.add(frame)

    out_bytes = shape[0] * shape[1] * 4
    transient = shape[0] * shape[1] * 5  # one frame's mask and an unmasked crop
    tracemalloc.start()
    try:
        sections = 2 * (1 << 18)  # two sections in flight (one worker), read_bytes each
        with FrameStack(shape, workers=1, read_bytes=1 << 18) as stack:
            feed(stack)
            assert stack.stored_bytes == covered
            stack.median()
        peak = tracemalloc.get_traced_memory()[1]
        assert peak <= out_bytes + transient + covered + sections  # 40 × mosaic: 160 MiB
        assert peak <= out_bytes + transient + 1.5 * covered
        tracemalloc.reset_peak()
        budget = 13 << 20  # the median, a frame's transients, sections; 2 MiB of frames
        with FrameStack(shape, max_memory=budget, tempdir=str(tmp_path), workers=1,
                        read_bytes=1 << 20) as stack:
            feed(stack)
            folder = spill_folders(tmp_path)[0]
            on_disk = sum(p.stat().st_size for p in folder.iterdir())
            assert stack.spilled_bytes == on_disk > 0 and stack.stored_bytes > 0
            assert on_disk + stack.stored_bytes == covered
            stack.median()
            assert stack.peak_spilled_bytes == on_disk
        assert tracemalloc.get_traced_memory()[1] <= budget
    finally:
        tracemalloc.stop()
    assert spill_folders(tmp_path) == []


def test_cleanup_after_error_and_interrupt(tmp_path: Path, monkeypatch) -> None:
    frames = mosaic(4)

    def interrupt(self, r0, r1):
        raise KeyboardInterrupt

    for error in (KeyboardInterrupt, RuntimeError):
        def fail(self, r0, r1, error=error):
            raise error("injected")
        monkeypatch.setattr(framestore.StoredFrame, "rows", fail)
        stack = FrameStack((120, 160), in_memory=False, tempdir=str(tmp_path))
        for f in frames:
            stack.add(f)
        assert len(spill_folders(tmp_path)) == 1
        with pytest.raises(error):
            stack.median()
        assert spill_folders(tmp_path) == []
        monkeypatch.undo()
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C between two frames
        with FrameStack((120, 160), in_memory=False, tempdir=str(tmp_path)) as stack:
            stack.add(frames[0])
            raise KeyboardInterrupt
    assert spill_folders(tmp_path) == []


def test_current_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with FrameStack((120, 160), in_memory=False, tempdir="") as stack:
        stack.add(mosaic(1)[0])
        assert len(spill_folders(tmp_path)) == 1
    assert spill_folders(tmp_path) == []


def test_full_disk_and_unwritable_tempdir(tmp_path: Path, monkeypatch) -> None:
    def full(path: str, arrays: list) -> None:
        with open(path, "xb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    stack = FrameStack((120, 160), in_memory=False, tempdir=str(tmp_path))
    stack.add(mosaic(1)[0])
    monkeypatch.setattr(framestore, "_write", full)
    with pytest.raises(OutputError, match="medstack-frames-.*No space left") as err:
        stack.add(mosaic(1)[0])
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="closed"):
        stack.median()
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(OutputError, match=str(not_a_folder)):
        FrameStack((120, 160), in_memory=False, tempdir=str(not_a_folder)).add(mosaic(1)[0])
    assert os.listdir(tmp_path) == ["file"]


def test_bad_input(tmp_path: Path) -> None:
    good = mosaic(1)[0]
    with FrameStack((120, 160), max_frames=2, in_memory=False, tempdir=str(tmp_path)) as stack:
        with pytest.raises(InputError, match="no frames added"):
            FrameStack((120, 160)).median()
        stack.add(good)
        for bad, what in [(good[:, :10], r"frame 1: frame has shape \(120, 10\)"),
                          (good[None], r"frame 1: frame has shape \(1, 120, 160\)"),
                          (good.astype(np.float64), "frame 1: frame has dtype float64"),
                          (np.zeros(good.shape, np.int32), "frame 1: frame has dtype int32")]:
            with pytest.raises(InputError, match=what):
                stack.add(bad)
        with pytest.raises(InputError, match="frame 1: mask has dtype"):
            stack.add(good, mask=np.zeros(good.shape, np.uint8))
        with pytest.raises(InputError, match="frame 1: weight and threshold"):
            stack.add(good, weight=np.ones(good.shape))
        stack.add(good)
        with pytest.raises(InputError, match="frame 2: more than max_frames = 2"):
            stack.add(good)
        assert stack.n_frames == 2
    assert spill_folders(tmp_path) == []
    for kwargs, name in [(dict(shape=(0, 3)), "shape"), (dict(shape=(3, 3), dtype="int16"),
                                                         "dtype"),
                         (dict(shape=(3, 3), max_memory="lots"), "max_memory"),
                         (dict(shape=(3, 3), max_memory=10), "max_memory"),
                         (dict(shape=(3, 3), max_frames=0), "max_frames"),
                         (dict(shape=(3, 3), workers=0), "workers")]:
        with pytest.raises(ParameterError, match=f"^{name}: "):
            FrameStack(**kwargs)


def test_outside_footprint_nan_payload_deviation() -> None:
    """docs/deviations.md: from 600 frames on, where no frame has data NumPy returns the
    last frame's own NaN; outside that frame's footprint the stack keeps no payload and
    returns the canonical NaN."""
    frames = [np.full((2, 3), np.nan, np.float32) for _ in range(600)]
    frames[0][0, 0] = 1.0
    frames[-1].view(np.uint32)[:] = 0xFFC00001
    frames[-1][1, 2] = 5.0  # its footprint: one pixel
    with FrameStack((2, 3)) as stack:
        for f in frames:
            stack.add(f)
        got = stack.median()
    want = numpy_median(frames)
    assert bits(want)[0, 1] == 0xFFC00001 and bits(got)[0, 1] == 0x7FC00000
    assert np.array_equal(got[~np.isnan(got)], want[~np.isnan(want)])


@pytest.fixture(scope="module")
def dask_client():
    """A client of a 2-process LocalCluster on 127.0.0.1, for this module's Dask tests."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_on_dask_the_workers_read_the_spilled_tiles(dask_client, dtype, tmp_path: Path) -> None:
    """On Dask every frame is spilled and the workers read its tiles by name, offset, dtype and
    shape: the same bits as NumPy (and the threads), the spill folder removed afterwards."""
    frames = mosaic(9, dtype=dtype, seed=4)
    with FrameStack((120, 160), dtype=np.dtype(dtype).name, client=dask_client,
                    tempdir=str(tmp_path), read_bytes=6000) as stack:
        for f in frames:
            stack.add(f)
        assert stack.stored_bytes == 0 and stack.spilled_bytes > 0  # none held in memory
        got = stack.median()
    assert got.dtype == dtype
    assert np.array_equal(bits(got), bits(numpy_median(frames)))
    assert spill_folders(tmp_path) == []


def test_on_dask_frames_are_not_held_in_memory(dask_client) -> None:
    with pytest.raises(ParameterError, match="^in_memory: "):
        FrameStack((8, 8), client=dask_client, in_memory=True)
    with pytest.raises(ParameterError, match="^scheduler: "):
        FrameStack((8, 8), scheduler="nowhere")
