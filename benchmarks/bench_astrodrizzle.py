"""AstroDrizzle with and without medstack as its median step, side by side in one run.

A dithered stack of N copies of the real ACS/HRC exposure (:mod:`medstack.extras.fltstack`) is run
through the whole AstroDrizzle pipeline with ``driz_sep_scale`` a quarter of the native scale
(so each single has 16 times the pixels of the exposure), three times, each in a fresh
process and a fresh copy of the inputs:

1. ``medstack, first run``: medstack installed (``medstack.drizzlepac.install()``), the
   first run of this benchmark (medstack's kernels are compiled at installation, so a fresh
   environment, a container or a CI runner, pays nothing more: this row shows it).
2. ``drizzlepac``: AstroDrizzle as drizzlepac ships it.
3. ``medstack, warm``: medstack installed again, its files now in the page cache.

For each run it prints AstroDrizzle's own timing of the "Create Median" step (from the
trailer file's timing summary) and of the whole run, and whether the median, every
``*_crmask.fits`` and ``final_drz_sci.fits`` are bit-identical to drizzlepac's.

Usage (drizzlepac must be importable: ``pip install ".[drizzlepac]"``, which ``make venv``
does)::

    python benchmarks/bench_astrodrizzle.py [-n 6] [--scale-factor 4] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

RUNNER = r"""
import glob, sys, time
mode, scale, cores = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
from drizzlepac import astrodrizzle
if mode == "medstack":
    import medstack.drizzlepac
    medstack.drizzlepac.install()
start = time.perf_counter()
astrodrizzle.AstroDrizzle(sorted(glob.glob("*_flt.fits")), output="final", preserve=False,
                          runfile="adrizzle.log", context=False, build=False,
                          num_cores=cores, driz_sep_scale=scale)
print("WALL", time.perf_counter() - start)
"""

#: native pixel scale of ACS/HRC, arcsec
HRC_SCALE = 0.025


def log(text: str = "") -> None:
    print(text, flush=True)


def step_seconds(trailer: Path) -> dict[str, float]:
    """AstroDrizzle's timing summary: step name -> seconds."""
    times = {}
    for line in trailer.read_text(errors="replace").splitlines():
        found = re.match(r"^\[INFO\s*\]\s+(\S.*?)\s{2,}([0-9.]+) sec\s*$", line)
        if found:
            times[found.group(1).strip()] = float(found.group(2))
    return times


def run(folder: Path, flts: list[str], mode: str, scale: float, cores: int) -> dict[str, float]:
    folder.mkdir(parents=True)
    for name in flts:
        shutil.copy(name, folder)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, mode, str(scale), str(cores)],
                          cwd=folder, capture_output=True, text=True)
    process = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"{mode} run failed in {folder}")
    times = step_seconds(folder / "adrizzle.log")
    times["process"] = process
    return times


def identical(a: Path, b: Path) -> str:
    names = ["final_med.fits", *sorted(p.name for p in a.glob("*_crmask.fits")),
             "final_drz_sci.fits"]
    same = []
    for name in names:
        x, y = fits.getdata(a / name), fits.getdata(b / name)
        same.append(x.dtype == y.dtype and x.tobytes() == y.tobytes())
    return f"{sum(same)}/{len(same)} products bit-identical"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=6, help="input exposures (default 6)")
    parser.add_argument("--scale-factor", type=float, default=4.0,
                        help="driz_sep_scale = native / this (default 4)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="AstroDrizzle's num_cores (default: all)")
    parser.add_argument("--workdir", default=None, help="folder for the runs (default /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the runs' folders")
    args = parser.parse_args()

    from medstack import __version__
    from medstack.extras.fltstack import make_flt_stack

    work = Path(tempfile.mkdtemp(prefix="medstack-bench-ad-", dir=args.workdir))
    try:
        flts = make_flt_stack(work / "flt", n=args.n, seed=11)
        scale = HRC_SCALE / args.scale_factor
        import drizzlepac

        log(f"AstroDrizzle with and without medstack {__version__} (drizzlepac "
            f"{drizzlepac.__version__}, numpy {np.__version__}, "
            f"Python {platform.python_version()}, {os.cpu_count()} cores)")
        log(f"{args.n} dithered ACS/HRC exposures, driz_sep_scale {scale:g}\" "
            f"(native / {args.scale_factor:g}), num_cores {args.cores}")
        runs = {}
        for label, mode in (("medstack, first run", "medstack"), ("drizzlepac", "drizzlepac"),
                            ("medstack, warm", "medstack")):
            folder = work / label.replace(", ", "-").replace(" ", "-")
            runs[label] = (folder, run(folder, flts, mode, scale, args.cores))
        with fits.open(runs["drizzlepac"][0] / "j8bt06naq_single_sci.fits") as hdul:
            ny, nx = hdul[0].data.shape
        log(f"singles: {ny} x {nx} float32 ({ny * nx * 4 / 2**20:.0f} MiB each)\n")
        ref = runs["drizzlepac"][1]
        log(f"{'run':<22}{'Create Median s':>17}{'AstroDrizzle s':>16}{'process s':>11}"
            f"{'step ratio':>12}{'run ratio':>11}  products")
        for label, (folder, times) in runs.items():
            step, total = times.get("Create Median", float("nan")), times.get("Total", 0.0)
            ratio = ref["Create Median"] / step
            whole = ref["Total"] / total
            same = "reference" if label == "drizzlepac" else identical(runs["drizzlepac"][0],
                                                                       folder)
            log(f"{label:<22}{step:>17.2f}{total:>16.2f}{times['process']:>11.2f}"
                f"{ratio:>11.1f}x{whole:>10.2f}x  {same}")
        first = runs["medstack, first run"][1]["Create Median"]
        warm = runs["medstack, warm"][1]["Create Median"]
        log(f"\nfirst run: {first - warm:+.2f} s against the warm run")
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
