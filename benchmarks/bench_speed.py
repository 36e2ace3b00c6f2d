"""Speed benchmark for issue #4: medstack against drizzlepac 3.11.0's median step.

One run prints, side by side:

1. drizzlepac ``_median`` vs medstack per combine type on N × size² (default 10 × 4096²):
   compute seconds (drizzlepac: the ``_median`` call; medstack: the ``median_image`` call, in a
   warm process), whole-process seconds (``drizzlepac_median.py`` vs the ``medstack`` command,
   imports included), their ratios, and whether the outputs are bit-identical.
2. medstack's phases (open, weight means, sections, write) for median and minmed.
3. median vs a plain pass over the same data: ``sum`` with weight masks off.
4. medstack with 1 and 2 worker threads.
5. Peak resident memory of the ``medstack`` command against the bound
   ``baseline + 4 × N × 2 × bufsize MiB + 64 MiB`` at size² and at 8192², where ``baseline`` is
   the command's peak on a tiny stack (imports and compiled kernels loaded).
6. Time per pixel per input image over N (3, 5, 10, 25, 64, 200, 500) on a smaller stack.

Stacks are written by :func:`medstack.extras.demo.make_stack` into a temporary folder under ``/tmp``
(``--workdir``) and removed afterwards (``--keep`` keeps them). drizzlepac runs in its own
environment (``--dpython``; ``make bench`` builds ``benchmarks/.venv-drizzlepac``); without one
the drizzlepac columns are left out. ``--quick`` runs everything on small stacks in about a
minute, for smoke-testing.

Usage::

    python benchmarks/bench_speed.py [--quick] [--dpython PATH] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from medstack.params import DEFAULT_BUFSIZE_MIB

HERE = Path(__file__).resolve().parent
DRIZZLEPAC_SCRIPT = HERE / "drizzlepac_median.py"
MAIN_TYPES = ("median", "minmed")
ALL_TYPES = ("median", "minmed", "mean", "sum")
MASKPT = 0.7  # medstack's default; passed to drizzlepac too (AstroDrizzle's default is 0.3)


def log(text: str = "") -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------
# running things


def timed_process(cmd: Sequence[str], env: dict[str, str] | None = None) -> dict:
    """Run ``cmd``; its wall seconds, peak RSS (MiB), stdout and stderr."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        timer = ["/usr/bin/time", "-f", "%M", "-o", rss.name] if Path("/usr/bin/time").exists() \
            else []
        t0 = time.perf_counter()
        proc = subprocess.run([*timer, *cmd], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        peak = float(rss.read().strip().splitlines()[-1]) / 1024 if timer else float("nan")
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"wall": wall, "rss": peak, "stdout": proc.stdout, "stderr": proc.stderr}


def medstack_command() -> list[str]:
    script = Path(sys.executable).with_name("medstack")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from medstack.cli import main; sys.exit(main())"]


def read_data(path: Path) -> np.ndarray:
    with fits.open(path, memmap=False) as hdul:
        return np.asarray(hdul[0].data, dtype=np.float32)


def same_bits(a: Path, b: Path) -> bool:
    x, y = read_data(a), read_data(b)
    return x.shape == y.shape and np.array_equal(x.view(np.uint32), y.view(np.uint32))


def per_image_scalars(files: Sequence[str]) -> tuple[list[float], list[float], list[float]]:
    """exptime, sky (electrons) and readnoise as medstack reads them from the headers."""
    from medstack.io.inputs import scalars_from_header

    values = [scalars_from_header(fits.getheader(f)) for f in files]
    return ([v[0] for v in values], [v[1] or 0.0 for v in values], [v[2] or 0.0 for v in values])


def drizzlepac(dpython: str, files: Sequence[str], ctype: str, root: Path) -> dict:
    exptime, sky, readnoise = per_image_scalars(files)
    cmd = [dpython, str(DRIZZLEPAC_SCRIPT), "--sci", *files,
           "--exptime", *map(repr, exptime), "--sky", *map(repr, sky),
           "--readnoise", *map(repr, readnoise), "--combine-type", ctype,
           "--combine-maskpt", str(MASKPT), "--output", str(root)]
    run = timed_process(cmd)
    timing = json.loads(run["stdout"].strip().splitlines()[-1])
    return {"compute": timing["compute_s"], "process": run["wall"], "rss": run["rss"],
            "path": Path(f"{root}_med.fits")}


def medstack_process(files: Sequence[str], root: Path, args: Sequence[str] = ()) -> dict:
    run = timed_process([*medstack_command(), *files, "-o", str(root), "--combine-maskpt",
                         str(MASKPT), *args])
    return {"process": run["wall"], "rss": run["rss"], "path": Path(f"{root}_med.fits")}


def medstack_compute(files: Sequence[str], root: Path | None, repeat: int, *,
                     engine_only: bool = False, **params) -> float:
    """Best wall seconds of the ``median_image`` call (warm process), output written; with
    ``engine_only``, of its engine run alone (inputs already opened and checked)."""
    from medstack import median_image

    params.setdefault("combine_maskpt", MASKPT)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = median_image(list(files), root, keep_data=False, **params)
        best = min(best, result.seconds if engine_only else time.perf_counter() - t0)
    return best


def phases(files: Sequence[str], ctype: str, workers: int, root: Path) -> dict[str, float]:
    """Seconds of each step of one run, done step by step as :func:`medstack.core.run.run`
    does them (which overlaps the writing with the sections)."""
    from concurrent.futures import ThreadPoolExecutor

    from medstack.core.plan import prepare
    from medstack.core.unit import SectionBuffers, compute_section
    from medstack.core.weights import thresholds_of, weight_groups, weight_stats_many
    from medstack.io.inputs import open_inputs
    from medstack.io.readers import open_reader
    from medstack.io.writer import FitsImageWriter
    from medstack.params import validate

    out: dict[str, float] = {}
    t = time.perf_counter()
    images = open_inputs(list(files))
    plan = prepare(images, validate({"combine_type": ctype, "combine_maskpt": MASKPT}))
    sci = [open_reader(i.sci, i.sci_hdu) for i in images]
    wht = [open_reader(i.wht, i.wht_hdu) for i in images]
    out["open inputs"] = time.perf_counter() - t
    try:
        with ThreadPoolExecutor(workers) as pool:
            t = time.perf_counter()
            groups = weight_groups(len(wht), workers)
            stats = [st for part in pool.map(lambda g: weight_stats_many(
                [wht[i] for i in g], plan.section_rows), groups) for st in part]
            thresholds = thresholds_of(plan, stats)
            out["weight means"] = time.perf_counter() - t
            buffers = SectionBuffers()
            t = time.perf_counter()
            results = list(pool.map(lambda s: compute_section(
                plan, s, sci, wht, thresholds, "fast", buffers)[0], plan.sections))
            out["sections"] = time.perf_counter() - t
        t = time.perf_counter()
        writer = FitsImageWriter(Path(f"{root}_med.fits"), plan.shape, np.float32)
        for section, result in zip(plan.sections, results):
            writer.write_rows(section.out[0], result.median)
        out["write"] = time.perf_counter() - t
        t = time.perf_counter()
        writer.commit()
        out["fsync+rename"] = time.perf_counter() - t
    finally:
        for reader in sci + wht:
            reader.close()
    return out


# ---------------------------------------------------------------------------------------------
# stacks


@contextlib.contextmanager
def stack(workdir: Path, name: str, n: int, shape: tuple[int, int], keep: bool
          ) -> Iterator[list[str]]:
    from medstack.extras.demo import make_stack

    folder = workdir / name
    t0 = time.perf_counter()
    files = [str(p) for p in make_stack(folder, n, shape, seed=1)]
    log(f"   (generated {n} x {shape[0]}x{shape[1]} in {time.perf_counter() - t0:.0f} s: "
        f"{folder})")
    try:
        yield files
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def read_floor(files: Sequence[str], workers: int) -> dict[str, float]:
    """Seconds to read the science files, and the weight files, once each (8 MiB preads into
    one buffer per thread, all threads): the floor under any pass over the data."""
    from concurrent.futures import ThreadPoolExecutor

    def read_all(names: list[str]) -> float:
        def one(name: str) -> None:
            buf = bytearray(8 << 20)
            fd = os.open(name, os.O_RDONLY)
            try:
                pos = 0
                while n := os.preadv(fd, [buf], pos):
                    pos += n
            finally:
                os.close(fd)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, names))
        return time.perf_counter() - t0

    scis = list(files)
    whts = [f.replace("_single_sci", "_single_wht") for f in files]
    return {"sci": min(read_all(scis) for _ in range(3)),
            "wht": min(read_all(whts) for _ in range(3))}


def warm(files: Sequence[str]) -> None:
    """Read every input once, so all runs see a warm page cache."""
    for f in files:
        for name in (f, f.replace("_single_sci", "_single_wht")):
            with open(name, "rb") as fh:
                while fh.read(1 << 24):
                    pass


# ---------------------------------------------------------------------------------------------
# the report


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths))
    log("   " + line)
    log("   " + "-" * len(line))
    for r in rows:
        log("   " + "  ".join(str(c).rjust(w) for c, w in zip(r, widths)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small stacks, for smoke-testing")
    parser.add_argument("--dpython", default=str(HERE / ".venv-drizzlepac" / "bin" / "python"),
                        help="Python with drizzlepac==3.11.0 (default: benchmarks/"
                        ".venv-drizzlepac, built by make bench)")
    parser.add_argument("--workdir", default=None, help="folder for the stacks (default: a new "
                        "temporary folder under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated stacks")
    parser.add_argument("--repeat", type=int, default=3, help="medstack timings: best of this "
                        "many runs (default: 3)")
    args = parser.parse_args(argv)

    import medstack

    n_main, size = (6, 1024) if args.quick else (10, 4096)
    size_big, n_big = (2048, 3) if args.quick else (8192, 3)
    n_list = (3, 5, 10, 25) if args.quick else (3, 5, 10, 25, 64, 200, 500)
    size_n = 256 if args.quick else 512
    dpython = args.dpython if Path(args.dpython).exists() else None
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="medstack-bench-",
                                                                          dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    log(f"medstack {medstack.__version__} speed benchmark ({'quick' if args.quick else 'full'})")
    log(f"   machine: {platform.processor() or platform.machine()}, {cores} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start; Python {platform.python_version()}, "
        f"numpy {np.__version__}")
    log(f"   drizzlepac: {dpython or 'not found (drizzlepac columns left out)'}")
    log(f"   medstack timings: best of {args.repeat}; drizzlepac: one run each")
    start = time.perf_counter()
    results: dict[str, dict] = {}
    try:
        # ------------------------------------------------------------------ 1. vs drizzlepac
        log(f"\n1. drizzlepac vs medstack, {n_main} x {size}x{size} float32 "
            f"(defaults: maskpt 0.7, nsigma '4 3', grow 1, bufsize {DEFAULT_BUFSIZE_MIB:g} MiB; "
            "all cores)")
        with stack(workdir, "main", n_main, (size, size), args.keep) as files:
            warm(files)
            out = workdir / "out"
            out.mkdir(exist_ok=True)
            rows = []
            for ctype in ALL_TYPES:
                ms_compute = medstack_compute(files, out / f"ms_{ctype}", args.repeat,
                                              combine_type=ctype)
                procs = [medstack_process(files, out / f"msp_{ctype}", ["--combine-type", ctype])
                         for _ in range(args.repeat)]
                ms = min(procs, key=lambda r: r["process"])
                row = {"ms_compute": ms_compute, "ms_process": ms["process"],
                       "ms_rss": max(p["rss"] for p in procs)}
                if dpython:
                    dp = drizzlepac(dpython, files, ctype, out / f"dp_{ctype}")
                    row.update(dp_compute=dp["compute"], dp_process=dp["process"],
                               dp_rss=dp["rss"], identical=same_bits(dp["path"], ms["path"]))
                results[ctype] = row
                if dpython:
                    rows.append([ctype, f"{row['dp_compute']:.2f}", f"{ms_compute:.3f}",
                                 f"{row['dp_compute'] / ms_compute:.1f}x",
                                 f"{row['dp_process']:.2f}", f"{ms['process']:.2f}",
                                 f"{row['dp_process'] / ms['process']:.1f}x",
                                 "yes" if row["identical"] else "NO"])
                else:
                    rows.append([ctype, "-", f"{ms_compute:.3f}", "-", "-",
                                 f"{ms['process']:.2f}", "-", "-"])
            table(rows, ["type", "dp compute s", "ms compute s", "speed-up", "dp process s",
                         "ms process s", "speed-up", "bit-identical"])
            log("   targets: median and minmed compute >= 20x, whole process >= 5x, "
                "bit-identical")

            # -------------------------------------------------------------- 2. phases
            log("\n2. where medstack's time goes (seconds, all cores)")
            rows = []
            for ctype in MAIN_TYPES:
                best: dict[str, float] = {}
                for _ in range(args.repeat):
                    ph = phases(files, ctype, cores, out / f"ph_{ctype}")
                    best = ph if not best or sum(ph.values()) < sum(best.values()) else best
                rows.append([ctype, *(f"{v:.3f}" for v in best.values()),
                             f"{sum(best.values()):.3f}"])
            table(rows, ["type", *best.keys(), "total"])
            floor = read_floor(files, cores)
            log(f"   reading the files once, no computing: science {floor['sci']:.3f} s, "
                f"weights {floor['wht']:.3f} s; a masked median reads the weights twice "
                f"(mean weight, then sections): {floor['sci'] + 2 * floor['wht']:.3f} s")

            # -------------------------------------------------------------- 3. plain pass
            log("\n3. median vs a plain pass over the same data (compute seconds)")
            plain = medstack_compute(files, out / "plain", args.repeat, combine_type="sum",
                                     median_newmasks=False)
            med_nomask = medstack_compute(files, out / "med_nomask", args.repeat,
                                          combine_type="median", median_newmasks=False)
            sum_masks = results["sum"]["ms_compute"]
            rows = [
                ["median, masks off (reads sci)", f"{med_nomask:.3f}", "sum, masks off",
                 f"{plain:.3f}", f"{med_nomask / plain:.2f}"],
                ["median, masks on (reads sci+wht, wht twice)",
                 f"{results['median']['ms_compute']:.3f}", "sum, masks on",
                 f"{sum_masks:.3f}", f"{results['median']['ms_compute'] / sum_masks:.2f}"],
            ]
            table(rows, ["median run", "s", "plain pass", "s", "ratio"])
            log("   target: ratio <= 1.5")

            # -------------------------------------------------------------- 4. workers
            log(f"\n4. threads (compute seconds, {n_main} x {size}x{size})")
            rows = []
            for ctype in MAIN_TYPES:
                t1 = medstack_compute(files, out / "w1", args.repeat, combine_type=ctype,
                                      workers=1)
                t2 = medstack_compute(files, out / "w2", args.repeat, combine_type=ctype,
                                      workers=2)
                rows.append([ctype, f"{t1:.3f}", f"{t2:.3f}", f"{t1 / t2:.2f}x"])
            table(rows, ["type", "--workers 1", "--workers 2", "speed-up"])

            # -------------------------------------------------------------- 5a. RSS here
            rss_rows = []
            tiny_dir = workdir / "tiny"
            from medstack.extras.demo import make_stack

            tiny = [str(p) for p in make_stack(tiny_dir, 3, (64, 64), seed=2)]
            for ctype in MAIN_TYPES:
                base = min(medstack_process(tiny, tiny_dir / f"t_{ctype}",
                                            ["--combine-type", ctype])["rss"]
                           for _ in range(3))
                bound = base + 4 * n_main * 2 * DEFAULT_BUFSIZE_MIB + 64
                peak = results[ctype]["ms_rss"]
                rss_rows.append([f"{n_main} x {size}^2", ctype, f"{base:.0f}", f"{peak:.0f}",
                                 f"{peak - base:.0f}", f"{bound:.0f}",
                                 "yes" if peak <= bound else "NO",
                                 f"{results[ctype].get('dp_rss', float('nan')):.0f}"])
            shutil.rmtree(out, ignore_errors=True)

        # ------------------------------------------------------------------ 5b. RSS 8192²
        with stack(workdir, "big", n_big, (size_big, size_big), args.keep) as files:
            warm(files)
            out = workdir / "out_big"
            out.mkdir(exist_ok=True)
            for ctype in MAIN_TYPES:
                base = min(medstack_process(tiny, tiny_dir / f"t_{ctype}",
                                            ["--combine-type", ctype])["rss"]
                           for _ in range(3))
                peak = max(medstack_process(files, out / f"big_{ctype}",
                                            ["--combine-type", ctype])["rss"]
                           for _ in range(2))
                bound = base + 4 * n_big * 2 * DEFAULT_BUFSIZE_MIB + 64
                rss_rows.append([f"{n_big} x {size_big}^2", ctype, f"{base:.0f}", f"{peak:.0f}",
                                 f"{peak - base:.0f}", f"{bound:.0f}",
                                 "yes" if peak <= bound else "NO", "-"])
            shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(tiny_dir, ignore_errors=True)
        log(f"\n5. peak RSS of the medstack command (MiB; default bufsize "
            f"{DEFAULT_BUFSIZE_MIB:g} MiB, all cores; baseline: the same command on a 3 x 64x64 "
            "stack)")
        table(rss_rows, ["stack", "type", "baseline", "peak", "peak-baseline",
                         "bound", "within", "drizzlepac"])
        log("   bound = baseline + 4 x N x 2 x bufsize MiB + 64 MiB")

        # ------------------------------------------------------------------ 6. over N
        log(f"\n6. over N: {size_n}x{size_n} images, bufsize {size_n * 64 * 4 / 2**20:g} MiB "
            f"(64-row sections), all cores: seconds of the engine run (inputs opened and "
            f"checked beforehand), and ns per pixel per input image")
        with stack(workdir, "many", max(n_list), (size_n, size_n), args.keep) as files:
            warm(files)
            out = workdir / "out_many"
            out.mkdir(exist_ok=True)
            rows = []
            bufsize = size_n * 64 * 4 / 2**20
            for n in n_list:
                row = [str(n)]
                for ctype in MAIN_TYPES:
                    secs = medstack_compute(files[:n], out / "n", args.repeat, engine_only=True,
                                            combine_type=ctype, combine_bufsize=bufsize)
                    row += [f"{secs:.3f}", f"{secs / (n * size_n * size_n) * 1e9:.2f}"]
                rows.append(row)
            table(rows, ["N", "median s", "ns/px/img", "minmed s", "ns/px/img"])
            shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"\nload average {os.getloadavg()[0]:.2f} at the end; benchmark took "
        f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
