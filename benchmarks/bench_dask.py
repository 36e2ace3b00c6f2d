"""Local engine vs Dask: the same median on this machine's threads and on a Dask LocalCluster.

For each stack (default: 10 × 4096² and 200 × 1024², minmed) it times

- ``threads``: the local engine (``--scheduler threads``, all cores);
- ``dask-local N``: the whole call with ``--scheduler dask-local --workers N`` (starting and
  closing the LocalCluster included), for N = 1 and 2;
- ``client N``: the run alone on an already started LocalCluster of N workers (``client=``,
  workers started as ``dask-local`` starts them),

each writing ``ROOT_med.fits`` without keeping the array (what the command line does), checks
that every output file is byte-identical to the local engine's, and prints the times and the
ratio to the local engine (the Dask overhead). Stacks are made with
:func:`medstack.extras.demo.make_stack` (or a plain generator when that is missing).

Usage::

    .venv/bin/python benchmarks/bench_dask.py                     # both stacks, temporary folder
    .venv/bin/python benchmarks/bench_dask.py --stacks 10x4096 --workdir /tmp/bench --repeat 3
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from medstack import median_image


def make_stack(outdir: Path, n_images: int, shape: tuple[int, int], seed: int) -> list[str]:
    """The stack: medstack.extras.demo's when available, else noise + cosmic rays + weight holes."""
    try:
        from medstack.extras.demo import make_stack as demo_stack
    except ImportError:
        demo_stack = None
    if demo_stack is not None:
        return [str(p) for p in demo_stack(outdir, n_images, shape, seed)]
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n_images):
        sci = rng.normal(0.0, 1.0, shape).astype(np.float32)
        hits = rng.random(shape) < 0.002
        sci[hits] += rng.uniform(50, 2000, int(hits.sum())).astype(np.float32)
        wht = np.full(shape, 500.0, dtype=np.float32)
        wht[rng.random(shape) < 0.02] = 0.0
        header = fits.Header({"EXPTIME": 500.0, "MDRIZSKY": 40.0, "READNSE": 5.0})
        root = outdir / f"bench{i + 1:03d}"
        fits.PrimaryHDU(sci.astype(">f4"), header).writeto(f"{root}_single_sci.fits",
                                                           overwrite=True)
        fits.PrimaryHDU(wht.astype(">f4")).writeto(f"{root}_single_wht.fits", overwrite=True)
        names.append(f"{root}_single_sci.fits")
    return names


REPEAT = 1


def _timed(names: list[str], out: Path, params: dict, **how) -> float:
    """Best wall time of REPEAT runs."""
    out.mkdir(parents=True, exist_ok=True)
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        median_image(names, out / "bench", keep_data=False, **params, **how)
        best = min(best, time.perf_counter() - start)
    return best


def _same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def _warm(combine_type: str) -> None:
    """Import what the tasks need and load (or compile) the kernel: in this process and in the
    workers of a pre-started cluster, so that "run only" times measure runs only."""
    import medstack.executors.dask  # noqa: F401
    from medstack.kernels import CombineSpec, ImageScalars, combine_section
    from medstack.params import validate

    spec = CombineSpec.from_params(validate(combine_type=combine_type))
    rng = np.random.default_rng(0)
    sci = rng.normal(size=(3, 8, 8)).astype(np.float32)
    wht = np.ones((3, 8, 8), dtype=np.float32)
    combine_section(sci, wht, spec, thresholds=np.zeros(3), rows=(1, 7),
                    scalars=ImageScalars.of([1.0] * 3, [0.0] * 3, [1.0] * 3))


def bench_stack(label: str, names: list[str], work: Path, params: dict, workers: list[int],
                threads: int) -> list[tuple[str, float, bool]]:
    """Time every configuration on one stack; return (name, seconds, identical)."""
    import dask
    import distributed

    rows: list[tuple[str, float, bool]] = []
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    _warm(params["combine_type"])
    ref = work / "threads"
    rows.append((f"threads ({threads} threads)", _timed(names, ref, params, workers=threads),
                 True))
    for n in workers:
        out = work / f"dask-local-{n}"
        seconds = _timed(names, out, params, scheduler="dask-local", workers=n)
        rows.append((f"dask-local, {n} worker(s), start+close included", seconds,
                     _same_files(out, ref)))
    # the workers dask-local starts: without distributed's MALLOC_TRIM_THRESHOLD_ (docs/dask.md)
    no_trim = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    for n in workers:
        with dask.config.set(no_trim), \
                distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address=":0",
                                         silence_logs=logging.CRITICAL) as cluster, \
                distributed.Client(cluster, set_as_default=False) as client:
            client.run(_warm, params["combine_type"])
            out = work / f"client-{n}"
            seconds = _timed(names, out, params, client=client)
            rows.append((f"running LocalCluster, {n} worker(s), run only", seconds,
                         _same_files(out, ref)))
    local = rows[0][1]
    after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{label}: {params}  (load average before: {load}; after: {after})")
    print(f"  {'configuration':<52} {'seconds':>8} {'vs local':>9}  identical")
    for name, seconds, same in rows:
        print(f"  {name:<52} {seconds:8.2f} {seconds / local:8.2f}x  {'yes' if same else 'NO'}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", default="10x4096,200x1024",
                        help="comma-separated NxSIZE stacks (N images of SIZE²); default "
                        "%(default)s")
    parser.add_argument("--combine-type", default="minmed", help="default %(default)s")
    parser.add_argument("--workers", default="1,2", help="Dask worker counts; default %(default)s")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per configuration; the best time is shown (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of the local engine; default all cores")
    parser.add_argument("--workdir", help="where to write the stacks, kept there for the next "
                        "run (default: a temporary folder, removed afterwards)")
    args = parser.parse_args(argv)
    from medstack.core.plan import default_workers

    global REPEAT
    REPEAT = max(1, args.repeat)

    threads = args.threads or default_workers()
    workers = [int(w) for w in args.workers.split(",")]
    params = {"combine_type": args.combine_type}
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-dask-"))
    print(f"machine: {os.cpu_count()} CPUs, {threads} usable; stacks in {root}; best of "
          f"{REPEAT} run(s) per configuration")
    try:
        for spec in args.stacks.split(","):
            n, size = (int(x) for x in spec.lower().split("x"))
            label = f"{n} x {size}x{size}"
            stack_dir = root / f"stack-{n}x{size}"
            start = time.perf_counter()
            names = sorted(str(p) for p in stack_dir.glob("*_single_sci.fits"))
            if len(names) != n:
                names = make_stack(stack_dir, n, (size, size), seed=1)
                print(f"{label}: stack written in {time.perf_counter() - start:.1f} s")
            work = root / f"out-{n}x{size}"
            shutil.rmtree(work, ignore_errors=True)
            bench_stack(label, names, work, params, workers, threads)
            shutil.rmtree(work, ignore_errors=True)
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
