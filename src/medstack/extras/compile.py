"""Build and check medstack's compiled kernels: ``medstack-compile``.

The kernels' C library is built when medstack is installed and only loaded at run time. This
command is for an installation without it (no C compiler at install time, or a source checkout
used through ``PYTHONPATH``): it builds the library beside its source (:mod:`medstack.kernels.
_build`), then checks that every combine type, weight masks on and off, gives the reference
kernels' bits. Where the library is present it only checks; ``--force`` rebuilds.
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

from ..kernels import CombineSpec, ImageScalars, KernelsNotBuilt, choose_kernel, combine_section
from ..kernels.networks import FIXED_MAX

__all__ = ["check_kernels", "main"]

#: Every combine type's kernels: (combine_type, median_newmasks).
RUNS: tuple[tuple[str, bool], ...] = tuple(
    (kind, masks) for kind in ("minmed", "median", "mean", "sum") for masks in (True, False)
)
#: Stack sizes whose median and minmed sections are also checked directly: every size with a
#: median network written out in the C source, and one past them.
SIZES = range(2, FIXED_MAX + 2)


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


def check_kernels() -> list[str]:
    """Run each of :data:`RUNS` on a small random stack, and median and minmed sections of
    each of :data:`SIZES` images, with the compiled and the reference kernels.

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

    choose_kernel("fast")
    differ = []
    with tempfile.TemporaryDirectory(prefix="medstack-compile-") as tmp:
        names = _tiny_stack(Path(tmp))
        for kind, masks in RUNS:
            got = [median_image(names, combine_type=kind, median_newmasks=masks, workers=1,
                                combine_bufsize=0.002, kernel=kernel, save_maps=True)
                   for kernel in ("fast", "reference")]
            same = all(a is not None and b is not None
                       and np.array_equal(a.view(np.uint8), b.view(np.uint8))
                       for a, b in ((got[0].data, got[1].data), (got[0].ngood, got[1].ngood)))
            if not same:
                differ.append(f"{kind}, median_newmasks={masks}")
    rng = np.random.default_rng(1)
    for n in SIZES:
        shape = (n, 3, 67)
        sci = rng.choice(np.array([0.0, -0.0, 1.0, 2.0, 2.0, np.nan], np.float32), shape)
        sci = np.where(rng.random(shape) < 0.5, rng.normal(size=shape), sci).astype(np.float32)
        wht = rng.choice(np.array([0.0, 0.5, 1.0, 2.0], np.float32), shape)
        scalars = ImageScalars.of([100.0] * n, [1.0] * n, [4.0] * n)
        for kind in ("median", "minmed"):
            with np.errstate(all="ignore"):  # (the reference warns about the NaN drawn)
                fast, ref = [combine_section(sci, wht, CombineSpec(kind=kind),
                                             thresholds=np.full(n, 0.7), scalars=scalars,
                                             rows=(0, 3), kernel=kernel)
                             for kernel in ("fast", "reference")]
            if not (np.array_equal(fast.median.view(np.uint32), ref.median.view(np.uint32))
                    and np.array_equal(fast.ngood, ref.ngood)):
                differ.append(f"{kind} of {n} images")
    return differ


def main(argv: Sequence[str] | None = None) -> int:
    """``medstack-compile``: build the compiled kernels where they are missing, and check them."""
    parser = argparse.ArgumentParser(
        prog="medstack-compile",
        description="Build medstack's compiled kernels where the installation has none, then "
                    "check that they give the reference kernels' bits.")
    parser.add_argument("--force", action="store_true",
                        help="rebuild the library even where it is present")
    args = parser.parse_args(argv)
    from ..kernels import _build

    path, seconds = _build.library_path(), 0.0
    try:
        if path is None or args.force:  # (built beside its source, replacing it atomically)
            start = time.perf_counter()
            path = _build.build()
            seconds = time.perf_counter() - start
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
    print(f"medstack kernels: {path} ({built}); {len(RUNS)} combine runs and median and minmed "
          f"of {SIZES[0]}-{SIZES[-1]} images checked: the same bits as the reference kernels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
