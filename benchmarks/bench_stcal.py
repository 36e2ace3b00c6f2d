"""stcal 1.20.0's outlier-detection median against medstack.stcal, side by side.

Each case runs in its own subprocess, once per implementation and mode (in memory, on disk):
the frames are made one at a time into one reused buffer (allocated and touched before the
baseline), appended, and the median evaluated. Reported: append+evaluate seconds, the growth
of the peak RSS over the baseline taken after a warm-up, the peak bytes in the temporary folder
(sampled every 10 ms), and whether the medians are equal bit for bit.

Cases:

- dense: 10 frames of 4096^2, every pixel valid;
- sparse: 32 frames of 4096^2, each valid only in its own 1024^2 block (a mosaic of pointings);
- large (``--large``): 64 frames of 12288^2, each valid in its own 2048^2 block. stcal would
  need 36 GiB of memory or temporary disk there; with ``--large`` only medstack runs it unless
  ``--large-stcal`` is given.

Then ``compute_weight_threshold`` on one 4096^2 weight image.

Run from the repository root (stcal from the project's .venv: ``make venv``)::

    .venv/bin/python benchmarks/bench_stcal.py [--large] [--only dense,sparse]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CASES = {  # name: (frames, mosaic side, block side)
    "dense": (10, 4096, 4096),
    "sparse": (32, 4096, 1024),
    "large": (64, 12288, 2048),
}


def _block_origin(index: int, side: int, block: int) -> tuple[int, int]:
    per_row = side // block
    spot = index % (per_row * per_row)
    return (spot // per_row) * block, (spot % per_row) * block


def _noise_pool(n: int, block: int, seed: int = 7) -> np.ndarray:
    """Noise about 1 with 2 % cosmic rays, enough for ``n`` shifted ``block``^2 windows."""
    rng = np.random.default_rng(seed)
    pool = rng.normal(1.0, 0.05, block * block + 7919 * n).astype(np.float32)
    pool[rng.random(pool.size) < 0.02] += 30
    return pool


def _fill(buf: np.ndarray, pool: np.ndarray, index: int, block: int) -> None:
    """Frame ``index``: its block of noise (a window of the pool), NaN elsewhere; no
    temporaries, so the RSS growth is the median's own."""
    if block < buf.shape[0]:
        buf.fill(np.nan)
    y0, x0 = _block_origin(index, buf.shape[0], block)
    start = 7919 * index
    buf[y0:y0 + block, x0:x0 + block] = pool[start:start + block * block].reshape(block, block)


def _status_bytes(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` (the peak RSS of this process image) from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak_rss() -> None:
    """Start ``VmHWM`` afresh from the current RSS (Linux >= 4.0; else it counts from exec,
    which the warm-up precedes anyway). ``ru_maxrss`` is not used: a child inherits its
    parent's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


class _DiskPeak(threading.Thread):
    """The most bytes the files under ``folder`` held, sampled every 10 ms."""

    def __init__(self, folder: str) -> None:
        super().__init__(daemon=True)
        self.folder, self.peak, self._stop_event = folder, 0, threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.01):
            total = 0
            for root, _dirs, files in os.walk(self.folder):
                for name in files:
                    try:
                        total += os.stat(os.path.join(root, name)).st_size
                    except OSError:
                        pass
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def _child(spec: str, impl: str, mode: str, out: str) -> None:
    n, side, block = (int(v) for v in spec.split("x"))
    if impl == "stcal":
        from stcal.outlier_detection.median import MedianComputer
    else:
        from medstack.stcal import MedianComputer
    in_memory = mode == "memory"
    # warm-up: imports, the kernels, a small run; the frame buffer made and touched
    warm = MedianComputer((3, 64, 64), in_memory, tempdir=tempfile.gettempdir())
    for i in range(3):
        warm.append(np.full((64, 64), float(i), np.float32), i)
    warm.evaluate()
    buf = np.full((side, side), np.nan, np.float32)  # touched: resident before the baseline
    pool = _noise_pool(n, block)
    _reset_peak_rss()
    baseline = _status_bytes("VmRSS")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        disk = _DiskPeak(tmp)
        disk.start()
        seconds = 0.0  # append + evaluate, the frames' making left out
        t0 = time.perf_counter()
        computer = MedianComputer((n, side, side), in_memory, tempdir=tmp)
        for i in range(n):
            seconds += time.perf_counter() - t0
            _fill(buf, pool, i, block)
            t0 = time.perf_counter()
            computer.append(buf, i)
        median = computer.evaluate()
        seconds += time.perf_counter() - t0
        peak_disk = disk.stop()
    np.save(out, median)
    print(json.dumps({"seconds": seconds, "rss_growth": _status_bytes("VmHWM") - baseline,
                      "disk": peak_disk}))


def _run(case: str, impl: str, mode: str, out: Path) -> dict[str, float]:
    spec = "x".join(str(v) for v in CASES[case])
    run = subprocess.run([sys.executable, __file__, "--child", spec, impl, mode, str(out)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        return {"error": run.stderr.strip().splitlines()[-1]}  # type: ignore[dict-item]
    return json.loads(run.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _weight_threshold() -> None:
    from stcal.outlier_detection.utils import compute_weight_threshold as theirs

    from medstack.stcal import compute_weight_threshold as ours

    rng = np.random.default_rng(3)
    weight = rng.gamma(4.0, 0.5, (4096, 4096)).astype(np.float32)
    weight[rng.random(weight.shape) < 0.1] = 0
    times, values = {}, {}
    for name, fn in (("stcal", theirs), ("medstack", ours)):
        t0 = time.perf_counter()
        values[name] = np.float64(fn(weight, 0.7))
        times[name] = time.perf_counter() - t0
    same = values["stcal"].view(np.uint64) == values["medstack"].view(np.uint64)
    print(f"compute_weight_threshold, one 4096^2 weight: stcal {times['stcal']:.2f} s, "
          f"medstack {times['medstack']:.2f} s; bits equal: {bool(same)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--only", default="dense,sparse", help="cases, comma-separated")
    parser.add_argument("--large", action="store_true", help="also the 64 x 12288^2 case")
    parser.add_argument("--large-stcal", action="store_true", help="run stcal on it too")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each case; the quickest is shown. Default is 1")
    parser.add_argument("--quick", action="store_true", help="small stacks, for smoke-testing")
    args = parser.parse_args()
    if args.quick:
        CASES.update(dense=(10, 512, 512), sparse=(32, 512, 128), large=(64, 1536, 256))
    if args.child:
        _child(*args.child)
        return
    cases = args.only.split(",") + (["large"] if args.large else [])
    mib = 2**20
    print(f"{'case':<8} {'mode':<7} {'impl':<9} {'seconds':>8} {'RSS+ MiB':>9} "
          f"{'temp MiB':>9} {'covered MiB':>11}  bits")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            n, side, block = CASES[case]
            covered = n * block * block * 4 / mib
            for mode in ("memory", "disk"):
                rows = {}
                impls = ["stcal", "medstack"]
                if case == "large" and not args.large_stcal:
                    impls = ["medstack"]
                for impl in impls:
                    runs = [_run(case, impl, mode, Path(tmp) / f"{impl}.npy")
                            for _ in range(args.repeat)]
                    rows[impl] = min(runs, key=lambda r: r.get("seconds", 0.0))
                same = "-"
                if len(rows) == 2 and all("error" not in r for r in rows.values()):
                    a, b = (np.load(Path(tmp) / f"{impl}.npy") for impl in impls)
                    same = str(np.array_equal(a.view(np.uint32), b.view(np.uint32)))
                for impl, r in rows.items():
                    if "error" in r:
                        print(f"{case:<8} {mode:<7} {impl:<9} {r['error']}")
                        continue
                    print(f"{case:<8} {mode:<7} {impl:<9} {r['seconds']:8.2f} "
                          f"{r['rss_growth'] / mib:9.0f} {r['disk'] / mib:9.0f} "
                          f"{covered:11.0f}  {same}")
                if len(rows) == 2 and all("error" not in r for r in rows.values()):
                    print(f"{'':<8} {mode:<7} speed-up {rows['stcal']['seconds'] / rows['medstack']['seconds']:.1f}x")
    _weight_threshold()


if __name__ == "__main__":
    main()
