"""Speed at every scale, in one run, side by side: the table of docs/performance.md.

One run prints one table with a row per scale, medstack beside drizzlepac 3.11.0 (its own
``_median``, the function AstroDrizzle's "Create Median" step runs, on the same files) or
beside the floor that applies:

1. The step in a warm process, median and minmed, 10 × 4096² (``median_image`` vs
   ``_median``; best of 3 vs one run), bit-identical or not.
2. The whole process: the ``medstack`` command vs ``python drizzlepac_median.py`` (the
   drizzlepac import included).
3. The median against a plain NumPy pass over the same bytes (science once, weights twice,
   memory-mapped, all cores: a sum of each file).
4. The first run after a fresh ``pip install`` (6 × 1024²) against the next one
   (``--no-fresh-venv`` skips it; about two minutes).
5. ``medstack --version``, ``--help`` and a 3 × 64² median run, whole process (best of 5).
6. A cold page cache (needs root): the median step in a warm process (its kernels loaded),
   after dropping the cache, against ``cat`` of the same 20 files after dropping it; and the
   whole process, medstack against drizzlepac, with the libraries read back into the cache
   first (a tiny run of each), as for any but a machine's first run.
7. 1,500 inputs with the open-file limit at 256 (soft and hard, so that it cannot be raised),
   against the same run without the limit: seconds and the same bits.
8. Peak RSS against ``--max-memory``: 120 × 1024² at 48 MiB and the 1,500 inputs at 64 MiB
   (far below N × 2 × ``combine_bufsize``), over the baseline of the same command on a tiny
   stack (interpreter, libraries, compiled kernels loaded).

Usage::

    python benchmarks/bench_scale.py [--quick] [--no-fresh-venv] [--dpython PATH]
                                     [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from astropy.io import fits

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_speed import (  # noqa: E402
    MASKPT,
    drizzlepac,
    log,
    medstack_command,
    medstack_compute,
    same_bits,
    table,
    timed_process,
    warm,
)


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
    """``pip install .`` into a fresh venv (which compiles the C kernels), then the first and
    the next run of minmed and median in it."""
    venv = work / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    t0 = time.perf_counter()
    subprocess.run([*pip, "install", str(ROOT)], check=True, capture_output=True)
    install = time.perf_counter() - t0
    command = [str(venv / "bin" / "medstack")]
    out = work / "fresh-out"
    rows = [["pip install . (fresh venv, the C kernels compiled)", f"{install:.1f}", ""]]
    for ctype in ("minmed", "median"):
        first = timed_process([*command, *files, "-o", str(out), "--combine-type", ctype])
        again = timed_process([*command, *files, "-o", str(out), "--combine-type", ctype])
        rows.append([f"{ctype}: first run / next run", f"{first['wall']:.2f}",
                     f"{again['wall']:.2f}"])
    return rows


def default_dpython() -> str | None:
    """A Python with drizzlepac 3.11.0: benchmarks/.venv-drizzlepac, else the project's
    .venv (the drizzlepac extra), else none."""
    for python in (HERE / ".venv-drizzlepac" / "bin" / "python", ROOT / ".venv" / "bin" / "python"):
        if python.exists() and subprocess.run(
                [str(python), "-c", "import drizzlepac.createMedian"],
                capture_output=True).returncode == 0:
            return str(python)
    return None


def plain_pass(files: list[str], workers: int, repeat: int = 3) -> float:
    """Best seconds of a plain NumPy pass: every science file once and every weight file twice,
    memory-mapped, summed, on ``workers`` threads."""
    whts = [f.replace("_single_sci", "_single_wht") for f in files]

    def total(name: str) -> float:
        with fits.open(name, memmap=True) as hdul:
            return float(np.sum(hdul[0].data, dtype=np.float64))

    best = float("inf")
    with ThreadPoolExecutor(workers) as pool:
        for _ in range(repeat):
            t0 = time.perf_counter()
            list(pool.map(total, whts))
            list(pool.map(total, files + whts))
            best = min(best, time.perf_counter() - t0)
    return best


#: The step on cold files in a warm process: kernels loaded by a tiny run, then the page cache
#: dropped, then ``median_image`` timed (argv: output root, the 3 tiny inputs, the stack).
COLD_STEP = """
import os, sys, time
from medstack import median_image
median_image(sys.argv[2:5], kernel="fast", keep_data=False)
os.sync()
with open("/proc/sys/vm/drop_caches", "w") as fh:
    fh.write("3\\n")
t0 = time.perf_counter()
median_image(sys.argv[5:], sys.argv[1], keep_data=False, combine_type="median")
print(time.perf_counter() - t0)
"""


def limited(n_files: int):  # type: ignore[no-untyped-def]
    """A preexec_fn that sets the open-file limit to ``n_files``, soft and hard."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n_files, n_files))

    return apply


def rss_run(cmd: list[str], preexec=None) -> tuple[float, float, str]:  # type: ignore[no-untyped-def]
    """Wall seconds, peak RSS (MiB) and stdout of a command."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        t0 = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd],
                              capture_output=True, text=True, preexec_fn=preexec)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
        peak = float(rss.read().strip().splitlines()[-1]) / 1024
    return wall, peak, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small stacks and no fresh venv, for smoke-testing (a minute)")
    parser.add_argument("--no-fresh-venv", action="store_true", help="skip row 4")
    parser.add_argument("--dpython", default=None, help="Python with drizzlepac==3.11.0 "
                        "(default: benchmarks/.venv-drizzlepac, else the project's .venv)")
    parser.add_argument("--workdir", default=None, help="folder for the stacks (default /tmp)")
    args = parser.parse_args()
    import medstack

    quick = args.quick
    n_main, size = (4, 1024) if quick else (10, 4096)
    n_many, size_many = (300, 64) if quick else (1500, 128)
    n_budget, size_budget = (24, 512) if quick else (120, 1024)
    dpython = args.dpython or default_dpython()
    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="medstack-bench-scale-", dir=args.workdir))
    command = medstack_command()
    log(f"medstack {medstack.__version__}: speed at every scale ({'quick' if quick else 'full'}); "
        f"{cores} cores, load average {os.getloadavg()[0]:.2f} at start")
    log(f"drizzlepac: {dpython or 'not found (its columns left out)'}")
    rows: list[list[str]] = []

    def row(what: str, dp: str, ms: str, ratio: str, note: str = "") -> None:
        rows.append([what, dp, ms, ratio, note])
        log(f"   {what}: drizzlepac {dp}, medstack {ms}, {ratio} {note}")

    try:
        t_start = time.perf_counter()
        files = make_stack(work / "main", n_main, size)
        warm(files)
        out = work / "out"
        out.mkdir()
        label = f"{n_main} x {size}^2"
        # 1-2. the step and the whole process
        step: dict[str, float] = {}
        for ctype in ("median", "minmed"):
            ms = medstack_compute(files, out / f"ms_{ctype}", 3, combine_type=ctype)
            step[ctype] = ms
            procs = [timed_process([*command, *files, "-o", str(out / f"msp_{ctype}"),
                                    "--combine-type", ctype, "--combine-maskpt", str(MASKPT)])
                     for _ in range(3)]
            msp = min(p["wall"] for p in procs)
            if dpython:
                dp = drizzlepac(dpython, files, ctype, out / f"dp_{ctype}")
                same = same_bits(dp["path"], Path(f"{out / f'msp_{ctype}'}_med.fits"))
                row(f"step, warm process, {ctype}, {label}", f"{dp['compute']:.2f} s",
                    f"{ms:.3f} s", f"{dp['compute'] / ms:.1f}x",
                    "bit-identical" if same else "NOT bit-identical")
                row(f"whole process, {ctype}", f"{dp['process']:.2f} s", f"{msp:.2f} s",
                    f"{dp['process'] / msp:.1f}x")
            else:
                row(f"step, warm process, {ctype}, {label}", "-", f"{ms:.3f} s", "-")
                row(f"whole process, {ctype}", "-", f"{msp:.2f} s", "-")
        # 3. the plain pass
        plain = plain_pass(files, cores)
        row("median vs a plain NumPy pass (sci once, wht twice)", "-",
            f"{step['median']:.3f} s vs {plain:.3f} s", f"{step['median'] / plain:.2f}x")
        shutil.rmtree(out, ignore_errors=True)

        # 4. first run after a fresh install
        if not (quick or args.no_fresh_venv):
            first = make_stack(work / "first", 6, 1024)
            for what, seconds, again in fresh_venv(work, first):
                row(f"fresh venv: {what}", "-", f"{seconds} s" + (f" / {again} s" if again else ""),
                    "-")
            shutil.rmtree(work / "fresh-venv", ignore_errors=True)

        # 5. start-up
        tiny = make_stack(work / "tiny", 3, 64)
        row("medstack --version, whole process", "-", f"{best_of([*command, '--version']):.3f} s",
            "-")
        row("medstack --help, whole process", "-", f"{best_of([*command, '--help']):.3f} s", "-")
        tiny_run = [*command, *tiny, "-o", str(work / "tiny-out"), "--combine-type", "median"]
        row("3 x 64^2 median run, whole process", "-", f"{best_of(tiny_run):.3f} s", "-")

        # 6. cold page cache
        everything = [*files, *(f.replace("_single_sci", "_single_wht") for f in files)]
        cold_run = [*command, *files, "-o", str(work / "cold-out"), "--combine-type", "median"]
        if drop_caches():
            t0 = time.perf_counter()
            subprocess.run(["cat", *everything], stdout=subprocess.DEVNULL, check=True)
            cat = time.perf_counter() - t0
            # the step in a warm process (kernels loaded by a tiny run), the stack's files cold
            done = subprocess.run([sys.executable, "-c", COLD_STEP, str(work / "cold-step"),
                                   *tiny, *files], capture_output=True, text=True, check=True)
            step_cold = float(done.stdout.split()[-1])
            row(f"cold page cache, median, {label}: the step, warm process", "-",
                f"{step_cold:.2f} s", f"{step_cold / cat:.2f}x cat",
                f"cat of the {len(everything)} files, cold: {cat:.2f} s")
            drop_caches()
            # the libraries back in the cache (as for any but the first run of the day): a tiny
            # run on the compiled kernels; the stack's files stay cold
            timed_process([*tiny_run[:-2], "--kernel", "fast"])
            cold = timed_process(cold_run)
            dp_cold = "-"
            if dpython:
                drop_caches()
                drizzlepac(dpython, tiny, "median", work / "dp-tiny")  # its libraries
                dp_cold = f"{drizzlepac(dpython, files, 'median', work / 'dp-cold')['process']:.2f} s"
            row("cold page cache, median: whole process", dp_cold, f"{cold['wall']:.2f} s",
                f"{float(dp_cold[:-2]) / cold['wall']:.1f}x" if dpython else "-")
        else:
            row("cold page cache", "-", "skipped: dropping the cache needs root", "-")
        shutil.rmtree(work / "main", ignore_errors=True)

        # 7. many inputs under a low open-file limit
        many = make_stack(work / "many", n_many, size_many)
        free_run = [*command, *many, "-o", str(work / "many-free"), "--combine-type", "median"]
        low_run = [*command, *many, "-o", str(work / "many-low"), "--combine-type", "median"]
        t_free, _, _ = rss_run(free_run)
        t_low, _, _ = rss_run(low_run, preexec=limited(256))
        same = same_bits(work / "many-free_med.fits", work / "many-low_med.fits")
        row(f"{n_many} inputs of {size_many}^2, open-file limit 256 (hard)", "-",
            f"{t_low:.2f} s (no limit: {t_free:.2f} s)", "runs",
            "bit-identical" if same else "NOT bit-identical")

        # 8. peak RSS against --max-memory
        base_run = [*command, *tiny, "-o", str(work / "tiny-base"), "--max-memory", "48MiB"]
        base = min(rss_run(base_run)[1] for _ in range(3))
        _, peak_many, _ = rss_run([*low_run[:-2], "--max-memory", "64MiB", "-o",
                                   str(work / "many-budget")], preexec=limited(256))
        row(f"peak RSS, {n_many} inputs, --max-memory 64MiB (N x 2 x bufsize = "
            f"{n_many * 2} MiB)", "-", f"{peak_many - base:.0f} MiB over the baseline",
            f"{(peak_many - base) / 64:.2f} of the budget", f"baseline {base:.0f} MiB")
        shutil.rmtree(work / "many", ignore_errors=True)
        budget = make_stack(work / "budget", n_budget, size_budget)
        warm(budget)
        for ctype in ("median", "minmed"):
            t_b, peak, _ = rss_run([*command, *budget, "-o", str(work / "budget-out"),
                                    "--combine-type", ctype, "--max-memory", "48MiB"])
            row(f"peak RSS, {n_budget} x {size_budget}^2 {ctype}, --max-memory 48MiB", "-",
                f"{peak - base:.0f} MiB over the baseline ({t_b:.2f} s)",
                f"{(peak - base) / 48:.2f} of the budget", f"baseline {base:.0f} MiB")
        log(f"\nall in {time.perf_counter() - t_start:.0f} s\n")
        table(rows, ["what", "drizzlepac", "medstack", "ratio", "note"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
