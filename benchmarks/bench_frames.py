"""FrameStack against NumPy's nanmedian of the dense cube, as stcal computes it.

Two cases: (a) ``dense``: 10 frames of 4096² float32; (b) ``sparse``: 32 frames, each a 1024²
block at its own place in a 4096² mosaic (NaN elsewhere). Three ways: ``numpy`` (the frames
appended into one (N, 4096, 4096) cube and stcal's ``nanmedian3D`` loop, ``np.nanmedian`` row
by row), ``frames`` (FrameStack in memory) and ``frames-disk`` (FrameStack, every frame
spilled). Each run is a subprocess: after a warm-up, its peak RSS is reset
(``/proc/self/clear_refs``), so the growth is the run's own; the caller's one frame buffer is
made before. Times are append + median. The bits of every result are compared by SHA-256.

    .venv/bin/python benchmarks/bench_frames.py [--cases dense sparse] [--workers N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
import warnings

import numpy as np

SIDE = 4096


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def frames_of(case: str):  # type: ignore[no-untyped-def]
    """(number, fill(buffer, i)): the case's frames written into one reused buffer."""
    rng = np.random.default_rng(7)
    if case == "dense":
        values = rng.normal(size=(SIDE, SIDE)).astype(np.float32)
        shifts = rng.integers(0, SIDE, size=10)

        def fill_dense(buf: np.ndarray, i: int) -> None:
            buf[:] = np.roll(values, int(shifts[i]), axis=1)
            buf[::97, ::89] = np.nan
        return 10, fill_dense
    block = rng.normal(size=(1024, 1024)).astype(np.float32)
    places = rng.integers(0, SIDE - 1024, size=(32, 2))

    def fill_sparse(buf: np.ndarray, i: int) -> None:
        y, x = (int(v) for v in places[i])
        buf[:] = np.nan
        buf[y:y + 1024, x:x + 1024] = block * np.float32(1 + i / 32)
    return 32, fill_sparse


def child(case: str, way: str, workers: int) -> dict:
    from medstack import FrameStack

    n, fill = frames_of(case)
    buf = np.empty((SIDE, SIDE), np.float32)
    with FrameStack((64, 64), kernel="auto") as warm:  # load the kernels
        warm.add(np.ones((64, 64), np.float32))
        warm.median()
    np.nanmedian(np.ones((3, 4, 4), np.float32), axis=0)
    fill(buf, 0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS
    base = _rss_kib("VmRSS")
    seconds = 0.0
    disk = 0
    if way == "numpy":
        t = time.perf_counter()
        cube = np.empty((n, SIDE, SIDE), np.float32)
        seconds += time.perf_counter() - t
        for i in range(n):
            fill(buf, i)
            t = time.perf_counter()
            cube[i] = buf
            seconds += time.perf_counter() - t
        t = time.perf_counter()
        out = np.empty((SIDE, SIDE), np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for r in range(SIDE):  # stcal's nanmedian3D
                np.nanmedian(cube[:, r, :], axis=0, overwrite_input=True, out=out[r])
        seconds += time.perf_counter() - t
    else:
        stack = FrameStack((SIDE, SIDE), in_memory=way == "frames", workers=workers,
                           tempdir="/tmp")
        for i in range(n):
            fill(buf, i)
            t = time.perf_counter()
            stack.add(buf)
            seconds += time.perf_counter() - t
        t = time.perf_counter()
        out = stack.median()
        seconds += time.perf_counter() - t
        disk = stack.peak_spilled_bytes
    growth = (_rss_kib("VmHWM") - base) * 1024
    return {"seconds": seconds, "rss_growth": growth, "disk": disk,
            "sha256": hashlib.sha256(out.tobytes()).hexdigest()}


def covered_bytes(case: str) -> int:
    n, fill = frames_of(case)
    buf = np.empty((SIDE, SIDE), np.float32)
    total = 0
    for i in range(n):
        fill(buf, i)
        ok = ~np.isnan(buf)
        rows, cols = np.flatnonzero(ok.any(axis=1)), np.flatnonzero(ok.any(axis=0))
        total += (rows[-1] + 1 - rows[0]) * (cols[-1] + 1 - cols[0]) * 4
    return int(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=["dense", "sparse"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.workers)))
        return
    mib = 2**20
    print(f"{'case':7} {'way':12} {'seconds':>8} {'speed-up':>8} {'RSS growth':>11} "
          f"{'temp disk':>10} {'(RSS-median)/covered':>20} {'disk/covered':>12} bits")
    for case in args.cases:
        covered = covered_bytes(case)
        rows = {}
        for way in ("numpy", "frames", "frames-disk"):
            cmd = [sys.executable, __file__, "--child", case, way]
            if args.workers:
                cmd += ["--workers", str(args.workers)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            rows[way] = json.loads(done.stdout.strip().splitlines()[-1])
        ref = rows["numpy"]
        median = SIDE * SIDE * 4  # the result itself, held by every way
        for way, r in rows.items():
            held = (r["rss_growth"] - median) / covered
            print(f"{case:7} {way:12} {r['seconds']:8.2f} {ref['seconds'] / r['seconds']:7.1f}x "
                  f"{r['rss_growth'] / mib:8.0f} MiB {r['disk'] / mib:6.0f} MiB {held:19.2f}x "
                  f"{r['disk'] / covered:11.2f}x "
                  f"{'equal' if r['sha256'] == ref['sha256'] else 'DIFFER'}")
        print(f"{case:7} covered bytes: {covered / mib:.0f} MiB; median: "
              f"{SIDE * SIDE * 4 / mib:.0f} MiB")


if __name__ == "__main__":
    main()
