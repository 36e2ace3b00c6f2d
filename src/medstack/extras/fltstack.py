"""A small dithered stack of real HST exposures, for trying medstack inside AstroDrizzle.

:func:`make_flt_stack` copies one real calibrated exposure (``*_flt.fits``) N times, each copy
with fresh read noise, fresh cosmic-ray hits and a small whole-pixel dither (pixels and WCS
moved together, so that the sky stays put and the footprints differ): what AstroDrizzle needs
to run every step, from sky subtraction to the final drizzle.

By default the exposure is the ACS/HRC image of 47 Tuc (F606W, 60 s, 1024 × 1024) that the
PyPI package ``spherical-geometry`` ships in its test data (``j8bt06nyq_flt.fits``);
spherical-geometry comes with drizzlepac (``pip install "medstack[drizzlepac]"``).

>>> from medstack.extras.fltstack import make_flt_stack
>>> names = make_flt_stack("stack", n=4)                    # doctest: +SKIP
>>> from drizzlepac import astrodrizzle
>>> astrodrizzle.AstroDrizzle(names, output="final")        # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import os
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import InputError

__all__ = ["DITHERS", "default_exposure", "make_flt_stack"]

#: Whole-pixel dithers ``(dy, dx)`` of the copies, in order (repeated beyond eight).
DITHERS: tuple[tuple[int, int], ...] = (
    (0, 0), (3, 2), (-2, 5), (4, -3), (-5, -4), (6, 1), (1, -6), (-3, 3),
)


def default_exposure() -> Path:
    """The ACS/HRC exposure ``j8bt06nyq_flt.fits`` shipped by spherical-geometry.

    Raises
    ------
    InputError
        spherical-geometry is not installed.
    """
    found = importlib.util.find_spec("spherical_geometry")
    if found is None or not found.submodule_search_locations:
        raise InputError("spherical-geometry is not installed (it ships the default exposure "
                         "j8bt06nyq_flt.fits; pip install 'medstack[drizzlepac]')")
    path = Path(next(iter(found.submodule_search_locations))) / "tests" / "data"
    path = path / "j8bt06nyq_flt.fits"
    if not path.is_file():
        raise InputError(f"{path}: not found in the installed spherical-geometry")
    return path


def _names(n: int) -> list[str]:
    """``j8bt06naq``, ``j8bt06nbq``, ... (a rootname AstroDrizzle accepts per copy)."""
    letters = string.ascii_lowercase
    return [f"j8bt06{letters[i // 26]}{letters[i % 26]}q" if n > 26 else f"j8bt06n{letters[i]}q"
            for i in range(n)]


def make_flt_stack(
    outdir: str | os.PathLike[str],
    n: int = 4,
    *,
    exposure: str | os.PathLike[str] | None = None,
    seed: int = 1,
    noise_e: float = 5.0,
    cosmic_rays: int = 3000,
    dithers: Sequence[tuple[int, int]] = DITHERS,
) -> list[str]:
    """Write ``n`` dithered copies of a real exposure into ``outdir``.

    Parameters
    ----------
    outdir : path-like
        Folder for the copies (created if missing); files of the same names are replaced.
    n : int
        Number of copies (1 to 676). Default is 4.
    exposure : path-like, optional
        A calibrated exposure (``*_flt.fits``, data in electrons, chips as ``SCI``/``ERR``/
        ``DQ`` extensions). Default is :func:`default_exposure`.
    seed : int
        Random seed: the same seed gives the same files. Default is 1.
    noise_e : float
        Standard deviation of the Gaussian noise added to each copy, in electrons. Default
        is 5.
    cosmic_rays : int
        Cosmic-ray hits added to each copy per chip, 500 to 20000 electrons each, at random
        pixels. Default is 3000.
    dithers : sequence of (int, int)
        Whole-pixel shifts ``(dy, dx)`` of the copies, used in turn. Default is
        :data:`DITHERS`.

    Returns
    -------
    list of str
        The copies' paths, ``<outdir>/j8bt06n?q_flt.fits``.
    """
    if not 1 <= n <= 26 * 26:
        raise InputError(f"n: must be 1 to {26 * 26}, got {n}")
    source = Path(exposure) if exposure is not None else default_exposure()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, root in enumerate(_names(n)):
        dy, dx = dithers[i % len(dithers)]
        name = f"{root}_flt.fits"
        with fits.open(source) as hdul:
            for hdu in hdul:
                if hdu.name not in ("SCI", "ERR", "DQ") or hdu.data is None:
                    continue
                data = np.roll(hdu.data, (dy, dx), axis=(0, 1))
                if hdu.name == "SCI":
                    data = data + rng.normal(0.0, noise_e, data.shape).astype(np.float32)
                    ny, nx = data.shape
                    y = rng.integers(0, ny, cosmic_rays)
                    x = rng.integers(0, nx, cosmic_rays)
                    data[y, x] += rng.uniform(500.0, 20000.0, cosmic_rays).astype(np.float32)
                hdu.data = data.astype(hdu.data.dtype)
                hdu.header["CRPIX1"] += dx
                hdu.header["CRPIX2"] += dy
            hdul[0].header["ROOTNAME"] = root
            hdul[0].header["FILENAME"] = name
            hdul.writeto(out / name, overwrite=True)
        paths.append(str(out / name))
    return paths
