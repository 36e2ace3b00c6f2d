"""Start-up and first-run costs: what a user meets before any pixel is combined.

One run prints, side by side:

1. ``medstack --version`` and ``medstack --help``: whole-process seconds (best of 5).
2. A 3 × 64² median, whole process (best of 5): start-up plus a tiny run.
3. The first run after a fresh ``pip install`` of this checkout into a new virtual
   environment (6 × 1024², minmed and median): the first run of each type (numba compiles its
   kernels), the next run (they load from the cache), and the same after the one-time step
   ``python -m medstack.extras.compile``. ``--no-fresh-venv`` skips this part (it downloads nothing
   new with a warm pip cache, and takes about two minutes).
4. A cold page cache (needs root: ``/proc/sys/vm/drop_caches``): a 10 × 4096² median run,
   whole process, after dropping the cache, against ``cat`` of the same files after dropping
   it, and the same run warm. Skipped, saying so, without root.

Usage::

    python benchmarks/bench_start.py [--quick] [--no-fresh-venv] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_speed import log, medstack_command, table, timed_process  # noqa: E402


def best_of(cmd: list[str], repeat: int = 5, env: dict[str, str] | None = None) -> float:
    return min(timed_process(cmd, env=env)["wall"] for _ in range(repeat))


def make_stack(folder: Path, n: int, size: int) -> list[str]:
    from medstack.extras.demo import make_stack as demo_stack

    return [str(p) for p in demo_stack(folder, n_images=n, shape=(size, size))]


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def fresh_venv(work: Path, files: list[str]) -> list[list[str]]:
    venv = work / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    t0 = time.perf_counter()
    subprocess.run([*pip, "install", str(ROOT)], check=True, capture_output=True)
    install = time.perf_counter() - t0
    command = [str(venv / "bin" / "medstack")]
    out = work / "fresh-out"
    rows = [["pip install . (fresh venv)", f"{install:.1f}", ""]]
    for ctype in ("minmed", "median"):
        first = timed_process([*command, *files, "-o", str(out), "--combine-type", ctype])
        again = timed_process([*command, *files, "-o", str(out), "--combine-type", ctype])
        rows.append([f"{ctype}: first run / next run", f"{first['wall']:.2f}",
                     f"{again['wall']:.2f}"])
    # the one-time step, in a second fresh cache
    cache = work / "fresh-cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    t0 = time.perf_counter()
    subprocess.run([str(venv / "bin" / "python"), "-m", "medstack.extras.compile"], check=True,
                   env=env, capture_output=True)
    rows.append(["python -m medstack.extras.compile (once)", f"{time.perf_counter() - t0:.1f}", ""])
    for ctype in ("minmed", "median"):
        first = timed_process([*command, *files, "-o", str(out), "--combine-type", ctype],
                              env=env)
        rows.append([f"{ctype}: first run after it", f"{first['wall']:.2f}", ""])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small stacks, no fresh venv")
    parser.add_argument("--no-fresh-venv", action="store_true", help="skip part 3")
    parser.add_argument("--workdir", default=None, help="folder for the stacks (default /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the stacks")
    parser.add_argument("--cold-size", type=int, default=None,
                        help="image size of part 4 (default 4096; 1024 with --quick)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medstack-bench-start-", dir=args.workdir))
    command = medstack_command()
    try:
        log("1-2. start-up, whole process, best of 5")
        tiny = make_stack(work / "tiny", 3, 64)
        rows = [
            ["medstack --version", f"{best_of([*command, '--version']):.3f}"],
            ["medstack --help", f"{best_of([*command, '--help']):.3f}"],
            ["3 x 64^2 median run", f"{best_of([*command, *tiny, '-o', str(work / 'tiny-out'), '--combine-type', 'median']):.3f}"],  # noqa: E501
        ]
        table(rows, ["what", "seconds"])

        if not (args.quick or args.no_fresh_venv):
            log("\n3. first run after a fresh pip install of this checkout (6 x 1024^2)")
            files = make_stack(work / "first", 6, 1024)
            table(fresh_venv(work, files), ["what", "seconds", "next run s"])

        size = args.cold_size or (1024 if args.quick else 4096)
        log(f"\n4. cold page cache: 10 x {size}^2 median, whole process")
        files = make_stack(work / "cold", 10, size)
        everything = [*files, *(f.replace("_single_sci", "_single_wht") for f in files)]
        run = [*command, *files, "-o", str(work / "cold-out"), "--combine-type", "median"]
        if drop_caches():
            t0 = time.perf_counter()
            subprocess.run(["cat", *everything], stdout=subprocess.DEVNULL, check=True)
            cat = time.perf_counter() - t0
            drop_caches()
            cold = timed_process(run)["wall"]
            warm_run = best_of(run, 3)
            table([["cat of the 20 files, cold", f"{cat:.2f}", "1.00"],
                   ["medstack median, cold", f"{cold:.2f}", f"{cold / cat:.2f}"],
                   ["medstack median, warm", f"{warm_run:.2f}", f"{warm_run / cat:.2f}"]],
                  ["what", "seconds", "vs cat"])
        else:
            log("skipped: dropping the page cache needs root (/proc/sys/vm/drop_caches)")
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
