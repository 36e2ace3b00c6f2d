"""Reference kernels: plain NumPy, one step per line of docs/spec.md §6–§7; the yardstick the
fast kernels are tested against, bit for bit (clarity over speed: whole-section temporaries,
explicit sequential sums).

Notes
-----
Deliberate differences from drizzlepac (docs/deviations.md):

- NaN and ±inf science values are masked at their pixel for every type (Q8); ``sum`` skips them.
- ``i`` types fill every all-masked pixel, not only column 0 (Q1), with the first non-zero
  finite value in stack order.
- minmed's one-good-pixel value ignores what masked pixels hold (Q14).
- NaN and ±inf weights are bad pixels and count as 0 in minmed's noise model (Q16).
- Pixels with no good input take ``fillval`` (drizzlepac: 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .spec import MIN_WEIGHT, CombineSpec, ImageScalars, Planes, SectionResult, WeightSums

__all__ = ["combine_section", "minimum_as_numpy", "one_pixel_sum",
           "weight_mask", "weight_sums"]


def weight_mask(wht: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """True where a weight is below its image's threshold (float64 compare), NaN or ±inf."""
    thr = np.asarray(thresholds, dtype=np.float64)[:, None, None]
    return (wht.astype(np.float64) < thr) | ~np.isfinite(wht)


def weight_sums(blocks: Sequence[np.ndarray], totals: Sequence[float]) -> WeightSums:
    """See :meth:`medstack.kernels.Kernels.weight_sums` (``np.cumsum`` is the sequential
    float64 sum)."""
    out_t: list[float] = []
    out_c: list[int] = []
    out_n: list[int] = []
    for block, total in zip(blocks, totals):
        w = np.ravel(np.asarray(block)).astype(np.float32)
        good = (w >= MIN_WEIGHT) & (w != np.inf)  # False for NaN
        kept = w[good].astype(np.float64)
        sums = np.cumsum(np.concatenate(([float(total)], kept)))
        out_t.append(float(sums[-1]))
        out_c.append(int(kept.size))
        out_n.append(int(w.size - np.count_nonzero(np.isfinite(w))))
    return out_t, out_c, out_n


def _seq_sum(stack: np.ndarray) -> np.ndarray:
    """Sum over axis 0 in stack order, starting from +0.0, as ``np.sum(axis=0)`` does (so a
    sum of -0.0 values is +0.0)."""
    acc = np.zeros(stack.shape[1:], dtype=stack.dtype)
    for plane in stack:
        acc += plane
    return acc


def _good(sci: np.ndarray, bad: np.ndarray | None, spec: CombineSpec, thresholds: bool) -> np.ndarray:
    """True where a value takes part: finite, not masked, inside the thresholds (float32)."""
    good = np.isfinite(sci)
    if bad is not None:
        good &= ~bad
    if thresholds and spec.lthresh is not None:
        good &= ~(sci < np.float32(spec.lthresh))
    if thresholds and spec.hthresh is not None:
        good &= ~(sci >= np.float32(spec.hthresh))
    return good


def _fill(sci: np.ndarray, good: np.ndarray) -> np.ndarray:
    """``i`` types: where nothing is good, the first non-zero finite value becomes good."""
    none_good = ~good.any(axis=0)
    candidates = (sci != 0) & np.isfinite(sci)
    fillable = none_good & candidates.any(axis=0)
    if not fillable.any():
        return good
    first = np.argmax(candidates, axis=0)
    ys, xs = np.nonzero(fillable)
    good = good.copy()
    good[first[ys, xs], ys, xs] = True
    return good


def _sorted_good(sci: np.ndarray, good: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Good values of each pixel in ascending order, then +inf for the rest: gathered in stack
    order and sorted by drizzlepac's exchange sort (``if v[j] < v[i]: swap``), which decides
    where -0.0 and +0.0 land among equal values, and so the sign of a zero median."""
    order = np.argsort(~good, axis=0, kind="stable")  # good values first, in stack order
    v = np.take_along_axis(np.where(good, sci, np.float32(np.inf)), order, axis=0)
    n = v.shape[0]
    for i in range(n - 1):
        for j in range(i + 1, n):
            swap = (j < g) & (v[j] < v[i])
            if swap.any():
                vi = v[i].copy()
                v[i] = np.where(swap, v[j], v[i])
                v[j] = np.where(swap, vi, v[j])
    return v


def _median(v: np.ndarray, g: np.ndarray, nlow: int, nhigh: int, empty: float) -> np.ndarray:
    """docs/spec.md §6 median: nlow/nhigh reduced together until something is left; even → mean of the
    two middle values in float64; ``empty`` where nothing is good."""
    nl = np.full(g.shape, nlow, dtype=np.int64)
    nh = np.full(g.shape, nhigh, dtype=np.int64)
    while True:
        reduce = (g > 0) & (nl + nh >= g)
        if not reduce.any():
            break
        nh = np.where(reduce & (nh > 0), nh - 1, nh)
        nl = np.where(reduce & (nl > 0), nl - 1, nl)
    m = g - nl - nh
    k = nl + m // 2
    n = v.shape[0]
    upper = np.take_along_axis(v, np.clip(k, 0, n - 1)[None], axis=0)[0].astype(np.float64)
    lower = np.take_along_axis(v, np.clip(k - 1, 0, n - 1)[None], axis=0)[0].astype(np.float64)
    even = (upper + lower) / 2.0
    out = np.where(m % 2 == 1, upper, even).astype(np.float32)
    out[m <= 0] = np.float32(empty)
    return out


def _mean(v: np.ndarray, g: np.ndarray, nlow: int, nhigh: int, empty: float) -> np.ndarray:
    """docs/spec.md §6 mean: no reduction; ascending float64 sum of the kept values / count; 0 if
    nothing is kept of some good values, ``empty`` if nothing is good."""
    m = g - nlow - nhigh
    acc = np.zeros(g.shape, dtype=np.float64)
    for j in range(v.shape[0]):
        keep = (j >= nlow) & (j < nlow + m)
        acc = np.where(keep, acc + v[j].astype(np.float64), acc)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (acc / np.maximum(m, 1)).astype(np.float32)
    out[m <= 0] = np.float32(0.0)
    out[g == 0] = np.float32(empty)
    return out


def _numcombine(sci: np.ndarray, good: np.ndarray, kind: str, fill: bool, nlow: int,
                nhigh: int, empty: float) -> np.ndarray:
    """median/mean of the good values (after the ``i`` fill)."""
    if fill:
        good = _fill(sci, good)
    g = good.sum(axis=0)
    v = _sorted_good(sci, good, g)
    if kind == "median":
        return _median(v, g, nlow, nhigh, empty)
    return _mean(v, g, nlow, nhigh, empty)


def _sum(sci: np.ndarray, fillval: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 sum in stack order of the finite values, from +0.0 (drizzlepac ignores masks for
    sum). A section of one pixel is summed as drizzlepac's ``np.sum(data, axis=0)`` sums it
    there: NumPy's reduction is then along a contiguous axis, which it sums pairwise."""
    finite = np.isfinite(sci)
    if sci[0].size == 1:
        acc = one_pixel_sum(np.where(finite, sci, np.float32(0)))
    else:
        acc = np.zeros(sci.shape[1:], dtype=np.float32)
        for plane, ok in zip(sci, finite):
            acc = np.where(ok, acc + plane, acc)
    count = finite.sum(axis=0)
    acc[count == 0] = np.float32(fillval)
    return acc, count


def one_pixel_sum(values: np.ndarray) -> np.ndarray:
    """drizzlepac's ``np.sum(data, axis=0, out=float32)`` on an (N, 1, 1) section of big-endian
    float32 values (NumPy itself: its pairwise summation along the contiguous axis)."""
    data = np.ascontiguousarray(values, dtype=">f4").reshape(values.shape[0], 1, 1)
    return np.sum(data, axis=0, out=np.empty((1, 1), dtype=np.float32)).reshape(values.shape[1:])


def minimum_as_numpy(vals: np.ndarray, masks: bool) -> np.ndarray:
    """drizzlepac's minimum image of a minmed section, by NumPy itself on the (N, r, nx)
    big-endian float32 values as drizzlepac holds them: ``nanmin`` (``np.fmin.reduce``) with
    weight masks (masked values NaN), else ``np.amin`` (``np.minimum.reduce``), which differ in
    which of ``+0.0``/``-0.0`` a tie returns."""
    data = np.ascontiguousarray(vals, dtype=">f4")
    op = np.fmin if masks else np.minimum
    return op.reduce(data, axis=0).astype(np.float32)


def _dilate(flag: np.ndarray, grow: int) -> np.ndarray:
    """Binary dilation with a (2·grow+1)² box, zero outside (docs/spec.md §7 step 10)."""
    rows, cols = flag.shape
    padded = np.pad(flag, grow)
    out = np.zeros_like(flag)
    for dy in range(2 * grow + 1):
        for dx in range(2 * grow + 1):
            out |= padded[dy : dy + rows, dx : dx + cols]
    return out


def _minmed(sci: np.ndarray, bad: np.ndarray | None, spec: CombineSpec, wht: np.ndarray,
            scalars: ImageScalars | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """docs/spec.md §7 ``min_med`` on one section; returns (out, ngood, minchosen)."""
    if scalars is None:
        raise ValueError("minmed needs weights and per-image scalars")
    n = sci.shape[0]
    finite = np.isfinite(sci)
    masked = ~finite if bad is None else (bad | ~finite)
    good = ~masked
    mask_sum = masked.sum(axis=0)
    allbad = mask_sum == n

    # 2. the "median" image: good values only, 0 where none
    if n == 2:
        med = _numcombine(sci, good, "mean", spec.fill, 0, 0, 0.0)
    else:
        med = _numcombine(sci, good, "median", spec.fill, 0, 1, 0.0)
        one_good = mask_sum == n - 1
        if one_good.any():
            clean = np.where(finite, sci, np.float32(0))
            sci_sum = _seq_sum(clean * good)
            med[one_good] = sci_sum[one_good]

    # 3. the minimum image: with weight masks, masked → NaN, all-bad → 0, then nanmin (numpy's
    # fmin reduction); without, np.amin (NaN/±inf science values, masked here, count as +inf)
    vals = np.where(masked, np.float32(np.nan if bad is not None else np.inf), sci)
    vals[:, allbad] = 0
    minimum = minimum_as_numpy(vals, masks=bad is not None)

    # 4-6. total weight (float32), background (float64), readnoise
    w = np.where(np.isfinite(wht), wht, np.float32(0))
    weight_sum = _seq_sum(w)
    per_second_sky = np.array(
        [float(s) / float(t) for s, t in zip(scalars.sky, scalars.exptime)], dtype=np.float64
    )
    background = _seq_sum(w * per_second_sky[:, None, None])
    if spec.weight_masks:
        readnoise = _seq_sum(good * (scalars.readnoise.astype(np.float64) ** 2)[:, None, None])
    else:
        rdn2 = sum(float(r) ** 2 for r in scalars.readnoise)
        readnoise = np.full(sci.shape[1:], np.float32(rdn2), dtype=np.float32)

    # 7-9. compare in electrons of the whole stack
    min_w = minimum * weight_sum
    med_w = med * weight_sum
    rms = np.sqrt(np.fmax(med_w + background + readnoise, np.zeros_like(med_w)))
    threshold = med_w - rms * spec.nsigma1
    if spec.grow != 0:
        grown = _dilate(np.less(min_w, threshold), spec.grow)
        threshold = np.where(grown, med_w - rms * spec.nsigma2, med_w - rms * spec.nsigma1)
    chosen = np.less(min_w, threshold)
    out = np.where(chosen, minimum, med)
    out[allbad] = np.float32(spec.fillval)
    return out, n - mask_sum, (chosen & ~allbad).astype(np.uint8)


def combine_section(
    sci: Planes,
    wht: Planes | None,
    spec: CombineSpec,
    *,
    thresholds: np.ndarray | None,
    scalars: ImageScalars | None,
    rows: tuple[int, int],
) -> SectionResult:
    """See :meth:`medstack.kernels.Kernels.combine_section`: the output rows ``rows`` of one
    section, and the NaN/±inf science values of those rows counted per image."""
    sci = np.asarray(sci, dtype=np.float32)
    bad = None if thresholds is None else weight_mask(np.asarray(wht), thresholds)
    lo, hi = rows
    minchosen = None
    if spec.kind == "minmed":
        if sci.shape[0] < 2:
            raise ValueError("minmed needs two or more images")
        out, ngood, minchosen = _minmed(sci, bad, spec, np.asarray(wht, np.float32), scalars)
        minchosen = minchosen[lo:hi]
    elif spec.kind == "sum":
        out, ngood = _sum(sci, spec.fillval)
    elif spec.kind in ("median", "mean"):
        good = _good(sci, bad, spec, thresholds=True)
        ngood = good.sum(axis=0)
        out = _numcombine(sci, good, spec.kind, spec.fill, spec.nlow, spec.nhigh, spec.fillval)
    else:
        raise ValueError(f"unknown combine kind {spec.kind!r}")
    ngood = np.minimum(ngood, np.iinfo(np.uint16).max).astype(np.uint16)
    nonfinite = (~np.isfinite(sci[:, lo:hi])).sum(axis=(1, 2), dtype=np.int64)
    return SectionResult(median=out[lo:hi], ngood=ngood[lo:hi], minchosen=minchosen,
                         nonfinite=nonfinite)


def nanmedian(block: np.ndarray, n_frames: int, last: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """NumPy's ``np.nanmedian(cube, axis=0)`` (numpy 2.x), bit for bit, for pixels where only
    the frames of ``block`` hold data and the other frames of the cube are NaN.

    Parameters
    ----------
    block : ndarray, shape (k, ...), float32 or float64
        The values of the k frames that cover these pixels, in frame order; NaN is no data.
    n_frames : int
        The cube's length along its axis (every frame added, covering or not): at 600 or more
        NumPy takes another path.
    last : ndarray, optional
        At 600 frames or more, what a pixel with no data gets: NumPy returns the cube's last
        value there (a NaN with its payload). Default is the canonical NaN.

    Returns
    -------
    median : ndarray, block.shape[1:], block.dtype
    count : ndarray of int
        Non-NaN values per pixel.

    Notes
    -----
    Under 600 frames NumPy's masked median sums the two middle values (an odd count: the middle
    value with itself) in the input dtype and halves the sum; from 600 on it takes the mean of
    the two middle values with an accumulator of the input dtype, or the middle value itself.
    Every reduction starts from +0.0, so a zero result is always +0.0 (whatever the sort does
    with equal values of either sign), written here as the leading ``zero +``.
    """
    dtype = block.dtype.type
    count = np.count_nonzero(~np.isnan(block), axis=0)
    ordered = np.sort(block, axis=0)  # NaN last
    half = count // 2
    hi = np.take_along_axis(ordered, np.minimum(half, block.shape[0] - 1)[None], 0)[0]
    lo = np.take_along_axis(ordered, np.maximum(half - 1, 0)[None], 0)[0]
    zero, two = dtype(0), dtype(2)
    with np.errstate(all="ignore"):
        even = ((zero + lo) + hi) / two
        odd = zero + hi if n_frames >= 600 else ((zero + hi) + hi) / two
    out = np.where(count % 2 == 1, odd, even)
    out[count == 0] = dtype(np.nan)
    if n_frames >= 600 and last is not None:
        out[count == 0] = last[count == 0]
    return out, count
