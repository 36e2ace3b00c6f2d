"""A synthetic, HST-like stack of singly drizzled images, and the ``medstack-demo`` command.

:func:`make_stack` writes what AstroDrizzle's ``driz_separate`` step leaves behind for N
dithered ACS/WFC exposures of one field: for each exposure ``<root>_single_sci.fits``
(float32, electrons/s, sky-subtracted, data in the primary HDU) and ``<root>_single_wht.fits``
(float32 drizzle weights: about the exposure time where the detector covered the pixel, 0
where it did not, fractional along the edges).

The scene (stars with a Moffat PSF, a few Sérsic galaxies, one of them a large spiral) is
rendered once on the common output grid. Each exposure then gets its own detector footprint
(a slightly rotated rectangle with a chip gap and a couple of bad columns, all moving with the
dither), its own sky level, Poisson and read noise, and cosmic rays (single pixels, small
blobs and tracks). The noise and the cosmic rays are resampled with the bilinear kernel of the
exposure's sub-pixel dither phase, so they are correlated between neighbouring pixels as in
real drizzled data. Everything is drawn from one seed: the same seed gives the same bytes.

``medstack-demo`` (:func:`main`) writes such a stack and runs the ``medstack`` command on it:
one line says where the stack went, the command's own line where the median went.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from ..errors import MedstackError, ParameterError

__all__ = ["make_stack", "main"]

log = logging.getLogger(__name__)

#: ACS/WFC pixel scale, arcsec per pixel.
PIXEL_SCALE = 0.05
#: Cosmic-ray hits per pixel per second of exposure (ACS/WFC sees ~1-2 % of pixels per ks).
CR_RATE = 1.2e-6
#: Per-amplifier read noise (electrons) and gain (electrons/DN) of the simulated detector.
READNOISE = {"A": 4.35, "B": 4.47, "C": 4.12, "D": 5.02}
GAIN = {"A": 2.02, "B": 1.886, "C": 2.017, "D": 2.0109}
#: Dither pattern: x offsets in pixels; y offsets in units of the chip-gap width.
_DITHER_X = (0.0, 2.5, 5.0, 1.25, 3.75, 6.25)
_DITHER_Y = (0.0, 0.6, 1.2, 0.3, 0.9, 1.5)
_PSF_HALF = 20  # half size of the PSF kernel (and of the pad around the scene), pixels


@dataclass(frozen=True)
class _Exposure:
    """What varies from one exposure to the next."""

    root: str
    exptime: float
    sky_rate: float  # true sky, electrons/s/pixel
    mdrizsky: float  # the sky AstroDrizzle measured and subtracted, electrons (float32 value)
    dx: float
    dy: float
    expstart: float  # MJD


# --------------------------------------------------------------------------------------------
# The scene
# --------------------------------------------------------------------------------------------


def _moffat_kernel(fwhm: float = 2.1, beta: float = 2.5, half: int = _PSF_HALF) -> np.ndarray:
    """A normalised Moffat PSF on a (2 half + 1)² grid."""
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    psf = (1.0 + (x * x + y * y) / alpha**2) ** (-beta)
    return psf / psf.sum()


def _sersic_stamp(rng: np.random.Generator, flux: float, reff: float, n: float, q: float,
                  pa: float, frac: tuple[float, float], spiral: bool = False) -> np.ndarray:
    """An elliptical Sérsic profile of total ``flux`` on a square stamp centred on the stamp's
    centre pixel plus the sub-pixel offset ``frac``; with ``spiral``, two logarithmic arms.

    The stamp reaches 6 effective radii (more for a steep profile), at most 160 pixels or 3
    effective radii, whichever is more; the profile fades smoothly to 0 over the outer quarter
    of a circle of that radius, so that no galaxy, however large, ends in the square edge of
    its stamp (at 3 effective radii its surface brightness is a few percent of that at one)."""
    half = int(min(max(6.0 * reff * (1.6 if n > 2 else 1.0), 8), max(160.0, 3.0 * reff)))
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    x -= frac[0]
    y -= frac[1]
    edge = np.clip((half - np.hypot(x, y)) / (0.25 * half), 0.0, 1.0)
    taper = edge * edge * (3.0 - 2.0 * edge)  # smoothstep: 1 inside, 0 at the stamp's circle
    c, s = math.cos(pa), math.sin(pa)
    u = x * c + y * s
    v = (-x * s + y * c) / q
    r = np.maximum(np.hypot(u, v), 0.35)
    bn = 2.0 * n - 1.0 / 3.0 + 0.009876 / n
    img = np.exp(-bn * ((r / reff) ** (1.0 / n) - 1.0))
    if spiral:
        theta = np.arctan2(v, u)
        pitch = rng.uniform(2.0, 3.5)
        arms = 1.0 + 0.75 * np.cos(2.0 * theta - pitch * np.log(r / reff + 0.05))
        img = img * arms * (1.0 - np.exp(-((r / (0.4 * reff)) ** 2)))  # arms fade at the centre
        bulge_n, bulge_re = 4.0, 0.15 * reff
        bb = 2.0 * bulge_n - 1.0 / 3.0 + 0.009876 / bulge_n
        rb = np.maximum(np.hypot(u, 1.25 * (-x * s + y * c)), 0.35)
        bulge = np.exp(-bb * ((rb / bulge_re) ** (1.0 / bulge_n) - 1.0))
        img = img / img.sum() + 0.35 * bulge / bulge.sum()
    img = img * taper
    return img * (flux / img.sum())


def _render_scene(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """The sky scene on the output grid, electrons/s, PSF-convolved, without sky background."""
    ny, nx = shape
    pad = _PSF_HALF
    py, px = ny + 2 * pad, nx + 2 * pad
    area = ny * nx / 1024.0**2
    scene = np.zeros((py, px))

    # Stars: a power-law luminosity function, from barely detected to nearly saturated.
    n_stars = max(3, int(round(350 * area)))
    xs = rng.uniform(0, px - 1, n_stars)
    ys = rng.uniform(0, py - 1, n_stars)
    slope, fmin, fmax = -0.6, 0.5, 1500.0  # dN/dF ~ F^-1.6 between fmin and fmax (e-/s)
    u = rng.random(n_stars)
    flux = (fmin**slope + u * (fmax**slope - fmin**slope)) ** (1.0 / slope)
    ix, iy = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - ix, ys - iy
    ix1, iy1 = np.minimum(ix + 1, px - 1), np.minimum(iy + 1, py - 1)
    for yy, xx, w in ((iy, ix, (1 - fx) * (1 - fy)), (iy, ix1, fx * (1 - fy)),
                      (iy1, ix, (1 - fx) * fy), (iy1, ix1, fx * fy)):
        scene += np.bincount(yy * px + xx, weights=flux * w, minlength=py * px).reshape(py, px)

    # Galaxies: a few small ones, and one large spiral near the centre.
    n_gal = max(2, int(round(10 * area)))
    specs = []
    for k in range(n_gal):
        if k == 0:
            gx = rng.uniform(0.35, 0.65) * nx + pad
            gy = rng.uniform(0.35, 0.65) * ny + pad
            reff = max(3.0, min(ny, nx) / rng.uniform(14.0, 20.0))
            gflux = rng.uniform(1500, 3000) * reff / 40 + 200  # e-/s, scaled with its size
            specs.append((gx, gy, gflux, reff, 1.0,
                          rng.uniform(0.55, 0.8), rng.uniform(0, np.pi), True))
        else:
            n = float(rng.choice([1.0, 1.0, 2.0, 4.0]))
            specs.append((rng.uniform(pad, nx + pad), rng.uniform(pad, ny + pad),
                          float(np.exp(rng.uniform(np.log(30), np.log(1500)))),
                          float(np.exp(rng.uniform(np.log(1.5), np.log(12.0)))), n,
                          rng.uniform(0.3, 1.0), rng.uniform(0, np.pi), False))
    for gx, gy, gflux, reff, n, q, pa, spiral in specs:
        cx, cy = int(gx), int(gy)
        stamp = _sersic_stamp(rng, gflux, reff, n, q, pa, (gx - cx, gy - cy), spiral)
        h = stamp.shape[0] // 2
        y0, y1 = max(cy - h, 0), min(cy + h + 1, py)
        x0, x1 = max(cx - h, 0), min(cx + h + 1, px)
        if y0 < y1 and x0 < x1:
            scene[y0:y1, x0:x1] += stamp[y0 - cy + h : y1 - cy + h, x0 - cx + h : x1 - cx + h]

    # PSF convolution (FFT; the pad keeps the wrap-around outside the output grid).
    kernel = np.zeros((py, px))
    psf = _moffat_kernel()
    kernel[: psf.shape[0], : psf.shape[1]] = psf
    kernel = np.roll(kernel, (-pad, -pad), axis=(0, 1))
    conv = np.fft.irfft2(np.fft.rfft2(scene) * np.fft.rfft2(kernel), s=(py, px))
    return np.maximum(conv[pad : pad + ny, pad : pad + nx], 0.0)


# --------------------------------------------------------------------------------------------
# One exposure
# --------------------------------------------------------------------------------------------


def _geometry(shape: tuple[int, int]) -> dict[str, float]:
    """Footprint geometry common to all exposures: chip-gap width and edge margin, pixels."""
    ny, nx = shape
    gap = max(5.0, round(ny / 40.0))
    margin = max(3.0, round(0.025 * min(ny, nx)))
    return {"gap": gap, "margin": margin}


def _coverage(shape: tuple[int, int], dx: float, dy: float, theta: float, gap: float,
              margin: float, bad_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional coverage of each output pixel by one exposure's detector, and the detector
    coordinates (u along the rows, v along the columns, origin at the detector centre).

    The detector is a rectangle rotated by ``theta`` and shifted by the dither ``(dx, dy)``; the
    chip gap is the band ``|v| < gap/2``; bad columns are 1-pixel lines at constant ``u`` on the
    upper chip. Each boundary is anti-aliased over one pixel, so edge weights are fractional.
    """
    ny, nx = shape
    sin_t, cos_t = math.sin(theta), math.cos(theta)
    dmax_x = max(_DITHER_X) + 1.0
    dmax_y = max(_DITHER_Y) * gap + 1.0
    half_w = (nx - 2 * margin - dmax_x - ny * abs(sin_t)) / 2.0
    half_h = (ny - 2 * margin - dmax_y - nx * abs(sin_t)) / 2.0
    cx = (nx - 1) / 2.0 - (max(_DITHER_X) / 2.0) + dx
    cy = (ny - 1) / 2.0 - (max(_DITHER_Y) * gap / 2.0) + dy
    x = np.arange(nx, dtype=np.float64)[None, :] - cx
    y = np.arange(ny, dtype=np.float64)[:, None] - cy
    u = x * cos_t + y * sin_t
    v = -x * sin_t + y * cos_t
    cover = np.clip(half_w - np.abs(u) + 0.5, 0.0, 1.0)
    cover = cover * np.clip(half_h - np.abs(v) + 0.5, 0.0, 1.0)
    cover *= np.clip(np.abs(v) - gap / 2.0 + 0.5, 0.0, 1.0)
    for ub, vstart in bad_cols:
        line = np.clip(np.abs(u - ub), 0.0, 1.0)
        cover *= np.where(v > vstart, line, 1.0)
    return cover, u / max(half_w, 1.0), v / max(half_h, 1.0)


def _bilinear(field: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """Resample ``field`` with the bilinear kernel of sub-pixel phase ``(fx, fy)`` (drizzle's
    pixel overlap at pixfrac 1): correlates neighbouring pixels, keeps the grid aligned."""
    out = (1.0 - fx) * field
    out[:, 1:] += fx * field[:, :-1]
    out[:, 0] += fx * field[:, 0]
    res = (1.0 - fy) * out
    res[1:, :] += fy * out[:-1, :]
    res[0, :] += fy * out[0, :]
    return res


def _cosmic_rays(rng: np.random.Generator, shape: tuple[int, int], exptime: float) -> np.ndarray:
    """Cosmic-ray charge (electrons) on the grid: single pixels, small blobs and tracks."""
    ny, nx = shape
    n_hits = int(rng.poisson(CR_RATE * ny * nx * exptime))
    if n_hits == 0:
        return np.zeros(shape)
    kind = rng.random(n_hits)  # < 0.3 single pixel, < 0.6 blob, else track
    length = np.where(kind >= 0.6, np.minimum(rng.exponential(7.0, n_hits) + 2.0, 60.0), 0.0)
    npts = np.where(kind >= 0.6, np.ceil(2.0 * length).astype(int) + 1, 1)
    charge = rng.lognormal(math.log(1500.0), 0.9, n_hits)  # electrons per hit
    x0 = rng.uniform(0, nx - 1, n_hits)
    y0 = rng.uniform(0, ny - 1, n_hits)
    x0 = np.where(kind < 0.3, np.round(x0), x0)  # single-pixel hits land on a pixel centre
    y0 = np.where(kind < 0.3, np.round(y0), y0)
    angle = rng.uniform(0, 2 * np.pi, n_hits)
    hit = np.repeat(np.arange(n_hits), npts)
    first = np.repeat(np.cumsum(npts) - npts, npts)
    t = (np.arange(hit.size) - first) / np.maximum(npts[hit] - 1, 1)
    xs = np.clip(x0[hit] + t * length[hit] * np.cos(angle[hit]), 0, nx - 1)
    ys = np.clip(y0[hit] + t * length[hit] * np.sin(angle[hit]), 0, ny - 1)
    q = charge[hit] / npts[hit] * rng.uniform(0.4, 1.6, hit.size)
    ix, iy = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - ix, ys - iy
    ix1, iy1 = np.minimum(ix + 1, nx - 1), np.minimum(iy + 1, ny - 1)
    flat = np.zeros(ny * nx)
    for yy, xx, w in ((iy, ix, (1 - fx) * (1 - fy)), (iy, ix1, fx * (1 - fy)),
                      (iy1, ix, (1 - fx) * fy), (iy1, ix1, fx * fy)):
        flat += np.bincount(yy * nx + xx, weights=q * w, minlength=ny * nx)
    return flat.reshape(shape)


def _exposure_images(rng: np.random.Generator, scene: np.ndarray, exp: _Exposure,
                     theta: float, geom: dict[str, float], bad_cols: np.ndarray,
                     cosmic_rays: bool) -> tuple[np.ndarray, np.ndarray]:
    """Science (electrons/s, sky-subtracted) and weight images of one exposure, float32."""
    shape = scene.shape
    cover, un, vn = _coverage(shape, exp.dx, exp.dy, theta, geom["gap"], geom["margin"],
                              bad_cols)
    # Pixel-area variation of the distortion-corrected detector: a few per cent.
    pam = 1.0 + 0.025 * un - 0.015 * vn * vn + 0.01 * un * vn
    wht = (exp.exptime * cover * pam).astype(np.float32)

    lam = (scene + exp.sky_rate) * exp.exptime  # electrons expected
    noise = rng.poisson(lam).astype(np.float64) - lam
    # Read noise of the amplifier reading each pixel (quadrants in detector coordinates).
    amp_rn = np.where(vn > 0, np.where(un < 0, READNOISE["A"], READNOISE["B"]),
                      np.where(un < 0, READNOISE["C"], READNOISE["D"]))
    noise += amp_rn * rng.standard_normal(shape)
    if cosmic_rays:
        noise += _cosmic_rays(rng, shape, exp.exptime)
    fx, fy = exp.dx % 1.0, exp.dy % 1.0
    electrons = lam + _bilinear(noise, fx, fy)
    sci = (electrons - exp.mdrizsky) / exp.exptime
    sci[wht <= 0] = 0.0
    wht[wht < 0] = 0.0
    return sci.astype(np.float32), wht


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------


def _wcs_header(shape: tuple[int, int], ra: float, dec: float) -> fits.Header:
    """A north-up TAN WCS with a CD matrix, reference pixel at the grid centre."""
    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    scale = PIXEL_SCALE / 3600.0
    w.wcs.cd = np.array([[-scale, 0.0], [0.0, scale]])
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    wh = w.to_header()
    out = fits.Header()
    for key in ("WCSAXES", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CTYPE1", "CTYPE2",
                "CUNIT1", "CUNIT2"):
        out[key] = (wh[key], wh.comments[key])
    for i in (1, 2):
        for j in (1, 2):
            cdelt = float(wh.get(f"CDELT{i}", 1.0))
            out[f"CD{i}_{j}"] = (float(wh.get(f"PC{i}_{j}", 0.0)) * cdelt,
                                 "partial of coordinate wrt pixel axis")
    out["LONPOLE"] = (wh["LONPOLE"], wh.comments["LONPOLE"])
    out["LATPOLE"] = (wh["LATPOLE"], wh.comments["LATPOLE"])
    out["RADESYS"] = ("ICRS", "equatorial coordinate system")
    out["EQUINOX"] = (2000.0, "equinox of celestial coordinate system")
    out["WCSNAME"] = ("DRZWCS", "coordinate system title")
    out["ORIENTAT"] = (0.0, "position angle of image y axis (deg. e of n)")
    return out


def _mjd_to_iso(mjd: float) -> tuple[str, str]:
    from astropy.time import Time

    iso = Time(mjd, format="mjd", scale="utc").isot
    return iso[:10], iso[11:19]


def _primary_header(exp: _Exposure, wcs_header: fits.Header, *, prefix: str, ra: float,
                    dec: float, filename: str) -> fits.Header:
    """A realistic primary header of an ACS/WFC single, as driz_separate writes it."""
    date_obs, time_obs = _mjd_to_iso(exp.expstart)
    h = fits.Header()
    h["ORIGIN"] = ("medstack.demo", "synthetic data: medstack's demo generator")
    h["DATE"] = (date_obs, "date this file was written (yyyy-mm-dd)")
    h["FILENAME"] = (filename, "name of file")
    h["FILETYPE"] = ("SCI", "type of data found in data file")
    h["TELESCOP"] = ("HST", "telescope used to acquire data")
    h["INSTRUME"] = ("ACS", "identifier for instrument used to acquire data")
    h["ROOTNAME"] = (exp.root, "rootname of the observation set")
    h["PRIMESI"] = ("ACS", "instrument designated as prime")
    h["TARGNAME"] = (f"{prefix.upper()}-FIELD", "proposer's target name")
    h["RA_TARG"] = (ra, "right ascension of the target (deg) (J2000)")
    h["DEC_TARG"] = (dec, "declination of the target (deg) (J2000)")
    h["PROPOSID"] = (99999, "PEP proposal identifier")
    h["LINENUM"] = ("01.001", "proposal logsheet line number")
    h["DATE-OBS"] = (date_obs, "UT date of start of observation (yyyy-mm-dd)")
    h["TIME-OBS"] = (time_obs, "UT time of start of observation (hh:mm:ss)")
    h["EXPSTART"] = (exp.expstart, "exposure start time (Modified Julian Date)")
    h["EXPEND"] = (exp.expstart + exp.exptime / 86400.0, "exposure end time (MJD)")
    h["EXPTIME"] = (exp.exptime, "exposure duration (seconds)--calculated")
    h["TEXPTIME"] = (exp.exptime, "total exposure time (seconds)")
    h["OBSTYPE"] = ("IMAGING", "observation type - imaging or spectroscopic")
    h["OBSMODE"] = ("ACCUM", "operating mode")
    h["DETECTOR"] = ("WFC", "detector in use: WFC, HRC, or SBC")
    h["SUBARRAY"] = (False, "data from a subarray (T) or full frame (F)")
    h["APERTURE"] = ("WFC", "aperture name")
    h["FILTER1"] = ("F606W", "element selected from filter wheel 1")
    h["FILTER2"] = ("CLEAR2L", "element selected from filter wheel 2")
    h["CCDAMP"] = ("ABCD", "CCD amplifier read out configuration")
    h["CCDGAIN"] = (2.0, "commanded gain of CCD")
    for amp in "ABCD":
        h[f"ATODGN{amp}"] = (GAIN[amp], f"calibrated gain for amplifier {amp}")
    for amp in "ABCD":
        h[f"READNSE{amp}"] = (READNOISE[amp], f"calibrated read noise for amplifier {amp}")
    h["PHOTMODE"] = ("ACS WFC1 F606W MJD#", "observation configuration for photometry")
    h["PHOTFLAM"] = (7.8624e-20, "inverse sensitivity, ergs/cm2/Ang/electron")
    h["PHOTZPT"] = (-21.1, "ST magnitude zero point")
    h["PHOTPLAM"] = (5921.1, "pivot wavelength (Angstroms)")
    h["PHOTBW"] = (672.3, "RMS bandwidth of filter plus detector")
    h["BUNIT"] = ("ELECTRONS/S", "units of the data")
    h["MDRIZSKY"] = (exp.mdrizsky, "Sky value computed by AstroDrizzle")
    h.extend(wcs_header)
    h["NDRIZIM"] = (1, "Drizzle, No. images drizzled onto output")
    h["D001VER"] = ("WCS-based drizzle", "Drizzle, task version")
    h["D001GEOM"] = ("Header WCS", "Drizzle, source of geometric information")
    h["D001DATA"] = (f"{exp.root}_flt.fits[sci,1]", "Drizzle, input data image")
    h["D001DEXP"] = (exp.exptime, "Drizzle, input image exposure time (s)")
    h["D001OUDA"] = (filename, "Drizzle, output data image")
    h["D001OUWE"] = (filename.replace("_single_sci", "_single_wht"),
                     "Drizzle, output weighting image")
    h["D001OUCO"] = ("", "Drizzle, output context image")
    h["D001MASK"] = (f"{exp.root}_sci1_single_mask.fits", "Drizzle, input weighting image")
    h["D001WTSC"] = (1.0, "Drizzle, weighting factor for input image")
    h["D001KERN"] = ("square", "Drizzle, form of weight distribution kernel")
    h["D001PIXF"] = (1.0, "Drizzle, linear size of drop")
    h["D001COEF"] = ("SIP", "Drizzle, source of coefficients")
    h["D001OUUN"] = ("cps", "Drizzle, units of output image - counts or cps")
    h["D001FVAL"] = ("INDEF", "Drizzle, fill value for zero weight output pix")
    h["D001WKEY"] = ("", "Input image WCS Version used")
    return h


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


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
    t0 = time.perf_counter()

    root_seq = np.random.SeedSequence(int(seed))
    scene_seq, visit_seq, *image_seqs = root_seq.spawn(2 + int(n_images))
    scene = _render_scene(np.random.default_rng(scene_seq), (ny, nx))

    visit = np.random.default_rng(visit_seq)
    geom = _geometry((ny, nx))
    theta = math.radians(visit.uniform(0.5, 1.5) * visit.choice([-1.0, 1.0]))
    ra = 150.1 + visit.uniform(-0.05, 0.05)
    dec = 2.2 + visit.uniform(-0.05, 0.05)
    base_exptime = float(visit.choice([339.0, 400.0, 507.0, 560.0]))
    mjd0 = 53000.0 + float(visit.integers(0, 3000)) + visit.uniform(0.1, 0.6)
    # Bad columns fixed on the detector (so they move with the dither), on the upper chip.
    n_bad = max(1, nx // 512)
    bad_cols = np.column_stack([visit.uniform(-0.8, 0.8, n_bad) * (nx / 2.0 - 20.0),
                                visit.uniform(0.0, 0.6, n_bad) * ny / 2.0])
    wcs_header = _wcs_header((ny, nx), ra, dec)

    paths: list[Path] = []
    clock = mjd0
    for i, seq in enumerate(image_seqs):
        rng = np.random.default_rng(seq)
        cycle = i // len(_DITHER_X)
        dx = _DITHER_X[i % len(_DITHER_X)] + 0.4 * cycle + rng.normal(0.0, 0.08)
        dy = (_DITHER_Y[i % len(_DITHER_Y)] + 0.15 * cycle) * geom["gap"] + rng.normal(0.0, 0.08)
        exptime = base_exptime + (13.0 if i % 6 == 3 else 0.0)  # one a little longer
        sky_rate = float(rng.uniform(0.08, 0.16))
        measured = sky_rate * exptime + rng.normal(0.0, 0.2)  # the sky estimate is not perfect
        exp = _Exposure(root=f"{prefix}{i + 1:02d}", exptime=float(exptime),
                        sky_rate=sky_rate, mdrizsky=float(np.float32(measured)),
                        dx=float(dx), dy=float(dy), expstart=clock)
        clock += (exptime + 120.0 + (2700.0 if i % 2 else 0.0)) / 86400.0
        sci, wht = _exposure_images(rng, scene, exp, theta, geom, bad_cols, cosmic_rays)
        sci_name = f"{exp.root}_single_sci.fits"
        wht_name = f"{exp.root}_single_wht.fits"
        header = _primary_header(exp, wcs_header, prefix=prefix, ra=ra, dec=dec,
                                 filename=sci_name)
        fits.PrimaryHDU(sci, header=header).writeto(out / sci_name, overwrite=True)
        wheader = header.copy()
        wheader["FILENAME"] = wht_name
        del wheader["BUNIT"]
        fits.PrimaryHDU(wht, header=wheader).writeto(out / wht_name, overwrite=True)
        paths.append(out / sci_name)
    log.info("wrote %d synthetic singles of %d x %d to %s in %.2f s", n_images, ny, nx, out,
             time.perf_counter() - t0)
    return paths


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not N or NYxNX: {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 32:
        raise argparse.ArgumentTypeError(f"must be N or NYxNX with each >= 32: {text!r}")
    return values[0], values[1]


def build_parser() -> argparse.ArgumentParser:
    """The ``medstack-demo`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="medstack-demo",
        description="Write a synthetic HST-like stack of singly drizzled images (ACS/WFC: "
        "stars, galaxies, sky noise, cosmic rays, chip gap, dithers) and run medstack on it: "
        "writes OUTDIR/demo_med.fits and the quick-look OUTDIR/demo_med.png.",
    )
    parser.add_argument("--outdir", default="demo", metavar="DIR",
                        help="folder for the stack and the results (default: demo)")
    parser.add_argument("--n-images", type=_positive_int, default=6, metavar="N",
                        help="number of exposures (default: 6)")
    parser.add_argument("--size", type=_size, default=(1024, 1024), metavar="N|NYxNX",
                        help="output grid size (default: 1024)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--no-cosmic-rays", dest="cosmic_rays", action="store_false",
                        help="leave the cosmic rays out")
    return parser


def _printable(text: str) -> str:
    """``text``, with ASCII stand-ins where stdout cannot encode it."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        text = text.replace("×", "x").replace("→", "->")
    return text


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
        stack could not be written.
    """
    args = build_parser().parse_args(argv)
    outdir = Path(args.outdir)
    ny, nx = args.size
    t0 = time.perf_counter()
    try:
        sci_files = make_stack(outdir, n_images=args.n_images, shape=(ny, nx), seed=args.seed,
                               cosmic_rays=args.cosmic_rays)
    except (OSError, MedstackError) as err:
        print(f"medstack-demo: error: cannot write the stack in {outdir}: {err}",
              file=sys.stderr)
        return 2
    t_gen = time.perf_counter() - t0
    plural = "" if len(sci_files) == 1 else "s"
    print(_printable(f"demo: {len(sci_files)} image{plural} of {ny}×{nx} → {outdir} "
                     f"(generated in {t_gen:.1f} s)"), flush=True)
    if not run_cli:
        return 0

    from ..cli import main as cli_main

    root = outdir / "demo"
    png = outdir / "demo_med.png"
    # the medstack command says what it wrote, in one line
    return cli_main([*(str(p) for p in sci_files), "-o", str(root), "--png", str(png)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
