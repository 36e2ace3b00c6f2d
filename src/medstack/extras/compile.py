"""Compile medstack's kernels once, ahead of the first run: ``medstack-compile``.

medstack's fast kernels are compiled by numba the first time they run and kept in numba's
cache, so only the first run after an installation pays for it (several seconds per combine
type). This module pays it up front: it runs every combine type, with weight masks on and
off, on a tiny stack in a temporary folder, which compiles every kernel medstack uses into the
cache. ``make venv`` runs it; run it once after ``pip install``, and in a container or Dask
worker image at build time.

Where the cache goes is numba's rule: beside the package (``medstack/kernels/__pycache__``)
when that folder is writable, else the user's cache folder (``~/.cache/numba``), or wherever
``NUMBA_CACHE_DIR`` points. For a read-only installation shared by several users (or an image
whose workers run as another user), set ``NUMBA_CACHE_DIR`` to a folder they can read both when
this runs and when medstack runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["compile_kernels", "main"]

#: Every combine type's kernels: (combine_type, median_newmasks).
RUNS: tuple[tuple[str, bool], ...] = tuple(
    (kind, masks) for kind in ("minmed", "median", "mean", "sum") for masks in (True, False)
)


def _tiny_stack(folder: Path, n: int = 3, shape: tuple[int, int] = (24, 20)) -> list[str]:
    from astropy.io import fits

    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        header = fits.Header([("EXPTIME", 100.0), ("MDRIZSKY", 10.0), ("READNSE", 4.0)])
        sci = (rng.normal(0.0, 1.0, shape) + 50.0).astype(">f4")
        wht = np.full(shape, 100.0, dtype=">f4")
        wht[0, : i + 1] = 0.0
        fits.PrimaryHDU(sci, header=header).writeto(folder / f"c{i}_single_sci.fits")
        fits.PrimaryHDU(wht).writeto(folder / f"c{i}_single_wht.fits")
        names.append(str(folder / f"c{i}_single_sci.fits"))
    return names


def compile_kernels(runs: Sequence[tuple[str, bool]] = RUNS) -> float:
    """Run each ``(combine_type, median_newmasks)`` of ``runs`` once on a tiny stack, so that
    numba compiles (or loads) every kernel they use into its cache.

    Parameters
    ----------
    runs : sequence of (str, bool)
        Combine types and weight-mask settings. Default is every combine type, masks on and
        off.

    Returns
    -------
    float
        Seconds it took (a few tenths when the cache was already filled).
    """
    from ..api import median_image

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medstack-compile-") as tmp:
        names = _tiny_stack(Path(tmp))
        for kind, masks in runs:
            median_image(names, combine_type=kind, median_newmasks=masks, workers=1,
                         combine_bufsize=0.0005, kernel="fast")
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    """``medstack-compile``: compile the kernels into numba's cache."""
    parser = argparse.ArgumentParser(
        prog="medstack-compile",
        description="Compile medstack's kernels once, into numba's cache, so that no run pays "
                    "for it (run once after installing; in images, at build time).")
    parser.parse_args(argv)
    seconds = compile_kernels()
    cache = os.environ.get("NUMBA_CACHE_DIR") or "numba's default cache folder"
    print(f"medstack kernels compiled and cached in {seconds:.1f} s ({cache})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
