"""The synthetic sky and exposures of :mod:`medstack.extras.demo`.

The scene (stars with a Moffat PSF, a few Sérsic galaxies, one of them a large spiral) is
rendered once on the output grid. Each exposure gets its own detector footprint (a slightly
rotated rectangle with a chip gap and bad columns, moving with the dither), sky level, Poisson
and read noise, and cosmic rays; noise and cosmic rays are resampled with the bilinear kernel
of the dither's sub-pixel phase, so neighbouring pixels are correlated as in drizzled data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DITHER_X", "DITHER_Y", "READNOISE", "Exposure", "chip_gap", "exposure_images",
           "render_scene"]

#: Cosmic-ray hits per pixel per second of exposure (ACS/WFC sees ~1-2 % of pixels per ks).
CR_RATE = 1.2e-6
#: Per-amplifier read noise (electrons) of the simulated detector.
READNOISE = {"A": 4.35, "B": 4.47, "C": 4.12, "D": 5.02}
#: Dither pattern: x offsets in pixels; y offsets in units of the chip-gap width.
DITHER_X = (0.0, 2.5, 5.0, 1.25, 3.75, 6.25)
DITHER_Y = (0.0, 0.6, 1.2, 0.3, 0.9, 1.5)
_PSF_HALF = 20  # half size of the PSF kernel (and of the pad around the scene), pixels


@dataclass(frozen=True)
class Exposure:
    """What varies from one exposure to the next."""

    root: str
    exptime: float
    sky_rate: float  # true sky, electrons/s/pixel
    mdrizsky: float  # the sky AstroDrizzle measured and subtracted, electrons (float32 value)
    dx: float
    dy: float
    expstart: float  # MJD


def _sersic_stamp(rng: np.random.Generator, flux: float, reff: float, n: float, q: float,
                  pa: float, frac: tuple[float, float], spiral: bool = False) -> np.ndarray:
    """An elliptical Sérsic profile of total ``flux`` on a square stamp, centred ``frac``
    (pixels) off its centre pixel; with ``spiral``, two logarithmic arms and a bulge.

    The stamp reaches 6 effective radii (more for a steep profile), capped at 160 pixels or 3
    effective radii, whichever is more; the profile fades smoothly to 0 over the outer quarter
    of that radius, so that no galaxy, however large, ends in the square edge of its stamp."""
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


def _deposit(xs: np.ndarray, ys: np.ndarray, amounts: np.ndarray,
             shape: tuple[int, int]) -> np.ndarray:
    """``amounts`` placed at ``(xs, ys)`` on a grid of ``shape``, each shared bilinearly
    among the four pixels around its position."""
    ny, nx = shape
    ix, iy = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - ix, ys - iy
    ix1, iy1 = np.minimum(ix + 1, nx - 1), np.minimum(iy + 1, ny - 1)
    flat = np.zeros(ny * nx)
    for yy, xx, w in ((iy, ix, (1 - fx) * (1 - fy)), (iy, ix1, fx * (1 - fy)),
                      (iy1, ix, (1 - fx) * fy), (iy1, ix1, fx * fy)):
        flat += np.bincount(yy * nx + xx, weights=amounts * w, minlength=ny * nx)
    return flat.reshape(shape)


def render_scene(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """The sky scene on the output grid, electrons/s, PSF-convolved, without sky background."""
    ny, nx = shape
    pad = _PSF_HALF
    py, px = ny + 2 * pad, nx + 2 * pad
    area = ny * nx / 1024.0**2

    # Stars: a power-law luminosity function, from barely detected to nearly saturated.
    n_stars = max(3, int(round(350 * area)))
    xs = rng.uniform(0, px - 1, n_stars)
    ys = rng.uniform(0, py - 1, n_stars)
    slope, fmin, fmax = -0.6, 0.5, 1500.0  # dN/dF ~ F^-1.6 between fmin and fmax (e-/s)
    u = rng.random(n_stars)
    flux = (fmin**slope + u * (fmax**slope - fmin**slope)) ** (1.0 / slope)
    scene = _deposit(xs, ys, flux, (py, px))

    # Galaxies: a few small ones, and one large spiral near the centre.
    n_gal = max(2, int(round(10 * area)))
    gx = rng.uniform(0.35, 0.65) * nx + pad
    gy = rng.uniform(0.35, 0.65) * ny + pad
    reff = max(3.0, min(ny, nx) / rng.uniform(14.0, 20.0))
    gflux = rng.uniform(1500, 3000) * reff / 40 + 200  # e-/s, scaled with its size
    specs = [(gx, gy, gflux, reff, 1.0, rng.uniform(0.55, 0.8), rng.uniform(0, np.pi), True)]
    for _ in range(n_gal - 1):
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
        x0, x1 = max(cx - h, 0), min(cx + h + 1, px)  # (centres are inside: never empty)
        scene[y0:y1, x0:x1] += stamp[y0 - cy + h : y1 - cy + h, x0 - cx + h : x1 - cx + h]

    # PSF convolution (FFT; the pad keeps the wrap-around outside the output grid) with a
    # Moffat profile of FWHM 2.1 pixels, beta 2.5.
    fwhm, beta = 2.1, 2.5
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    y, x = np.mgrid[-pad : pad + 1, -pad : pad + 1]
    psf = (1.0 + (x * x + y * y) / alpha**2) ** (-beta)
    kernel = np.zeros((py, px))
    kernel[: 2 * pad + 1, : 2 * pad + 1] = psf / psf.sum()
    kernel = np.roll(kernel, (-pad, -pad), axis=(0, 1))
    conv = np.fft.irfft2(np.fft.rfft2(scene) * np.fft.rfft2(kernel), s=(py, px))
    return np.maximum(conv[pad : pad + ny, pad : pad + nx], 0.0)


def chip_gap(shape: tuple[int, int]) -> float:
    """Width of the chip gap, in pixels (the unit of :data:`DITHER_Y`)."""
    return max(5.0, round(shape[0] / 40.0))


def _coverage(shape: tuple[int, int], dx: float, dy: float, theta: float,
              bad_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional coverage of each output pixel by one exposure's detector, and the detector
    coordinates (u along the rows, v along the columns, origin at the detector centre).

    The detector is a rectangle rotated by ``theta`` and shifted by the dither ``(dx, dy)``; the
    chip gap is the band ``|v| < gap/2``; bad columns are 1-pixel lines at constant ``u`` on the
    upper chip. Each boundary is anti-aliased over one pixel, so edge weights are fractional.
    """
    ny, nx = shape
    gap, margin = chip_gap(shape), max(3.0, round(0.025 * min(ny, nx)))
    sin_t, cos_t = math.sin(theta), math.cos(theta)
    half_w = (nx - 2 * margin - max(DITHER_X) - 1.0 - ny * abs(sin_t)) / 2.0
    half_h = (ny - 2 * margin - max(DITHER_Y) * gap - 1.0 - nx * abs(sin_t)) / 2.0
    cx = (nx - 1) / 2.0 - (max(DITHER_X) / 2.0) + dx
    cy = (ny - 1) / 2.0 - (max(DITHER_Y) * gap / 2.0) + dy
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
    return _deposit(xs, ys, q, shape)


def exposure_images(rng: np.random.Generator, scene: np.ndarray, exp: Exposure, theta: float,
                    bad_cols: np.ndarray, cosmic_rays: bool) -> tuple[np.ndarray, np.ndarray]:
    """Science (electrons/s, sky-subtracted) and weight images of one exposure, float32."""
    shape = scene.shape
    cover, un, vn = _coverage(shape, exp.dx, exp.dy, theta, bad_cols)
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
    sci[wht <= 0] = 0.0  # (the pixel-area factor is positive: weights are never below 0)
    return sci.astype(np.float32), wht
