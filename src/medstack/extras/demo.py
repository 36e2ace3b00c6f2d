"""A synthetic, HST-like stack of singly drizzled images, and the ``medstack-demo`` command.

:func:`make_stack` writes what AstroDrizzle's ``driz_separate`` step leaves behind for N
dithered ACS/WFC exposures of one field: ``<root>_single_sci.fits`` (float32, electrons/s,
sky-subtracted, data in the primary HDU) and ``<root>_single_wht.fits`` (drizzle weights: about
the exposure time where the detector covered the pixel, 0 where not, fractional along the
edges). The scene and the exposures are drawn by :mod:`medstack.extras.synthetic` from one
seed: the same seed gives the same bytes. ``medstack-demo`` (:func:`main`) writes such a
stack and runs the ``medstack`` command on it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from ..errors import MedstackError, ParameterError
from .synthetic import (
    DITHER_X,
    DITHER_Y,
    READNOISE,
    Exposure,
    chip_gap,
    exposure_images,
    render_scene,
)

__all__ = ["make_stack", "main"]

#: ACS/WFC pixel scale, arcsec per pixel.
PIXEL_SCALE = 0.05
#: Per-amplifier gain (electrons/DN) of the simulated detector.
GAIN = {"A": 2.02, "B": 1.886, "C": 2.017, "D": 2.0109}


def _wcs_cards(shape: tuple[int, int], ra: float, dec: float) -> list[tuple]:
    """Header cards of a north-up TAN WCS with a CD matrix, reference pixel at the grid centre
    (ra, dec in degrees)."""
    ny, nx = shape
    scale = PIXEL_SCALE / 3600.0  # degrees per pixel
    cd = "partial of coordinate wrt pixel axis"
    return [("CTYPE1", "RA---TAN", "Right ascension, gnomonic projection"),
            ("CTYPE2", "DEC--TAN", "Declination, gnomonic projection"),
            ("CRVAL1", ra, "[deg] Coordinate value at reference point"),
            ("CRVAL2", dec, "[deg] Coordinate value at reference point"),
            ("CRPIX1", (nx + 1) / 2.0, "Pixel coordinate of reference point"),
            ("CRPIX2", (ny + 1) / 2.0, "Pixel coordinate of reference point"),
            ("CD1_1", -scale, cd), ("CD1_2", 0.0, cd),
            ("CD2_1", 0.0, cd), ("CD2_2", scale, cd),
            ("RADESYS", "ICRS", "equatorial coordinate system"),
            ("EQUINOX", 2000.0, "equinox of celestial coordinate system"),
            ("WCSNAME", "DRZWCS", "coordinate system title"),
            ("ORIENTAT", 0.0, "position angle of image y axis (deg. e of n)")]


def _primary_header(exp: Exposure, wcs_cards: list[tuple], prefix: str) -> fits.Header:
    """The primary header of an ACS/WFC single, with the keywords of driz_separate's that
    readers use (exposure, sky, detector, amplifiers, units, WCS, drizzle parameters)."""
    filename = f"{exp.root}_single_sci.fits"
    iso = Time(exp.expstart, format="mjd", scale="utc").isot
    date_obs, time_obs = iso[:10], iso[11:19]
    h = fits.Header()
    h["ORIGIN"] = ("medstack.demo", "synthetic data: medstack's demo generator")
    h["DATE"] = (date_obs, "date this file was written (yyyy-mm-dd)")
    h["FILENAME"] = (filename, "name of file")
    h["TELESCOP"] = ("HST", "telescope used to acquire data")
    h["INSTRUME"] = ("ACS", "identifier for instrument used to acquire data")
    h["ROOTNAME"] = (exp.root, "rootname of the observation set")
    h["TARGNAME"] = (f"{prefix.upper()}-FIELD", "proposer's target name")
    h["DATE-OBS"] = (date_obs, "UT date of start of observation (yyyy-mm-dd)")
    h["TIME-OBS"] = (time_obs, "UT time of start of observation (hh:mm:ss)")
    h["EXPSTART"] = (exp.expstart, "exposure start time (Modified Julian Date)")
    h["EXPEND"] = (exp.expstart + exp.exptime / 86400.0, "exposure end time (MJD)")
    h["EXPTIME"] = (exp.exptime, "exposure duration (seconds)--calculated")
    h["DETECTOR"] = ("WFC", "detector in use: WFC, HRC, or SBC")
    h["FILTER1"] = ("F606W", "element selected from filter wheel 1")
    h["CCDAMP"] = ("ABCD", "CCD amplifier read out configuration")
    h.extend([(f"ATODGN{a}", GAIN[a], f"calibrated gain for amplifier {a}") for a in "ABCD"])
    h.extend([(f"READNSE{a}", READNOISE[a], f"calibrated read noise for amplifier {a}")
              for a in "ABCD"])
    h["PHOTFLAM"] = (7.8624e-20, "inverse sensitivity, ergs/cm2/Ang/electron")
    h["BUNIT"] = ("ELECTRONS/S", "units of the data")
    h["MDRIZSKY"] = (exp.mdrizsky, "Sky value computed by AstroDrizzle")
    h.extend(wcs_cards)
    h["NDRIZIM"] = (1, "Drizzle, No. images drizzled onto output")
    h["D001DATA"] = (f"{exp.root}_flt.fits[sci,1]", "Drizzle, input data image")
    h["D001DEXP"] = (exp.exptime, "Drizzle, input image exposure time (s)")
    h["D001OUDA"] = (filename, "Drizzle, output data image")
    h["D001OUWE"] = (filename.replace("_single_sci", "_single_wht"),
                     "Drizzle, output weighting image")
    h["D001KERN"] = ("square", "Drizzle, form of weight distribution kernel")
    h["D001PIXF"] = (1.0, "Drizzle, linear size of drop")
    h["D001OUUN"] = ("cps", "Drizzle, units of output image - counts or cps")
    h["D001FVAL"] = ("INDEF", "Drizzle, fill value for zero weight output pix")
    return h


def make_stack(outdir: str | Path, n_images: int = 6, shape: tuple[int, int] = (1024, 1024),
               seed: int = 1, *, cosmic_rays: bool = True, prefix: str = "demo") -> list[Path]:
    """Write a synthetic stack of singly drizzled ACS/WFC images.

    Parameters
    ----------
    outdir : str or Path
        Folder to write into (created if missing). Existing files of the same names are
        overwritten.
    n_images : int, optional
        Number of exposures (>= 1).
    shape : tuple of int, optional
        ``(ny, nx)`` of the common output grid (each >= 32).
    seed : int, optional
        Seed of everything random: the same seed writes the same bytes.
    cosmic_rays : bool, optional
        Add cosmic rays (several hundred hits per 1024² image and ~500 s).
    prefix : str, optional
        Rootnames are ``<prefix>01``, ``<prefix>02``, ...

    Returns
    -------
    list of Path
        The science files ``<outdir>/<root>_single_sci.fits``, in exposure order; each weight
        file ``<root>_single_wht.fits`` is beside its science file.

    Raises
    ------
    ParameterError
        If ``n_images``, ``shape`` or ``prefix`` is invalid.
    """
    if isinstance(n_images, bool) or not isinstance(n_images, (int, np.integer)) or n_images < 1:
        raise ParameterError(f"n_images must be an integer >= 1, not {n_images!r}")
    try:
        ny, nx = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ParameterError(f"shape must be two integers (ny, nx), not {shape!r}") from None
    if ny < 32 or nx < 32:
        raise ParameterError(f"shape must be at least 32 x 32, not {ny} x {nx}")
    if not prefix or any(c in prefix for c in "/\\ \t\n"):
        raise ParameterError(f"prefix must be a non-empty name without spaces or '/', "
                             f"not {prefix!r}")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    scene_seq, visit_seq, *image_seqs = np.random.SeedSequence(int(seed)).spawn(2 + n_images)
    scene = render_scene(np.random.default_rng(scene_seq), (ny, nx))

    visit = np.random.default_rng(visit_seq)
    gap = chip_gap((ny, nx))
    theta = math.radians(visit.uniform(0.5, 1.5) * visit.choice([-1.0, 1.0]))
    ra = 150.1 + visit.uniform(-0.05, 0.05)
    dec = 2.2 + visit.uniform(-0.05, 0.05)
    base_exptime = float(visit.choice([339.0, 400.0, 507.0, 560.0]))
    clock = 53000.0 + float(visit.integers(0, 3000)) + visit.uniform(0.1, 0.6)  # MJD
    # Bad columns fixed on the detector (so they move with the dither), on the upper chip.
    n_bad = max(1, nx // 512)
    bad_cols = np.column_stack([visit.uniform(-0.8, 0.8, n_bad) * (nx / 2.0 - 20.0),
                                visit.uniform(0.0, 0.6, n_bad) * ny / 2.0])
    wcs_cards = _wcs_cards((ny, nx), ra, dec)

    paths: list[Path] = []
    for i, seq in enumerate(image_seqs):
        rng = np.random.default_rng(seq)
        cycle = i // len(DITHER_X)
        dx = DITHER_X[i % len(DITHER_X)] + 0.4 * cycle + rng.normal(0.0, 0.08)
        dy = (DITHER_Y[i % len(DITHER_Y)] + 0.15 * cycle) * gap + rng.normal(0.0, 0.08)
        exptime = base_exptime + (13.0 if i % 6 == 3 else 0.0)  # one a little longer
        sky_rate = float(rng.uniform(0.08, 0.16))
        measured = sky_rate * exptime + rng.normal(0.0, 0.2)  # the sky estimate is not perfect
        exp = Exposure(root=f"{prefix}{i + 1:02d}", exptime=float(exptime),
                        sky_rate=sky_rate, mdrizsky=float(np.float32(measured)),
                        dx=float(dx), dy=float(dy), expstart=clock)
        clock += (exptime + 120.0 + (2700.0 if i % 2 else 0.0)) / 86400.0
        sci, wht = exposure_images(rng, scene, exp, theta, bad_cols, cosmic_rays)
        header = _primary_header(exp, wcs_cards, prefix)
        paths.append(out / header["FILENAME"])
        fits.PrimaryHDU(sci, header=header).writeto(paths[-1], overwrite=True)
        header["FILENAME"] = header["D001OUWE"]
        del header["BUNIT"]
        fits.PrimaryHDU(wht, header=header).writeto(out / header["FILENAME"], overwrite=True)
    return paths


def size(text: str) -> tuple[int, ...]:
    """``N`` or ``NYxNX`` as ``(ny, nx)``; argparse reports a ValueError as a bad --size."""
    values = tuple(int(p) for p in text.lower().replace("×", "x").split("x"))
    return values * 2 if len(values) == 1 else values


def main(argv: Sequence[str] | None = None, *, run_cli: bool = True) -> int:
    """Run ``medstack-demo``: write the stack, then run ``medstack`` on it.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    run_cli : bool, optional
        Run the ``medstack`` command on the stack (default). With False, only write the stack.

    Returns
    -------
    int
        Exit status: 0 on success, the ``medstack`` command's status if it failed, 2 if the
        stack could not be written (``SystemExit(2)`` for a bad option).
    """
    parser = argparse.ArgumentParser(prog="medstack-demo", description=(
        "Write a synthetic HST-like stack of singly drizzled images (ACS/WFC: stars, galaxies, "
        "sky noise, cosmic rays, chip gap, dithers) and run medstack on it: writes "
        "OUTDIR/demo_med.fits and the quick-look OUTDIR/demo_med.png."))
    parser.add_argument("--outdir", default="demo", metavar="DIR",
                        help="folder for the stack and the results (default: demo)")
    parser.add_argument("--n-images", type=int, default=6, metavar="N",
                        help="number of exposures (default: 6)")
    parser.add_argument("--size", type=size, default=(1024, 1024), metavar="N|NYxNX",
                        help="output grid size (default: 1024)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--no-cosmic-rays", dest="cosmic_rays", action="store_false",
                        help="leave the cosmic rays out")
    args = parser.parse_args(argv)
    outdir = Path(args.outdir)
    t0 = time.perf_counter()
    try:
        sci_files = make_stack(outdir, n_images=args.n_images, shape=args.size, seed=args.seed,
                               cosmic_rays=args.cosmic_rays)
    except ParameterError as err:
        parser.error(str(err))
    except (OSError, MedstackError) as err:
        print(f"medstack-demo: error: cannot write the stack in {outdir}: {err}",
              file=sys.stderr)
        return 2
    plural = "" if len(sci_files) == 1 else "s"
    ny, nx = args.size  # ASCII, as the medstack command's own line
    print(f"demo: {len(sci_files)} image{plural} of {ny}x{nx} -> {outdir} "
          f"(generated in {time.perf_counter() - t0:.1f} s)", flush=True)
    if not run_cli:
        return 0

    from ..cli import main as cli_main

    # the medstack command says what it wrote, in one line
    return cli_main([*(str(p) for p in sci_files), "-o", str(outdir / "demo"),
                     "--png", str(outdir / "demo_med.png")])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
