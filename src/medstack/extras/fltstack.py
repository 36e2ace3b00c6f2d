"""A small dithered stack of real HST exposures, for trying medstack inside AstroDrizzle.

:func:`make_flt_stack` copies one real calibrated exposure (``*_flt.fits``) N times, each with
fresh read noise and cosmic rays and a small whole-pixel dither (pixels and WCS moved
together): what AstroDrizzle needs to run every step. The default exposure is the ACS/HRC
image of 47 Tuc that spherical-geometry (a drizzlepac dependency) ships in its test data.

>>> names = make_flt_stack("stack", n=4)                    # doctest: +SKIP
>>> astrodrizzle.AstroDrizzle(names, output="final")        # doctest: +SKIP
"""

from __future__ import annotations

import importlib.resources
import os
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import InputError

__all__ = ["DITHERS", "make_flt_stack"]

#: Whole-pixel dithers ``(dy, dx)`` of the copies, in order (repeated beyond eight).
DITHERS: tuple[tuple[int, int], ...] = (
    (0, 0), (3, 2), (-2, 5), (4, -3), (-5, -4), (6, 1), (1, -6), (-3, 3),
)


def make_flt_stack(outdir: str | os.PathLike[str], n: int = 4, *,
                   exposure: str | os.PathLike[str] | None = None, seed: int = 1,
                   noise_e: float = 5.0, cosmic_rays: int = 3000,
                   dithers: Sequence[tuple[int, int]] = DITHERS) -> list[str]:
    """Write ``n`` dithered copies of a real exposure into ``outdir``.

    Parameters
    ----------
    outdir : path-like
        Folder for the copies (created if missing); files of the same names are replaced.
    n : int
        Number of copies (1 to 676). Default is 4.
    exposure : path-like, optional
        A calibrated exposure (``*_flt.fits``, data in electrons, chips as ``SCI``/``ERR``/
        ``DQ`` extensions). Default is spherical-geometry's ``j8bt06nyq_flt.fits`` (ACS/HRC,
        F606W, 60 s, 1024 × 1024).
    seed : int
        Random seed: the same seed gives the same files. Default is 1.
    noise_e : float
        Standard deviation of the Gaussian noise added to each copy, electrons. Default is 5.
    cosmic_rays : int
        Cosmic-ray hits of 500 to 20000 electrons per chip of each copy. Default is 3000.
    dithers : sequence of (int, int)
        Whole-pixel shifts ``(dy, dx)`` of the copies, used in turn. Default is DITHERS.

    Returns
    -------
    list of str
        The copies' paths, ``<outdir>/j8bt06n?q_flt.fits``.

    Raises
    ------
    InputError
        ``n`` is out of range, or no exposure is given and spherical-geometry is missing.
    """
    if not 1 <= n <= 26 * 26:
        raise InputError(f"n: must be 1 to {26 * 26}, got {n}")
    if exposure is None:
        try:
            data = importlib.resources.files("spherical_geometry") / "tests" / "data"
        except ModuleNotFoundError as err:
            raise InputError("spherical-geometry is not installed (it ships the default "
                             "exposure; pip install 'medstack[drizzlepac]')") from err
        exposure = Path(str(data / "j8bt06nyq_flt.fits"))
        if not exposure.is_file():
            raise InputError(f"{exposure}: not found in the installed spherical-geometry")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    a_z = string.ascii_lowercase
    paths = []
    for i in range(n):  # a rootname AstroDrizzle accepts per copy: j8bt06naq, j8bt06nbq, ...
        root = f"j8bt06{a_z[i // 26] if n > 26 else 'n'}{a_z[i % 26]}q"
        dy, dx = dithers[i % len(dithers)]
        name = f"{root}_flt.fits"
        with fits.open(exposure) as hdul:
            for hdu in hdul:
                if hdu.name not in ("SCI", "ERR", "DQ") or hdu.data is None:
                    continue
                data = np.roll(hdu.data, (dy, dx), axis=(0, 1))
                if hdu.name == "SCI":
                    data = data + rng.normal(0.0, noise_e, data.shape).astype(np.float32)
                    hit = tuple(rng.integers(0, size, cosmic_rays) for size in data.shape)
                    data[hit] += rng.uniform(500.0, 20000.0, cosmic_rays).astype(np.float32)
                hdu.data = data.astype(hdu.data.dtype)
                hdu.header["CRPIX1"] += dx
                hdu.header["CRPIX2"] += dy
            hdul[0].header["ROOTNAME"] = root
            hdul[0].header["FILENAME"] = name
            hdul.writeto(out / name, overwrite=True)
        paths.append(str(out / name))
    return paths
