"""Build and check medstack's compiled kernels: ``medstack-compile``.

The fast kernels are C (``medstack/kernels/_fast.c``), compiled when medstack is installed
(``pip install``, with the machine's C compiler) and loaded as a library when a run starts:
nothing is compiled at run time, so a first run, a Dask worker or a read-only installation
costs no more than any other run.

This command is for an installation without that library: one made where no C compiler was
present (the installation still succeeds, and runs use the NumPy reference kernels, the same
bits several times slower, with a warning saying so), or a source checkout used through
``PYTHONPATH``. It builds the library beside its source, with ``$CC`` (else the compiler
Python was built with, else ``cc``) and the flags of :mod:`medstack.kernels._build`, then
checks it: every combine type, weight masks on and off, on a small random stack, must give the
reference kernels' bits. Where the library is present it only checks; ``--force`` rebuilds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["build_kernels", "check_kernels", "main"]

#: Every combine type's kernels: (combine_type, median_newmasks).
RUNS: tuple[tuple[str, bool], ...] = tuple(
    (kind, masks) for kind in ("minmed", "median", "mean", "sum") for masks in (True, False)
)


def _tiny_stack(folder: Path, n: int = 4, shape: tuple[int, int] = (40, 36)) -> list[str]:
    from astropy.io import fits

    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        header = fits.Header([("EXPTIME", 100.0), ("MDRIZSKY", 10.0), ("READNSE", 4.0)])
        sci = (rng.normal(0.0, 1.0, shape) + 50.0).astype(">f4")
        sci[rng.random(shape) < 0.02] = 500.0  # cosmic rays for minmed to find
        wht = rng.uniform(50.0, 150.0, shape).astype(">f4")
        wht[0, : i + 1] = 0.0
        fits.PrimaryHDU(sci, header=header).writeto(folder / f"c{i}_single_sci.fits")
        fits.PrimaryHDU(wht).writeto(folder / f"c{i}_single_wht.fits")
        names.append(str(folder / f"c{i}_single_sci.fits"))
    return names


def build_kernels(force: bool = False) -> tuple[Path, float]:
    """Build the compiled library beside its source unless it is there already (or ``force``).

    Returns
    -------
    path, seconds : Path, float
        The library, and how long building it took (0 when it was there).

    Raises
    ------
    OSError
        The package folder is not writable, or no compiler could be run.
    subprocess.CalledProcessError
        The compiler failed (its messages are in ``stderr``).
    """
    from ..kernels import _build

    path = _build.library_path()
    if path is not None and not force:
        return path, 0.0
    start = time.perf_counter()
    path = _build.build()
    return path, time.perf_counter() - start


def _network_sizes() -> range:
    """Stack sizes whose sections :func:`check_kernels` also combines directly: every size with
    a median network written out in the C source, and one past them."""
    from ..kernels.networks import FIXED_MAX

    return range(2, FIXED_MAX + 2)


def _check_sizes() -> list[str]:
    """median and minmed of a random (n, 3, 67) section for each n of :func:`_network_sizes`,
    the compiled and the reference kernels; the runs that differ."""
    from ..kernels import CombineSpec, ImageScalars, combine_section

    rng = np.random.default_rng(1)
    differ = []
    for n in _network_sizes():
        shape = (n, 3, 67)
        sci = rng.choice(np.array([0.0, -0.0, 1.0, 2.0, 2.0, np.nan], np.float32), shape)
        sci = np.where(rng.random(shape) < 0.5, rng.normal(size=shape), sci).astype(np.float32)
        wht = rng.choice(np.array([0.0, 0.5, 1.0, 2.0], np.float32), shape)
        scalars = ImageScalars.of([100.0] * n, [1.0] * n, [4.0] * n)
        for kind in ("median", "minmed"):
            got = [combine_section(sci, wht, CombineSpec(kind=kind), thresholds=np.full(n, 0.7),
                                   scalars=scalars, rows=(0, 3), kernel=kernel)
                   for kernel in ("fast", "reference")]
            if not (np.array_equal(got[0].median.view(np.uint32), got[1].median.view(np.uint32))
                    and np.array_equal(got[0].ngood, got[1].ngood)):
                differ.append(f"{kind} of {n} images")
    return differ


def check_kernels(runs: Sequence[tuple[str, bool]] = RUNS) -> list[str]:
    """Run each ``(combine_type, median_newmasks)`` of ``runs`` on a small random stack with
    the compiled and the reference kernels, and median and minmed sections of every stack size
    with a written-out network (:func:`_network_sizes`).

    Returns
    -------
    list of str
        The runs whose images or counts differ (empty when every one gives the same bits).

    Raises
    ------
    medstack.kernels.KernelsNotBuilt
        The compiled library is missing or cannot be loaded.
    """
    from ..api import median_image
    from ..kernels import choose_kernel

    choose_kernel("fast")
    differ = []
    with tempfile.TemporaryDirectory(prefix="medstack-compile-") as tmp:
        names = _tiny_stack(Path(tmp))
        for kind, masks in runs:
            got = [median_image(names, combine_type=kind, median_newmasks=masks, workers=1,
                                combine_bufsize=0.002, kernel=kernel, save_maps=True)
                   for kernel in ("fast", "reference")]
            same = all(a is not None and b is not None
                       and np.array_equal(a.view(np.uint8), b.view(np.uint8))
                       for a, b in ((got[0].data, got[1].data), (got[0].ngood, got[1].ngood)))
            if not same:
                differ.append(f"{kind}, median_newmasks={masks}")
    with np.errstate(all="ignore"):  # (the reference warns about the NaN drawn)
        return differ + _check_sizes()


def main(argv: Sequence[str] | None = None) -> int:
    """``medstack-compile``: build the compiled kernels where they are missing, and check them."""
    parser = argparse.ArgumentParser(
        prog="medstack-compile",
        description="Build medstack's compiled kernels where the installation has none (no C "
                    "compiler at install time, or a source checkout), then check that they give "
                    "the reference kernels' bits.")
    parser.add_argument("--force", action="store_true",
                        help="rebuild the library even where it is present")
    args = parser.parse_args(argv)
    from ..kernels import KernelsNotBuilt

    try:
        path, seconds = build_kernels(force=args.force)
    except subprocess.CalledProcessError as err:
        first = (err.stderr or "").strip().splitlines()[:1]
        print(f"medstack-compile: the C compiler failed ({' '.join(err.cmd[:1])}): "
              f"{first[0] if first else f'exit status {err.returncode}'}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"medstack-compile: cannot build the kernels: {err}", file=sys.stderr)
        return 1
    try:
        differ = check_kernels()
    except KernelsNotBuilt as err:
        print(f"medstack-compile: {err}", file=sys.stderr)
        return 1
    built = f"built in {seconds:.1f} s" if seconds else "present"
    if differ:
        print(f"medstack-compile: {path} ({built}) differs from the reference kernels in: "
              f"{'; '.join(differ)}", file=sys.stderr)
        return 1
    sizes = _network_sizes()
    print(f"medstack kernels: {path} ({built}); {len(RUNS)} combine runs and median and minmed "
          f"of {sizes[0]}-{sizes[-1]} images checked: the same bits as the reference kernels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
