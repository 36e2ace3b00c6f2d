"""Make the small synthetic parity fixtures in ``tests/data/synthetic`` with drizzlepac itself.

Run from the repository root (any Python with numpy and astropy; drizzlepac 3.11.0 is only needed
in the environment named by ``--dpython``)::

    python benchmarks/make_parity_fixtures.py [--outdir tests/data/synthetic] \\
        [--dpython PYTHON] [--seed 20241125]

What it does:

1. Writes a few small, seeded stacks of singly drizzled images (``<stack><i>_single_sci.fits``
   / ``_single_wht.fits``; float32 big-endian, data in the primary HDU): residual sky + noise +
   stars, cosmic rays (some on the same pixel in two or three images), weights ~ exptime x pixel
   area with zero-weight dither borders, chip-gap stripes and bad pixels, fractional weights at
   coverage edges, low-weight patches, exact ties between images, all-masked pixels (a corner
   block with no data; column-0 pixels whose data are all low-weight), weights planted on the
   float32 neighbours of the mask thresholds ``mean * maskpt`` and science values planted on
   the float32 roundings of ``lthresh``/``hthresh``.  Headers carry EXPTIME, MDRIZSKY (float32
   representable), CCDAMP and READNSEA..D.  There is no NaN and no all-zero weight image.
2. Runs drizzlepac's real ``createMedian._median`` (through ``benchmarks/drizzlepac_median.py``,
   in one ``--dpython`` process) on a grid of parameter cases, and stores its outputs as
   ``<case>_expected.fits.gz`` (float32 big-endian, primary HDU; gzip without a timestamp).
3. Writes ``cases.json``: ``stacks`` (per stack: shape and the ``images`` list with ``sci``,
   ``wht``, ``exptime`` [s], ``sky`` [electrons], ``readnoise`` [electrons]) and ``cases``
   (name, stack, every parameter, ``expected``).  A case whose drizzlepac result depends on a
   quirk that medstack changes on purpose (``docs/deviations.md``) carries
   ``"touches_deviation": "Q1"`` (the i-type fill: some pixel outside column 0 has all inputs
   masked while one is non-zero).  Cases on the ``z4`` stack hold signed zeros (``-0.0``) in
   the science data and carry ``"signed_zero": true``.

Every case keeps ``N - nlow - nhigh >= 1`` (Q7) and, for minmed types, sections of at least
``2*grow+1`` rows (Q18), which the script checks before running drizzlepac.  It also checks that
its own model of drizzlepac's weight statistic (ImageStats mean) agrees with ImageStats.

(Internal: ``--worker JOBS.json`` is the mode run under ``--dpython``.)
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "tests" / "data" / "synthetic"
DEFAULT_DPYTHON = str(HERE / ".venv-drizzlepac" / "bin" / "python")  # make drizzlepac-env
SEED = 20241125
BUFSIZE = 1024 * 1024

# lthresh / hthresh whose float32 rounding lies below the double value: a science value equal
# to that rounding is rejected by drizzlepac's float32 comparison (v >= f32(hthresh)) but would
# be kept by a float64 one; and kept by v < f32(lthresh) but rejected by a float64 one.
LTHRESH = -0.3
HTHRESH = 40.1

PARAM_KEYS = ("combine_type", "nsigma", "grow", "maskpt", "nlow", "nhigh", "lthresh", "hthresh",
              "newmasks", "bufsize")
DEFAULTS = {"combine_type": "minmed", "nsigma": "4 3", "grow": 1, "maskpt": 0.7, "nlow": 0,
            "nhigh": 0, "lthresh": None, "hthresh": None, "newmasks": True, "bufsize": None}

# name: (N, ny, nx, exptimes, sky [e-], amplifiers and read noise per image, features)
STACKS = {
    "s2": dict(n=2, shape=(48, 36), exptime=[100.0, 100.0], q1_patch=False),
    "s3": dict(n=3, shape=(64, 50), exptime=[60.0, 60.0, 60.0], q1_patch=True),
    "s4": dict(n=4, shape=(56, 40), exptime=[100.0, 100.0, 50.0, 200.0], q1_patch=False),
    "s5": dict(n=5, shape=(70, 60), exptime=[300.0, 300.0, 300.0, 280.0, 300.0],
                q1_patch=False),
    "s7": dict(n=7, shape=(45, 33), exptime=[40.0, 40.0, 40.0, 40.0, 45.0, 40.0, 35.0],
                q1_patch=True),
    "z4": dict(n=4, shape=(40, 30), exptime=[100.0, 100.0, 100.0, 100.0], q1_patch=False,
               signed_zero=True),
}
AMPS = ["C", "ABCD", "AD", "C", "ABCD", "B", "C"]


def _case(name, stack, **kw):
    case = {"name": name, "stack": stack}
    for key in PARAM_KEYS:
        case[key] = kw.pop(key, DEFAULTS[key])
    if kw:
        raise TypeError(f"unknown case keys {sorted(kw)}")
    return case


def case_grid() -> list[dict]:
    c = _case
    lt, ht = LTHRESH, HTHRESH
    return [
        # minmed
        c("minmed_s2", "s2"),
        c("minmed_s3_mp03", "s3", maskpt=0.3),
        c("minmed_s4_grow2", "s4", nsigma="3 2", grow=2),
        c("minmed_s5_grow0", "s5", grow=0),
        c("minmed_s7_buf", "s7", bufsize=0.001),
        c("minmed_s5_nomask", "s5", newmasks=False),
        c("minmed_s3_mp10_grow2_buf", "s3", maskpt=1.0, grow=2, bufsize=0.001),
        c("minmed_s4_ns25", "s4", nsigma="2.5 1.5", maskpt=0.3),
        c("minmed_s7_grow2_ns55", "s7", nsigma="5 5", grow=2),
        c("minmed_s2_nomask_grow2", "s2", newmasks=False, grow=2),
        c("minmed_s7_nomask_grow0", "s7", newmasks=False, grow=0),
        c("minmed_s5_buf_mp10", "s5", bufsize=0.001, maskpt=1.0),
        c("minmed_z4", "z4", maskpt=0.3),
        # iminmed
        c("iminmed_s3", "s3", combine_type="iminmed"),
        c("iminmed_s4_grow2", "s4", combine_type="iminmed", grow=2),
        c("iminmed_s7_mp03", "s7", combine_type="iminmed", maskpt=0.3),
        c("iminmed_s2", "s2", combine_type="iminmed", nsigma="3 2"),
        # median
        c("median_s3", "s3", combine_type="median"),
        c("median_s4_mp03", "s4", combine_type="median", maskpt=0.3),
        c("median_s5_lh11", "s5", combine_type="median", nlow=1, nhigh=1),
        c("median_s7_l2h3", "s7", combine_type="median", nlow=2, nhigh=3),
        c("median_s4_l1h2", "s4", combine_type="median", nlow=1, nhigh=2),
        c("median_s7_l3h3", "s7", combine_type="median", nlow=3, nhigh=3),
        c("median_s5_thresh", "s5", combine_type="median", lthresh=lt, hthresh=ht),
        c("median_s3_nomask", "s3", combine_type="median", newmasks=False),
        c("median_s4_buf_tiny", "s4", combine_type="median", bufsize=0.0001),
        c("median_s2_h1", "s2", combine_type="median", nhigh=1),
        c("median_s5_mp10", "s5", combine_type="median", maskpt=1.0),
        c("median_z4", "z4", combine_type="median", nhigh=1),
        # imedian
        c("imedian_s3", "s3", combine_type="imedian"),
        c("imedian_s4_h1", "s4", combine_type="imedian", nhigh=1),
        c("imedian_s7_lh11_lt", "s7", combine_type="imedian", nlow=1, nhigh=1, lthresh=lt),
        c("imedian_s2_mp10", "s2", combine_type="imedian", maskpt=1.0),
        c("imedian_s5_thresh_nomask", "s5", combine_type="imedian", lthresh=lt, hthresh=ht,
          newmasks=False),
        c("imedian_z4", "z4", combine_type="imedian"),
        # mean
        c("mean_s3", "s3", combine_type="mean"),
        c("mean_s4_lh11", "s4", combine_type="mean", nlow=1, nhigh=1),
        c("mean_s7_lh22_thresh", "s7", combine_type="mean", nlow=2, nhigh=2, lthresh=lt,
          hthresh=ht),
        c("mean_s5_nomask", "s5", combine_type="mean", newmasks=False, bufsize=0.002),
        c("mean_s2_h1", "s2", combine_type="mean", nhigh=1),
        c("mean_z4", "z4", combine_type="mean"),
        # imean
        c("imean_s5", "s5", combine_type="imean"),
        c("imean_s7_h1", "s7", combine_type="imean", nhigh=1),
        c("imean_s3_mp03", "s3", combine_type="imean", maskpt=0.3),
        # sum
        c("sum_s3", "s3", combine_type="sum"),
        c("sum_s7_ignored", "s7", combine_type="sum", nlow=2, nhigh=3, lthresh=lt,
          hthresh=ht),
        c("sum_s2_mp03", "s2", combine_type="sum", maskpt=0.3, newmasks=False),
        c("sum_z4", "z4", combine_type="sum"),
    ]


# ----------------------------------------------------------------------------------------------
# drizzlepac's weight statistic and masks (to plant boundary weights and to flag Q1 cases)

def wht_mean(w: np.ndarray) -> float:
    """ImageStats(w, lower=1e-8, fields='mean', nclip=0).mean, or 0.0 where it raises."""
    w = np.asarray(w, dtype=np.float32).ravel()
    top = w.max()
    lower = np.float32(1e-8)
    if not lower <= top:
        return 0.0
    sel = w[(w >= lower) & (w <= top)].astype(np.float64)
    if sel.size == 0:
        return 0.0
    total = np.cumsum(sel)[-1]  # sequential double sum, as computeMean does
    return float(np.float32(total / sel.size))


def good_mask(sci, wht, case) -> np.ndarray:
    """(N, ny, nx) True where drizzlepac's numcombine kernel counts the value as good."""
    good = np.ones(sci.shape, dtype=bool)
    if case["newmasks"]:
        for i in range(len(sci)):
            good[i] &= ~(wht[i].astype(np.float64) < wht_mean(wht[i]) * case["maskpt"])
    if not case["combine_type"].endswith("minmed"):
        if case["lthresh"] is not None:
            good &= ~(sci < np.float32(case["lthresh"]))
        if case["hthresh"] is not None:
            good &= ~(sci >= np.float32(case["hthresh"]))
    return good


def _holes(sci, wht, maskpt) -> np.ndarray:
    """Pixels where every image is weight-masked while some image holds a non-zero value."""
    bad = np.stack([wht[i].astype(np.float64) < wht_mean(wht[i]) * maskpt
                    for i in range(len(wht))])
    return bad.all(axis=0) & (sci != 0).any(axis=0)


def touches_q1(sci, wht, case, stack) -> bool:
    """Whether drizzlepac's column-0-only fill (docs/spec.md Q1) shapes this case's result."""
    ctype = case["combine_type"]
    if not ctype.startswith("i"):
        return False
    good = good_mask(sci, wht, case)
    nonzero = (sci != 0).any(axis=0)
    hole = ~good.any(axis=0) & nonzero
    hole[:, 0] = False
    if not hole.any():
        return False
    if ctype in ("imean", "iaverage"):
        return case["nlow"] + case["nhigh"] == 0  # a filled single value is dropped otherwise
    if ctype == "imedian":
        return True
    # iminmed: the fill only changes Med at all-bad pixels, which are reset to 0; it matters
    # only if it raises a grow flag there.
    if case["grow"] == 0:
        return False
    first = np.argmax(sci != 0, axis=0)
    fill = np.take_along_axis(sci, first[None], axis=0)[0].astype(np.float64)
    wt = wht.sum(axis=0, dtype=np.float32).astype(np.float64)
    bk = sum(wht[i].astype(np.float64) * (im["sky"] / im["exptime"])
             for i, im in enumerate(stack["images"]))
    nsigma1 = float(case["nsigma"].split()[0])
    medw = fill * wt
    thr = medw - nsigma1 * np.sqrt(np.maximum(medw + bk, 0.0))
    return bool((thr[hole] > -1e-3).any())


def section_rows(ny: int, nx: int, bufsize) -> int:
    buffsize = BUFSIZE if bufsize is None else BUFSIZE * bufsize
    rows = min(ny, int(buffsize / (nx * 4)))
    return max(rows, 1)


# ----------------------------------------------------------------------------------------------
# stacks

def _f32(x) -> float:
    return float(np.float32(x))


def _below(t: float) -> np.float32:
    """The largest float32 strictly below the double t."""
    f = np.float32(t)
    return f if float(f) < t else np.nextafter(f, np.float32(-np.inf))


def _at_or_above(t: float) -> np.float32:
    f = np.float32(t)
    return f if float(f) >= t else np.nextafter(f, np.float32(np.inf))


def make_stack(name: str, spec: dict, rng: np.random.Generator):
    n = spec["n"]
    ny, nx = spec["shape"]
    t = np.asarray(spec["exptime"], dtype=np.float64)
    yy, xx = np.mgrid[0:ny, 0:nx]

    # per-image scalars: sky (e-, float32 representable) and read noise (e-)
    sky = [_f32(rng.uniform(20.0, 250.0) * ti / 100.0) for ti in t]
    amps, rnvals, rn = [], [], []
    for i in range(n):
        a = AMPS[(i + len(name)) % len(AMPS)]
        vals = {k: 0.0 for k in "ABCD"}
        for k in a:
            vals[k] = round(float(rng.uniform(3.5, 5.5)), 2)
        amps.append(a)
        rnvals.append(vals)
        rn.append(math.sqrt(sum(vals[k] ** 2 for k in a) / len(a)))

    # the sky-subtracted scene in e-/s: stars (one bright), a faint smooth background
    truth = 0.02 * np.sin(xx / 7.0) * np.cos(yy / 9.0)
    for k in range(max(4, ny * nx // 300)):
        y0, x0 = rng.uniform(4, ny - 4), rng.uniform(4, nx - 4)
        peak = 2000.0 if k == 0 else rng.uniform(0.5, 300.0)
        s = rng.uniform(0.9, 1.6)
        truth += peak * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * s * s))

    area = (0.92 + 0.08 * np.cos(xx / 5.0 + 0.3) * np.sin(yy / 6.0 + 0.7)).astype(np.float64)
    sci = np.empty((n, ny, nx), dtype=np.float64)
    clean = np.empty((n, ny, nx), dtype=np.float64)  # full-weight values, for repairs
    wht = np.empty((n, ny, nx), dtype=np.float64)
    # chip-gap stripes (2 columns + fractional sides) at separated columns
    gap_cols = list(range(4, nx - 6, 5))
    rng.shuffle(gap_cols)
    for i in range(n):
        resid = rng.normal(0.0, 0.01)
        sigma = np.sqrt(np.maximum(truth * t[i], 0.0) + sky[i] + rn[i] ** 2) / t[i]
        frac = np.ones((ny, nx))
        # dither: image 0 covers the whole grid; the others leave uncovered borders, with a
        # fractional first covered row/column where that edge lies inside the grid
        if i > 0:
            y0, x0 = int(rng.integers(0, 3)), int(rng.integers(0, 4))
            y1, x1 = ny - int(rng.integers(0, 3)), nx - int(rng.integers(0, 3))
            frac[:y0] = 0.0
            frac[y1:] = 0.0
            frac[:, :x0] = 0.0
            frac[:, x1:] = 0.0
            for inside, edge in ((y0 > 0, frac[y0, :]), (y1 < ny, frac[y1 - 1, :]),
                                 (x0 > 0, frac[:, x0]), (x1 < nx, frac[:, x1 - 1])):
                if inside:
                    edge *= rng.uniform(0.05, 0.95, edge.shape)
        if (i % 2 == 0 or n == 2) and gap_cols:
            c0 = gap_cols.pop()
            frac[:, c0:c0 + 2] = 0.0
            frac[:, c0 - 1] *= rng.uniform(0.2, 0.8)
            frac[:, c0 + 2] *= rng.uniform(0.2, 0.8)
        if i == 1:  # a horizontal stripe in one image
            r0 = int(rng.integers(ny // 3, 2 * ny // 3))
            frac[r0, 5:nx - 5] = 0.0
        # low-weight patches: masked at maskpt 0.7 (0.5) and at 0.3 too (0.15)
        for level in (0.5, 0.15):
            py, px = int(rng.integers(6, ny - 9)), int(rng.integers(6, nx - 9))
            frac[py:py + 3, px:px + 3] *= level
        # bad pixels
        frac[rng.random((ny, nx)) < 0.015] = 0.0
        unit = rng.normal(0.0, 1.0, (ny, nx))
        clean[i] = truth + resid + unit * sigma
        sci[i] = truth + resid + unit * sigma / np.sqrt(np.maximum(frac, 1e-3))
        wht[i] = t[i] * area * frac

    # cosmic rays: single pixels and short trails, plus pixels hit in two (or three) images
    for i in range(n):
        hits = rng.random((ny, nx)) < 0.012
        sci[i][hits] += rng.uniform(5.0, 300.0, hits.sum())
        for _ in range(3):
            cy, cx = int(rng.integers(1, ny - 3)), int(rng.integers(1, nx - 3))
            sci[i, cy, cx:cx + 3] += rng.uniform(20.0, 500.0, 3)
    for _ in range(12):
        cy, cx = int(rng.integers(0, ny)), int(rng.integers(1, nx))
        k = 3 if (n >= 5 and rng.random() < 0.3) else 2
        for i in rng.choice(n, size=min(k, n), replace=False):
            sci[i, cy, cx] += rng.uniform(30.0, 800.0)

    # exact ties: one image copies another's value; some pixels identical in every image
    for _ in range(ny * nx // 60):
        y, x = int(rng.integers(0, ny)), int(rng.integers(0, nx))
        a, b = rng.choice(n, size=2, replace=False)
        sci[b, y, x] = sci[a, y, x]
    for _ in range(ny * nx // 200):
        y, x = int(rng.integers(0, ny)), int(rng.integers(0, nx))
        sci[:, y, x] = sci[0, y, x]

    # science values on the float32 roundings of the thresholds
    for value in (np.float32(LTHRESH), np.float32(HTHRESH)):
        for _ in range(6):
            y, x = int(rng.integers(0, ny)), int(rng.integers(1, nx))
            sci[rng.integers(0, n), y, x] = value
        y, x = int(rng.integers(0, ny)), int(rng.integers(1, nx))
        sci[:, y, x] = value  # every image on the threshold

    sci = sci.astype(np.float32)
    clean = clean.astype(np.float32)
    wht = wht.astype(np.float32)
    protect = np.zeros((ny, nx), dtype=bool)  # pixels meant to be all-masked
    protect[:, 0] = True

    # all-masked pixels: a corner block with no data at all (includes column 0) ...
    wht[:, :4, :5] = 0.0
    protect[:4, :5] = True
    # ... and column-0 pixels whose data are all low-weight; the first non-zero value
    # sits in image 0, 1 or the last one (the i-type fill takes the first non-zero one)
    for r, zeros in ((ny // 4, 1), (ny // 2, 0), (3 * ny // 4, n - 1), (ny // 2 + 1, n)):
        wht[:, r, 0] = np.float32(0.05) * t.astype(np.float32)
        for i in range(n):
            if sci[i, r, 0] == 0:
                sci[i, r, 0] = np.float32(0.75)
        sci[:zeros, r, 0] = 0.0
    if spec.get("q1_patch"):  # interior pixels whose data are all low-weight (touches Q1)
        cy, cx = ny // 2 - 3, nx // 2 + 3
        for i in range(n):
            wht[i, cy:cy + 2, cx:cx + 2] = np.float32(0.1 * t[i])
        protect[cy:cy + 2, cx:cx + 2] = True
    if spec.get("signed_zero"):
        # negative zeros beside positive zeros and small values (no NaN anywhere)
        wht[:, 0:6, 10] = (t[:, None] * area[0:6, 10]).astype(np.float32)
        for _ in range(40):
            y, x = int(rng.integers(4, ny)), int(rng.integers(1, nx))
            k = int(rng.integers(1, n + 1))
            idx = rng.choice(n, size=k, replace=False)
            sci[idx, y, x] = np.float32(-0.0)
            rest = [j for j in range(n) if j not in idx]
            if rest and rng.random() < 0.5:
                sci[rest[0], y, x] = np.float32(0.0)

    # no data where there is no weight (drizzle leaves the fill value 0)
    sci[wht == 0] = 0.0

    # elsewhere, keep one image good (at maskpt <= 0.7) wherever any image has data, so that
    # i-type cases only meet drizzlepac's column-0 fill (Q1) where a stack asks for it
    for _ in range(20):
        holes = _holes(sci, wht, 0.7) & ~protect
        if not holes.any():
            break
        for y, x in zip(*np.nonzero(holes)):
            j = int(rng.integers(0, n))
            wht[j, y, x] = np.float32(t[j] * area[y, x])
            sci[j, y, x] = clean[j, y, x]
    else:
        raise RuntimeError(f"{name}: could not repair all-masked pixels")

    # weights on the float32 neighbours of the mask thresholds mean*maskpt, per image, at
    # pixels where every other image has full weight
    full = wht >= (0.85 * t[:, None, None]).astype(np.float32)
    for i in range(n):
        others = np.delete(full, i, axis=0).all(axis=0) & ~protect
        others[:6] = others[-6:] = False
        others[:, :6] = others[:, -6:] = False
        cand = np.flatnonzero(others)
        sites = [divmod(int(c), nx) for c in rng.choice(cand, size=8, replace=False)]
        for _ in range(50):
            m = wht_mean(wht[i])
            targets = [_below(m * 0.7), _at_or_above(m * 0.7), _below(m * 0.3),
                       _at_or_above(m * 0.3), np.float32(m), np.float32(m),
                       np.nextafter(np.float32(m), np.float32(0)), _below(m * 0.7)]
            for (y, x), v in zip(sites, targets):
                wht[i, y, x] = v
            if wht_mean(wht[i]) == m:
                break
        else:
            raise RuntimeError(f"{name}: planted weights do not settle for image {i}")
        for y, x in sites:
            if sci[i, y, x] == 0:
                sci[i, y, x] = clean[i, y, x]
    if (_holes(sci, wht, 0.7) & ~protect).any():
        raise RuntimeError(f"{name}: planting made all-masked pixels")

    images = []
    for i in range(n):
        root = f"{name}{'abcdefghij'[i]}"
        images.append({
            "sci": f"{root}_single_sci.fits",
            "wht": f"{root}_single_wht.fits",
            "exptime": float(t[i]),
            "sky": sky[i],
            "readnoise": rn[i],
        })
    return sci, wht, images, amps, rnvals


def write_stack(outdir: Path, sci, wht, images, amps, rnvals) -> None:
    ny, nx = sci.shape[1:]
    for i, im in enumerate(images):
        h = fits.Header()
        h["FILENAME"] = im["sci"]
        h["INSTRUME"] = "ACS"
        h["DETECTOR"] = "WFC"
        h["BUNIT"] = "ELECTRONS/S"
        h["EXPTIME"] = im["exptime"]
        h["MDRIZSKY"] = (im["sky"], "Sky value computed by AstroDrizzle")
        h["CCDAMP"] = amps[i]
        for k in "ABCD":
            h[f"READNSE{k}"] = rnvals[i][k]
        h["WCSAXES"] = 2
        h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
        h["CRPIX1"], h["CRPIX2"] = nx / 2.0, ny / 2.0
        h["CRVAL1"], h["CRVAL2"] = 6.0227, -72.0815
        h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -1.4e-5, 0.0, 0.0, 1.4e-5
        fits.PrimaryHDU(sci[i].astype(">f4"), header=h).writeto(outdir / im["sci"],
                                                               overwrite=True)
        hw = fits.Header()
        hw["FILENAME"] = im["wht"]
        fits.PrimaryHDU(wht[i].astype(">f4"), header=hw).writeto(outdir / im["wht"],
                                                                overwrite=True)


def write_gz_fits(path: Path, data: np.ndarray, header: fits.Header) -> None:
    buf = io.BytesIO()
    fits.PrimaryHDU(np.asarray(data, dtype=">f4"), header=header).writeto(buf)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                mtime=0) as gz:
        gz.write(buf.getvalue())


# ----------------------------------------------------------------------------------------------
# the drizzlepac side (run under --dpython)

def worker(jobs_path: str) -> int:
    sys.path.insert(0, str(HERE))
    import drizzlepac_median as dm  # the sibling script
    from stsci.imagestats import ImageStats

    jobs = json.loads(Path(jobs_path).read_text())
    means = {}
    for wht in jobs["weights"]:
        data = fits.getdata(wht)
        try:
            means[wht] = float(ImageStats(data, lower=1e-8, fields="mean", nclip=0).mean)
        except ValueError:
            means[wht] = 0.0
    Path(jobs["means_out"]).write_text(json.dumps(means))
    for argv in jobs["runs"]:
        dm.main(argv)
    return 0


# ----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--outdir", default=str(DEFAULT_OUT))
    p.add_argument("--dpython", default=DEFAULT_DPYTHON,
                   help="a Python with drizzlepac==3.11.0")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    outdir = Path(args.outdir)
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)

    stacks, arrays = {}, {}
    for k, (name, spec) in enumerate(STACKS.items()):
        rng = np.random.default_rng([args.seed, k])
        sci, wht, images, amps, rnvals = make_stack(name, spec, rng)
        write_stack(outdir, sci, wht, images, amps, rnvals)
        stacks[name] = {"shape": list(spec["shape"]), "images": images}
        if spec.get("signed_zero"):
            stacks[name]["signed_zero"] = True
        arrays[name] = (sci, wht)

    cases = case_grid()
    for case in cases:
        stack = stacks[case["stack"]]
        n = len(stack["images"])
        ny, nx = stack["shape"]
        if n - case["nlow"] - case["nhigh"] < 1:
            raise SystemExit(f"{case['name']}: N - nlow - nhigh < 1 (docs/spec.md Q7)")
        if case["combine_type"].endswith("minmed"):
            if section_rows(ny, nx, case["bufsize"]) < 2 * case["grow"] + 1:
                raise SystemExit(f"{case['name']}: grow would be reduced (docs/spec.md Q18)")
        case["expected"] = f"{case['name']}_expected.fits.gz"
        sci, wht = arrays[case["stack"]]
        if touches_q1(sci, wht, case, stack):
            case["touches_deviation"] = "Q1"
        if stack.get("signed_zero"):
            case["signed_zero"] = True

    doc = {
        "description": "Synthetic parity fixtures: drizzlepac 3.11.0 createMedian._median "
                       "outputs on small stacks (see benchmarks/make_parity_fixtures.py).",
        "generator": "benchmarks/make_parity_fixtures.py",
        "seed": args.seed,
        "drizzlepac": "3.11.0",
        "units": {"sci": "electrons/s", "exptime": "s", "sky": "electrons",
                  "readnoise": "electrons", "lthresh/hthresh": "electrons/s"},
        "stacks": stacks,
        "cases": cases,
    }
    (outdir / "cases.json").write_text(json.dumps(doc, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="parity_") as tmp:
        tmp = Path(tmp)
        jobs = {
            "weights": [str(outdir / im["wht"]) for s in stacks.values() for im in s["images"]],
            "means_out": str(tmp / "means.json"),
            "runs": [["--images", str(outdir / "cases.json"), "--case", c["name"],
                      "--output", str(tmp / c["name"])] for c in cases],
        }
        (tmp / "jobs.json").write_text(json.dumps(jobs))
        proc = subprocess.run([args.dpython, str(Path(__file__).resolve()), "--worker",
                               str(tmp / "jobs.json")], capture_output=True, text=True)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"drizzlepac worker failed (rc {proc.returncode})")
        if "Reducing 'grow'" in proc.stderr:
            raise SystemExit("drizzlepac reduced grow in some case (docs/spec.md Q18)")
        means = json.loads((tmp / "means.json").read_text())
        for name, (_, wht) in arrays.items():
            for i, im in enumerate(stacks[name]["images"]):
                if means[str(outdir / im["wht"])] != wht_mean(wht[i]):
                    raise SystemExit(f"weight-mean model disagrees with ImageStats: {im['wht']}")
        for case in cases:
            with fits.open(tmp / f"{case['name']}_med.fits") as hdul:
                data = hdul[0].data
                assert len(hdul) == 1 and data.dtype == np.dtype(">f4")
                h = fits.Header()
                h["CASE"] = case["name"]
                h["STACK"] = case["stack"]
                h["ORIGIN"] = "drizzlepac 3.11.0 createMedian._median"
                write_gz_fits(outdir / case["expected"], data, h)

    size = sum(f.stat().st_size for f in outdir.iterdir())
    nq1 = sum("touches_deviation" in c for c in cases)
    print(f"{len(cases)} cases ({nq1} touch Q1) on {len(stacks)} stacks in {outdir}: "
          f"{size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
