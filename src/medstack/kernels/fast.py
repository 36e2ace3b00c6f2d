"""Compiled kernels: numba, fused per section, bit-identical to :mod:`.reference`.

One pass over each block of pixels does everything the reference does in many whole-section
steps: the weight mask and the value thresholds, the gathering of the good values with a
per-pixel count (masked values become padding: -inf, +inf, -inf, ... for a median, which puts
every pixel's median at one of two fixed sorted positions whatever its count; +inf for a mean),
a sorting network run on whole blocks of pixels at once (vectorised min/max; Batcher's
odd-even merge sort, pruned to the positions needed), the selection, and for minmed its noise
model, the grow dilation (running sums over the flags) and the decision. Pixels with fewer good
values than nlow + nhigh + 1 (drizzlepac's reduction rule) are done one by one.

Exactness. Everything the reference computes in float64 is computed in float64 here, in the
same order; no fast-math. The places where a plain implementation would change bits:

- The weight mask ``float64(w) < t`` is evaluated as ``w < t32`` with ``t32`` the smallest
  float32 ``>= t`` (equivalent for every float32 ``w``); a NaN weight fails ``w >= t32``.
- Sorting networks do not say where ``-0.0`` and ``+0.0`` land among equal values, and the
  reference (like drizzlepac) uses an exchange sort that does. Where a median picks zeros from a
  pixel that holds a ``-0.0``, that pixel is redone with the exchange sort itself.
- minmed's minimum is NumPy's ``fmin.reduce`` (with weight masks; ``minimum.reduce`` without),
  whose SIMD loops return the *second* operand of a ``±0`` tie and whose scalar tail loops may
  return the *first*. Which positions of a section NumPy treats that way is probed once per
  section size and reduction (:func:`_fmin_first_positions`) and those pixels are redone with
  first-wins semantics. A section of one pixel is reduced by NumPy along a contiguous axis, in
  SIMD lanes: there the minimum (and ``sum``'s pairwise sum) is NumPy's own, computed on the
  pixel's values as drizzlepac holds them.
- Sequential sums start from ``+0.0`` and run in stack order (float32 weights, ``sum``) or in
  sorted order (float64 ``mean``), exactly as the reference writes them.

The kernels take the inputs where they lie, as N planes of float32 of either byte order (each
plane by the address of its first value), byte-swapping big-endian FITS data as they load it: the
work unit (:func:`medstack.core.unit.compute_section`) hands them views of the memory-mapped
rows, so the data are neither copied nor converted. They release the GIL (``nogil``), so the
thread executor (:mod:`medstack.executors.threads`) runs sections on several threads.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import WEIGHT_LANES, reference
from .spec import MIN_WEIGHT, CombineSpec, ImageScalars, SectionResult

__all__ = [
    "FastSectionResult", "combine_section", "count_nonfinite", "sorting_network", "weight_sums",
]

_JIT = {"cache": True, "nogil": True}  # deliberately no fastmath: IEEE semantics throughout

#: Bytes of the (N, B) float32 block of sorted values (L2-sized; B a multiple of 8).
_BLOCK_BYTES = 65536


# ---------------------------------------------------------------------------------------------
# planning helpers (plain Python, cached)


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort network for ``n`` wires (min goes to the lower wire)."""
    pairs: list[tuple[int, int]] = []
    size = 1
    while size < n:
        size *= 2
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        a, b = i + j, i + j + k
                        if b < n:  # wires >= n hold +inf: comparing with them is a no-op
                            pairs.append((a, b))
            k //= 2
        p *= 2
    return pairs


@lru_cache(maxsize=256)
def sorting_network(n: int, needed: tuple[int, ...] | None = None) -> np.ndarray:
    """Comparators ``(a, b)`` (int32, shape (C, 2)) that sort ``n`` values ascending, pruned to
    those that can change the values at the ``needed`` output positions (default: all)."""
    pairs = _batcher_pairs(n)
    if needed is not None:
        live = set(needed)
        kept = []
        for a, b in reversed(pairs):
            if a in live or b in live:
                kept.append((a, b))
                live.add(a)
                live.add(b)
        pairs = kept[::-1]
    return np.array(pairs, dtype=np.int32).reshape(-1, 2)


@lru_cache(maxsize=256)
def _median_table(n: int, nlow: int, nhigh: int) -> tuple[np.ndarray, np.ndarray]:
    """Per good count g = 0…n: the sorted position k of the (upper) middle value and whether the
    kept count is even (average v[k-1], v[k]), after drizzlepac's joint nlow/nhigh reduction.
    k = -1 marks "nothing kept"."""
    k_of = np.full(n + 1, -1, dtype=np.int32)
    even = np.zeros(n + 1, dtype=np.uint8)
    for g in range(1, n + 1):
        nl, nh = nlow, nhigh
        while nl + nh >= g:
            nh = nh - 1 if nh > 0 else nh
            nl = nl - 1 if nl > 0 else nl
        m = g - nl - nh
        if m <= 0:
            continue
        k_of[g] = nl + m // 2
        even[g] = 1 if m % 2 == 0 else 0
    return k_of, even


def _middle(n: int, nlow: int, nhigh: int) -> int:
    """The upper of the two sorted positions that hold a pixel's median once its masked values
    are padded -inf, +inf, -inf, ... : with ``C = n - nlow - nhigh``, ``a = n - g`` masked and
    ``m = g - nlow - nhigh >= 1`` kept values, ``ceil(a/2)`` of them at -inf put the median at
    ``ceil(a/2) + nlow + m//2``, which is ``mid - 1`` or ``mid`` for ``mid = ceil(C/2) + nlow``
    (and ``mid - 1`` too when m is even)."""
    return (n - nlow - nhigh + 1) // 2 + nlow


def _ceil_f32(t: float) -> np.float32:
    """The smallest float32 >= t, so that ``float64(w) < t`` ⇔ ``w < result`` for float32 w.
    NaN (nothing is below it) maps to -inf."""
    if math.isnan(t):
        return np.float32(-np.inf)
    with np.errstate(over="ignore"):
        t32 = np.float32(t)
    if float(t32) < t:
        t32 = np.nextafter(t32, np.float32(np.inf))
    return np.float32(t32)


def _weight_limits(thresholds: np.ndarray | None, n: int) -> np.ndarray:
    """Per image: a weight is good where ``w >= limit`` (float32)."""
    if thresholds is None:
        return np.full(n, -np.inf, dtype=np.float32)
    return np.array([_ceil_f32(float(t)) for t in np.asarray(thresholds, np.float64)],
                    dtype=np.float32)


def _value_limits(spec: CombineSpec) -> tuple[np.float32, np.float32]:
    """``(lo, hi)``: a finite value is kept where ``lo <= v < hi`` (float32, as the reference's
    ``~(v < lthresh) & ~(v >= hthresh)``)."""
    lo, hi = np.float32(-np.inf), np.float32(np.inf)
    if spec.lthresh is not None and not math.isnan(spec.lthresh):
        lo = np.float32(spec.lthresh)
    if spec.hthresh is not None and not math.isnan(spec.hthresh):
        hi = np.float32(spec.hthresh)
    return lo, hi


_fmin_lock = threading.Lock()


@lru_cache(maxsize=64)
def _first_positions_cached(n_pixels: int, op_name: str) -> np.ndarray:
    op = getattr(np, op_name)
    probe = np.zeros((2, 1, n_pixels), dtype=">f4")  # big-endian, as drizzlepac holds them
    probe[1] = np.float32(-0.0)
    first = ~np.signbit(op.reduce(probe, axis=0)).ravel()
    return np.flatnonzero(first).astype(np.int64)


def _fmin_first_positions(rows: int, nx: int, masks: bool = True) -> np.ndarray:
    """Flat positions of an ``(N, rows, nx)`` section where NumPy's reduction over axis 0
    returns the first operand of a ``±0`` tie (a scalar tail loop); elsewhere (a SIMD loop)
    it returns the second. The reduction is drizzlepac's: ``np.fmin`` (``nanmin``) with
    weight masks, ``np.minimum`` (``amin``) without. Probed, not assumed: it depends on the
    CPU and NumPy build."""
    with _fmin_lock:
        return _first_positions_cached(rows * nx, "fmin" if masks else "minimum")


def _block(n: int) -> int:
    return max(8, min(2048, (_BLOCK_BYTES // (4 * max(n, 1))) // 8 * 8))


# ---------------------------------------------------------------------------------------------
# compiled pieces


@intrinsic
def _as_f32(typingctx, bits):
    """The float32 whose bits are ``bits`` (a uint32)."""
    sig = types.float32(types.uint32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def _bswap32(typingctx, bits):
    """``bits`` with its four bytes reversed (big-endian ↔ little-endian)."""
    sig = types.uint32(types.uint32)

    def codegen(context, builder, signature, args):
        return builder.bswap(args[0])

    return sig, codegen


@intrinsic
def _u32_ptr(typingctx, address):
    """A ``uint32*`` from an integer address."""
    sig = types.CPointer(types.uint32)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.uint32)))

    return sig, codegen


@nb.njit(inline="always", **_JIT)
def _value(bits, swap):
    """One float32 from its raw bits, byte-swapped first when ``swap``."""
    return _as_f32(_bswap32(bits) if swap else bits)


@nb.njit(inline="always", **_JIT)
def _at(ptrs, swaps, i, p):
    """Value ``p`` (flat) of plane ``i``: planes are given by the address of their first value
    and whether they are big-endian (see :func:`_planes`)."""
    return _value(_u32_ptr(ptrs[i] + 4 * p)[0], swaps[i] != 0)


@nb.njit(inline="always", **_JIT)
def _load_row(ptrs, swaps, i, p0, dst, nb_):
    """``dst[:nb_]`` = values ``[p0, p0 + nb_)`` of plane ``i``; returns whether one of them is
    ``-0.0``."""
    src = nb.carray(_u32_ptr(ptrs[i] + 4 * p0), (nb_,))
    negative_zero = np.uint32(0x80000000)
    seen = False
    if swaps[i] != 0:
        for x in range(nb_):
            bits = _bswap32(src[x])
            dst[x] = _as_f32(bits)
            seen |= bits == negative_zero
    else:
        for x in range(nb_):
            bits = src[x]
            dst[x] = _as_f32(bits)
            seen |= bits == negative_zero
    return seen


@nb.njit(inline="always", **_JIT)
def _sort_block(buf, net, nb_):
    """Apply the comparator network to the first ``nb_`` columns of ``buf`` (rows = wires).

    The ``+ 0.0`` turns ``-0.0`` into ``+0.0`` on the low wire. That changes no result (zeros
    from a pixel holding a ``-0.0`` are redone exactly) and keeps LLVM from turning the in-place
    select into a masked store, which is microcoded and slow on AMD CPUs.
    """
    zero = np.float32(0.0)
    for c in range(net.shape[0]):
        ra = buf[net[c, 0]]
        rb = buf[net[c, 1]]
        for x in range(nb_):
            a = ra[x]
            b = rb[x]
            lt = a < b
            ra[x] = (a if lt else b) + zero
            rb[x] = b if lt else a


@nb.njit(**_JIT)
def _exchange_select(vals, g, k, even):
    """drizzlepac's exchange sort (``if v[j] < v[i]: swap``) of ``vals[:g]`` in stack order, then
    the median at ``k`` (even: average of ``k-1`` and ``k`` in float64) — the exact bits,
    signed zeros included."""
    for i in range(g - 1):
        for j in range(i + 1, g):
            if vals[j] < vals[i]:
                t = vals[i]
                vals[i] = vals[j]
                vals[j] = t
    if even:
        return np.float32((np.float64(vals[k]) + np.float64(vals[k - 1])) / 2.0)
    return vals[k]


@nb.njit(**_JIT)
def _redo_median(sp, ss, wp, ws, use_w, wlim, vlo, vhi, p, k, even, tmp, res, always):
    """One pixel's median, exactly as the reference makes it: its good values in stack order,
    drizzlepac's exchange sort, the value(s) at ``k``. Done ``always`` (few good values: the
    nlow/nhigh reduction), or for a median of zeros only if a good value is ``-0.0`` (the
    exchange sort's order of ``±0`` decides the sign); else ``res`` stands."""
    inf = np.float32(np.inf)
    m = 0
    negative_zero = False
    for i in range(sp.shape[0]):
        s = _at(sp, ss, i, p)
        ok = (abs(s) < inf) and (s >= vlo) and (s < vhi)
        if use_w:
            w = _at(wp, ws, i, p)
            ok = ok and (w >= wlim[i]) and (w != inf)
        if ok:
            tmp[m] = s
            m += 1
            if s == 0 and math.copysign(1.0, s) < 0:
                negative_zero = True
    if not (always or negative_zero):
        return res
    return _exchange_select(tmp, m, k, even)


@nb.njit(**_JIT)
def _count_row(vals, nb_, counts, i):
    """``counts[i] +=`` the number of NaN/±inf among ``vals[:nb_]`` (rare: a separate pass)."""
    inf = np.float32(np.inf)
    c = 0
    for x in range(nb_):
        c += not (abs(vals[x]) < inf)
    counts[i] += c


@nb.njit(**_JIT)
def _count_nonfinite(sp, ss, p_lo, p_hi, counts):
    """``counts[i] +=`` the number of NaN/±inf values of image i in flat pixels [p_lo, p_hi)."""
    inf = np.float32(np.inf)
    for i in range(sp.shape[0]):
        c = 0
        for p in range(p_lo, p_hi):
            c += not (abs(_at(sp, ss, i, p)) < inf)
        counts[i] += c


@nb.njit(**_JIT)
def _sum_kernel(sp, ss, p_lo, p_hi, fillval, block, out, ngood, nonfinite):
    n = sp.shape[0]
    cnt = np.empty(block, np.int32)
    acc = np.empty(block, np.float32)
    sval = np.empty(block, np.float32)
    inf = np.float32(np.inf)
    zero = np.float32(0.0)
    for p0 in range(p_lo, p_hi, block):
        nb_ = min(block, p_hi - p0)
        for x in range(nb_):
            acc[x] = zero
            cnt[x] = 0
        for i in range(n):
            _load_row(sp, ss, i, p0, sval, nb_)
            nonfin = False
            for x in range(nb_):
                s = sval[x]
                ok = abs(s) < inf
                # acc is never -0.0 (it starts at +0.0), so adding +0.0 leaves it unchanged
                acc[x] = acc[x] + (s if ok else zero)
                cnt[x] = cnt[x] + np.int32(ok)
                nonfin |= not ok
            if nonfin:
                _count_row(sval, nb_, nonfinite, i)
        o = p0 - p_lo
        for x in range(nb_):
            c = cnt[x]
            out[o + x] = acc[x] if c > 0 else fillval
            ngood[o + x] = min(c, 65535)


@nb.njit(inline="always", **_JIT)
def _gather_fill(srow, nb_, cand, hasc):
    """``i`` types: the first non-zero finite value in stack order, per column."""
    inf = np.float32(np.inf)
    zero = np.float32(0.0)
    for x in range(nb_):
        s = srow[x]
        c = (hasc[x] == 0) & (s != 0) & (abs(s) < inf)
        cand[x] = (s if c else cand[x]) + zero  # never a zero when used
        hasc[x] |= c


@nb.njit(**_JIT)
def _numcombine_kernel(sp, ss, wp, ws, use_w, wlim, vlo, vhi, is_median, fill, k_of, even,
                       mid, nlow, nhigh, fillval, net, p_lo, p_hi, block, out, ngood,
                       nonfinite):
    """median / mean (docs/spec.md §6 with docs/deviations.md) over flat pixels ``[p_lo, p_hi)``.

    median: the masked values of a pixel are padded alternately with -inf and +inf (in stack
    order), which puts the middle of its good values at one of two fixed sorted positions,
    ``mid - 1`` and ``mid`` (see :func:`_middle`), whatever its good count: the selection is a
    pair of vector selects. Pixels with fewer good values than ``nlow + nhigh`` + 1 (drizzlepac's
    reduction) and medians of zeros are redone one by one (:func:`_redo_median`).

    mean: masked values are +inf; the kept sorted values are summed in float64, ascending.
    """
    n = sp.shape[0]
    inf = np.float32(np.inf)
    ninf = np.float32(-np.inf)
    zero = np.float32(0.0)
    buf = np.empty((n, block), np.float32)
    cnt = np.empty(block, np.int32)
    cand = np.empty(block, np.float32)
    hasc = np.empty(block, np.uint8)
    acc = np.empty(block, np.float64)
    redo = np.empty(block, np.uint8)
    srow = np.empty(block, np.float32)
    wrow = np.empty(block, np.float32)
    tmp = np.empty(max(n, 1), np.float32)
    c_odd = ((n - nlow - nhigh) & 1) == 1
    r_lo = buf[min(max(mid - 1, 0), n - 1)]
    r_hi = buf[min(mid, n - 1)]
    for p0 in range(p_lo, p_hi, block):
        nb_ = min(block, p_hi - p0)
        for x in range(nb_):
            cnt[x] = 0
            hasc[x] = 0
            cand[x] = zero
        negative_zero = False  # a -0.0 among the block's values: zero medians need a look
        # 1. gather: good values; the rest +inf (mean) or -inf, +inf, -inf... (median)
        for i in range(n):
            negative_zero |= _load_row(sp, ss, i, p0, srow, nb_)
            if use_w:
                _load_row(wp, ws, i, p0, wrow, nb_)
            else:
                for x in range(nb_):
                    wrow[x] = zero  # passes w >= -inf; a weight of +inf never does
            brow = buf[i]
            lim = wlim[i]
            nonfin = False
            if is_median:
                for x in range(nb_):
                    s = srow[x]
                    finite = abs(s) < inf
                    ok = finite & (s >= vlo) & (s < vhi) & (wrow[x] >= lim) & (wrow[x] != inf)
                    c = cnt[x]
                    brow[x] = s if ok else (ninf if ((i - c) & 1) == 0 else inf)
                    cnt[x] = c + np.int32(ok)
                    nonfin |= not finite
            else:
                for x in range(nb_):
                    s = srow[x]
                    finite = abs(s) < inf
                    ok = finite & (s >= vlo) & (s < vhi) & (wrow[x] >= lim) & (wrow[x] != inf)
                    brow[x] = s if ok else inf
                    cnt[x] = cnt[x] + np.int32(ok)
                    nonfin |= not finite
            if nonfin:
                _count_row(srow, nb_, nonfinite, i)
            if fill:
                _gather_fill(srow, nb_, cand, hasc)
        # 2. sort the block
        _sort_block(buf, net, nb_)
        o = p0 - p_lo
        # 3. select
        if is_median:
            n_redo = 0
            for x in range(nb_):
                g = cnt[x]
                m = g - nlow - nhigh
                lo = r_lo[x]
                hi = r_hi[x]
                ev = (m & 1) == 0
                avg = np.float32((np.float64(hi) + np.float64(lo)) / 2.0)
                one = lo if c_odd else hi
                res = avg if ev else one
                zeros = negative_zero & (((hi == 0) & (lo == 0)) if ev else (one == 0))
                empty = cand[x] if (fill & (hasc[x] != 0)) else fillval
                out[o + x] = res if g > 0 else empty
                ngood[o + x] = min(g, 65535)
                flag = (g > 0) & ((m <= 0) | zeros)
                redo[x] = flag
                n_redo += flag
            if n_redo:
                for x in range(nb_):
                    if redo[x]:
                        g = cnt[x]
                        out[o + x] = _redo_median(sp, ss, wp, ws, use_w, wlim, vlo, vhi, p0 + x,
                                                  k_of[g], even[g], tmp, out[o + x],
                                                  g - nlow - nhigh <= 0)
        else:
            for x in range(nb_):
                acc[x] = 0.0
            for j in range(nlow, n):
                row = buf[j]
                for x in range(nb_):
                    keep = j < cnt[x] - nhigh
                    # acc starts at +0.0 and so is never -0.0: adding +0.0 changes nothing
                    acc[x] = acc[x] + (np.float64(row[x]) if keep else 0.0)
            for x in range(nb_):
                g = cnt[x]
                ngood[o + x] = min(g, 65535)
                if g == 0:
                    if fill and hasc[x]:
                        m = 1 - nlow - nhigh
                        out[o + x] = np.float32((0.0 + np.float64(cand[x])) / m) if m > 0 \
                            else zero
                    else:
                        out[o + x] = fillval
                    continue
                m = g - nlow - nhigh
                out[o + x] = np.float32(acc[x] / m) if m > 0 else zero


@nb.njit(**_JIT)
def _minmed_kernel(sp, ss, wp, ws, use_w, wlim, sps, rn2, rn_masks, rn_const, n1, n2, fill,
                   k_of, even, mid, net, fw_pos, mn_fix, p_lo, p_hi, block, mn_out, med_out, f1,
                   f2, gcount, nonfinite):
    """minmed's per-pixel part (docs/spec.md §7 steps 1–9) over flat pixels ``[p_lo, p_hi)``: the
    minimum, the "median", the good count and the two flags ``MinW < MedW - nsigma·σ``.

    The "median" (nlow = 0, nhigh = 1, or the mean for two images) uses the padding of
    :func:`_numcombine_kernel`; one good value is their float32 sum from +0.0."""
    n = sp.shape[0]
    inf = np.float32(np.inf)
    ninf = np.float32(-np.inf)
    nan32 = np.float32(np.nan)
    zero = np.float32(0.0)
    no_lim = np.float32(-np.inf)
    buf = np.empty((n, block), np.float32)
    cnt = np.empty(block, np.int32)
    okb = np.empty(block, np.uint8)
    cand = np.empty(block, np.float32)
    hasc = np.empty(block, np.uint8)
    mn_a = np.empty(block, np.float32)
    mn_b = np.empty(block, np.float32)
    gsum = np.empty(block, np.float32)
    wt = np.empty(block, np.float32)
    bk = np.empty(block, np.float64)
    rn = np.empty(block, np.float64)
    med = np.empty(block, np.float32)
    redo = np.empty(block, np.uint8)
    srow = np.empty(block, np.float32)
    wrow = np.empty(block, np.float32)
    tmp = np.empty(n, np.float32)
    c_odd = ((n - 1) & 1) == 1
    r_lo = buf[min(max(mid - 1, 0), n - 1)]
    r_hi = buf[min(mid, n - 1)]
    fw = 0
    n_fw = fw_pos.shape[0]
    while fw < n_fw and fw_pos[fw] < p_lo:
        fw += 1
    for p0 in range(p_lo, p_hi, block):
        nb_ = min(block, p_hi - p0)
        for x in range(nb_):
            cnt[x] = 0
            hasc[x] = 0
            cand[x] = zero
            mn_a[x] = nan32
            gsum[x] = zero
            wt[x] = zero
            bk[x] = 0.0
            rn[x] = 0.0
        negative_zero = False  # a -0.0 among the block's values: zero medians need a look
        for i in range(n):
            negative_zero |= _load_row(sp, ss, i, p0, srow, nb_)
            _load_row(wp, ws, i, p0, wrow, nb_)
            brow = buf[i]
            lim = wlim[i] if use_w else no_lim
            s_i = sps[i]
            r_i = rn2[i]
            # (several simple loops vectorise better than one that does everything)
            nonfin = False
            for x in range(nb_):
                s = srow[x]
                finite = abs(s) < inf
                # (a NaN or +inf weight is bad; -inf is below every limit)
                ok = finite & (((wrow[x] >= lim) & (wrow[x] != inf)) | (not use_w))
                c = cnt[x]
                brow[x] = s if ok else (ninf if ((i - c) & 1) == 0 else inf)
                okb[x] = ok
                cnt[x] = c + np.int32(ok)
                nonfin |= not finite
            if nonfin:
                _count_row(srow, nb_, nonfinite, i)
            # np.fmin as its SIMD loop does it: NaN ignored, a tie returns the 2nd operand;
            # two buffers, so that no store writes back a value it loaded
            mn_src, mn_dst = (mn_a, mn_b) if i % 2 == 0 else (mn_b, mn_a)
            for x in range(nb_):
                v = srow[x]
                a = mn_src[x]
                mn_dst[x] = a if okb[x] == 0 else (a if a < v else v)
            for x in range(nb_):
                w = wrow[x]
                wt[x] = wt[x] + (w if abs(w) < inf else zero)  # NaN/inf weights count as 0
                gsum[x] = gsum[x] + (srow[x] if okb[x] != 0 else zero)
            for x in range(nb_):
                w = wrow[x]
                bk[x] = bk[x] + np.float64(w if abs(w) < inf else zero) * s_i
                rn[x] = rn[x] + (1.0 if okb[x] != 0 else 0.0) * r_i
            if fill:
                _gather_fill(srow, nb_, cand, hasc)
        mn = mn_b if n % 2 == 1 else mn_a
        # positions where NumPy's fmin takes its scalar path: the first operand wins a tie
        while fw < n_fw and fw_pos[fw] < p0 + nb_:
            p = fw_pos[fw]
            a = nan32
            for i in range(n):
                s = _at(sp, ss, i, p)
                ok = abs(s) < inf
                if use_w:
                    w = _at(wp, ws, i, p)
                    ok = ok & (w >= wlim[i]) & (w != inf)
                v = s if ok else nan32
                if i == 0:
                    a = v
                elif not (a <= v or v != v):
                    a = v
            mn[p - p0] = a
            fw += 1
        if mn_fix.shape[0] > 0 and p0 == 0 and nb_ == 1:  # one pixel: NumPy's own minimum
            mn[0] = mn_fix[0]
        _sort_block(buf, net, nb_)
        # the "median" image
        n_redo = 0
        for x in range(nb_):
            g = cnt[x]
            lo = r_lo[x]
            hi = r_hi[x]
            if n == 2:  # the mean of both, summed in ascending order from +0.0
                res = np.float32(((0.0 + np.float64(lo)) + np.float64(hi)) / 2)
                zeros = False
            else:
                ev = (g & 1) == 1  # m = g - 1 even
                avg = np.float32((np.float64(hi) + np.float64(lo)) / 2.0)
                one = lo if c_odd else hi
                res = avg if ev else one
                zeros = negative_zero & (((hi == 0) & (lo == 0)) if ev else (one == 0))
            empty = cand[x] if (fill & (hasc[x] != 0)) else zero
            # one good value: the float32 sum of the good values from +0.0
            res = gsum[x] if g == 1 else res
            med[x] = res if g > 0 else empty
            flag = (g >= 2) & zeros
            redo[x] = flag
            n_redo += flag
        if n_redo:
            for x in range(nb_):
                if redo[x]:
                    g = cnt[x]
                    med[x] = _redo_median(sp, ss, wp, ws, use_w, wlim, no_lim, inf, p0 + x,
                                          k_of[g], even[g], tmp, med[x], False)
        o = p0 - p_lo
        for x in range(nb_):
            g = cnt[x]
            minimum = mn[x] if g > 0 else zero
            w_sum = wt[x]
            min_w = np.float32(minimum * w_sum)
            med_w = np.float32(med[x] * w_sum)
            var = (np.float64(med_w) + bk[x]) + (rn[x] if rn_masks else rn_const)
            var = var if var > 0.0 else 0.0  # np.fmax(var, 0): NaN → 0
            rms = np.sqrt(var)
            mw = np.float64(min_w)
            f1[o + x] = mw < np.float64(med_w) - rms * n1
            f2[o + x] = mw < np.float64(med_w) - rms * n2
            mn_out[o + x] = minimum
            med_out[o + x] = med[x]
            gcount[o + x] = g


@nb.njit(**_JIT)
def _minmed_decide(mn, med, f1, f2, gcount, nx, y0c, y1c, lo, hi, grow, n, fillval,
                   out, ngood, minchosen):
    """Grow dilation of the first flags (a (2·grow+1)² box, zero outside the section rows
    ``[y0c, y1c)`` computed), then the decision, for output rows ``[lo, hi)``.

    The dilation is separable: a running count over each row (for grow = 1, three shifted
    ORs), then a sliding window sum of those rows down the columns."""
    rows = y1c - y0c
    hflag = np.zeros((max(rows, 1), nx), np.uint8)
    colsum = np.zeros(nx, np.int32)
    grown = np.zeros(nx, np.uint8)
    if grow > 0:
        pre = np.empty(nx + 1, np.int32)
        for r in range(rows):
            row = f1[r * nx:(r + 1) * nx]
            h = hflag[r]
            if grow == 1:
                for x in range(nx):
                    h[x] = row[x]
                for x in range(1, nx):
                    h[x] |= row[x - 1]
                for x in range(nx - 1):
                    h[x] |= row[x + 1]
            else:
                pre[0] = 0
                for x in range(nx):
                    pre[x + 1] = pre[x] + row[x]
                for x in range(nx):
                    a = x - grow if x - grow > 0 else 0
                    b = x + grow + 1 if x + grow + 1 < nx else nx
                    h[x] = pre[b] > pre[a]
        w0 = lo - grow if lo - grow > y0c else y0c
        w1 = lo + grow + 1 if lo + grow + 1 < y1c else y1c
        for yy in range(w0, w1):
            h = hflag[yy - y0c]
            for x in range(nx):
                colsum[x] += h[x]
    one = np.uint8(1)
    for y in range(lo, hi):
        b0 = (y - y0c) * nx
        o0 = (y - lo) * nx
        if grow > 0:
            for x in range(nx):
                grown[x] = colsum[x] > 0
        r_mn, r_med, r_f1, r_f2 = mn[b0:b0 + nx], med[b0:b0 + nx], f1[b0:b0 + nx], f2[b0:b0 + nx]
        r_g = gcount[b0:b0 + nx]
        r_out, r_ng, r_mc = out[o0:o0 + nx], ngood[o0:o0 + nx], minchosen[o0:o0 + nx]
        for x in range(nx):
            g = r_g[x]
            chosen = (r_f2[x] & grown[x]) | (r_f1[x] & (grown[x] ^ one))
            good = np.uint8(g > 0)
            pick = r_mn[x] if chosen != 0 else r_med[x]
            r_out[x] = pick if good != 0 else fillval
            r_mc[x] = chosen & good
            r_ng[x] = g if g < 65535 else 65535
        if grow > 0:
            # slide the window: drop row y - grow, add row y + grow + 1
            yd = y - grow
            if yd >= y0c:
                h = hflag[yd - y0c]
                for x in range(nx):
                    colsum[x] -= h[x]
            ya = y + grow + 1
            if ya < y1c:
                h = hflag[ya - y0c]
                for x in range(nx):
                    colsum[x] += h[x]


_WEIGHT_CHUNK = 2048


@nb.njit(inline="always", **_JIT)
def _weights_to_f64(ptr, swap, x0, m, vals):
    """``vals[:m]`` = weights ``[x0, x0 + m)`` of a plane as float64, 0.0 for those left out
    (< float32(1e-8), NaN or +inf); returns whether a NaN or ±inf was seen and how many were
    kept (vectorised)."""
    src = nb.carray(_u32_ptr(ptr + 4 * x0), (m,))
    inf = np.float32(np.inf)
    nan_seen = False
    count = np.int32(0)
    for x in range(m):
        w = _value(src[x], swap)
        good = (w >= MIN_WEIGHT) & (w != inf)  # False for NaN
        vals[x] = np.float64(w) if good else 0.0
        nan_seen |= not (abs(w) < inf)
        count += np.int32(1) if good else np.int32(0)
    return nan_seen, count


@nb.njit(**_JIT)
def _count_nan(ptr, swap, x0, m):
    """How many of the weights ``[x0, x0 + m)`` are NaN or ±inf."""
    src = nb.carray(_u32_ptr(ptr + 4 * x0), (m,))
    inf = np.float32(np.inf)
    c = 0
    for x in range(m):
        w = _value(src[x], swap)
        c += not (abs(w) < inf)
    return c




@nb.njit(**_JIT)
def _weight_sums_kernel(ptrs, swaps, m, totals, counts, nans):
    """For each of up to six planes of ``m`` weights (float32 bits at ``ptrs``): the sequential
    float64 sum, from ``totals[k]``, of its finite weights >= float32(1e-8) (NaN and +inf
    excluded) — exactly what ``np.cumsum`` from ``totals[k]`` gives — their count and the
    number of NaN/±inf weights.

    Chunk by chunk: the weights are converted to float64 (0.0 for one left out; adding 0.0
    changes no bit, as a sum from +0.0 of values >= 0 is never -0.0) in a vectorised loop,
    then the images' chains of dependent additions run side by side in one loop (each chain is
    bound by the latency of an addition, so more chains per loop use the adders better)."""
    k = ptrs.shape[0]
    vals = np.zeros((6, _WEIGHT_CHUNK), np.float64)
    s0, s1, s2 = totals[0], totals[1 % k], totals[2 % k]
    s3, s4, s5 = totals[3 % k], totals[4 % k], totals[5 % k]
    for x0 in range(0, m, _WEIGHT_CHUNK):
        mm = min(_WEIGHT_CHUNK, m - x0)
        for j in range(k):
            nan_seen, kept = _weights_to_f64(ptrs[j], swaps[j] != 0, x0, mm, vals[j])
            counts[j] += kept
            if nan_seen:
                nans[j] += _count_nan(ptrs[j], swaps[j] != 0, x0, mm)
        v0, v1, v2, v3, v4, v5 = vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]
        if k == 1:
            for x in range(mm):
                s0 = s0 + v0[x]
        elif k == 2:
            for x in range(mm):
                s0 = s0 + v0[x]
                s1 = s1 + v1[x]
        elif k <= 4:  # 3 or 4 (a fourth plane of zeros costs little)
            for x in range(mm):
                s0 = s0 + v0[x]
                s1 = s1 + v1[x]
                s2 = s2 + v2[x]
                s3 = s3 + v3[x]
        else:  # 5 or 6
            for x in range(mm):
                s0 = s0 + v0[x]
                s1 = s1 + v1[x]
                s2 = s2 + v2[x]
                s3 = s3 + v3[x]
                s4 = s4 + v4[x]
                s5 = s5 + v5[x]
    sums = (s0, s1, s2, s3, s4, s5)
    for j in range(k):
        totals[j] = sums[j]


def weight_sums(blocks, totals) -> tuple[list[float], list[int], list[int]]:
    """Accumulate blocks of weights as drizzlepac's ImageStats mean does (see
    :class:`medstack.core.weights.WeightMean`), up to :data:`WEIGHT_LANES` images at once.

    Parameters
    ----------
    blocks : sequence of ndarray
        One block of float32 weights per image (either byte order, the same size each), added
        in C order.
    totals : sequence of float
        The running sum of each image so far.

    Returns
    -------
    totals, counts, nan_counts : list
        Per image: the new running sum, and how many weights it added and how many were NaN.
    """
    out_t: list[float] = []
    out_c: list[int] = []
    out_n: list[int] = []
    for g0 in range(0, len(blocks), WEIGHT_LANES):
        group = [np.asarray(b) for b in blocks[g0:g0 + WEIGHT_LANES]]
        ptrs, swaps, keep, (r, nx) = _planes([b.reshape(1, -1) for b in group])
        t = np.array(totals[g0:g0 + WEIGHT_LANES], dtype=np.float64)
        c = np.zeros(len(group), dtype=np.int64)
        nn = np.zeros(len(group), dtype=np.int64)
        _weight_sums_kernel(ptrs, swaps, r * nx, t, c, nn)
        del keep
        out_t += [float(v) for v in t]
        out_c += [int(v) for v in c]
        out_n += [int(v) for v in nn]
    return out_t, out_c, out_n


# ---------------------------------------------------------------------------------------------
# the contract


@dataclass
class FastSectionResult(SectionResult):
    """:class:`~medstack.kernels.SectionResult` plus what the compiled pass counts on the way.

    Attributes
    ----------
    nonfinite : ndarray (N,) int64 or None
        Per image, the NaN/±inf science values in the output rows (they are masked).
    """

    nonfinite: np.ndarray | None = None


def _planes(stack, n_expected: int | None = None) -> tuple[np.ndarray, np.ndarray, list, tuple]:
    """The planes of a stack as the kernels take them: the address of each plane's first value
    (int64), whether it is big-endian (uint8), the arrays to keep alive, and the plane shape.

    ``stack`` is an (N, r, nx) array or a sequence of N (r, nx) arrays, float32 of either byte
    order (FITS data as read, or native); anything else is converted to native float32.
    """
    planes = [stack[i] for i in range(stack.shape[0])] if isinstance(stack, np.ndarray) \
        else list(stack)
    if n_expected is not None and len(planes) != n_expected:
        raise ValueError(f"{len(planes)} weight planes for {n_expected} science planes")
    keep, ptrs, swaps = [], [], []
    shape = None
    for plane in planes:
        plane = np.asarray(plane)
        if plane.dtype.kind != "f" or plane.dtype.itemsize != 4 or not plane.flags.c_contiguous:
            plane = np.ascontiguousarray(plane, dtype=np.float32)
        if plane.ndim != 2:
            raise ValueError(f"planes must be 2-D, got shape {plane.shape}")
        if shape is None:
            shape = plane.shape
        elif plane.shape != shape:
            raise ValueError(f"planes of different shapes: {shape} and {plane.shape}")
        keep.append(plane)
        ptrs.append(plane.ctypes.data)
        swaps.append(0 if plane.dtype.isnative else 1)
    if shape is None:
        raise ValueError("no input planes")
    return (np.array(ptrs, dtype=np.int64), np.array(swaps, dtype=np.uint8), keep,
            (int(shape[0]), int(shape[1])))


def combine_section(
    sci,
    wht,
    spec: CombineSpec,
    *,
    thresholds: np.ndarray | None,
    scalars: ImageScalars | None,
    rows: tuple[int, int],
) -> FastSectionResult:
    """See :func:`medstack.kernels.combine_section`.

    Parameters
    ----------
    sci, wht : ndarray (N, r, nx) or sequence of N ndarrays (r, nx)
        float32, big-endian (as in FITS files) or native; used where they lie, without a
        converted copy (the kernels byte-swap each value as they load it), so the planes can be
        views of N different files.

    Returns
    -------
    FastSectionResult
        The section result, with the per-image NaN/inf counts of the output rows.
    """
    sp, ss, keep_s, (r, nx) = _planes(sci)
    n = sp.shape[0]
    lo, hi = rows
    if not 0 <= lo <= hi <= r:
        raise ValueError(f"rows {rows} outside the section's {r} rows")
    kind = spec.kind
    counts = np.zeros(n, dtype=np.int64)
    out = np.empty((hi - lo, nx), dtype=np.float32)
    ngood = np.empty((hi - lo, nx), dtype=np.uint16)
    flat_out, flat_ngood = out.reshape(-1), ngood.reshape(-1)
    fillval = np.float32(spec.fillval)
    block = _block(n)
    minchosen = None
    use_w = thresholds is not None or kind == "minmed"
    if use_w and wht is None:
        raise ValueError("weight masks and minmed need weights")
    if use_w:
        wp, ws, keep_w, wshape = _planes(wht, n)
        if wshape != (r, nx):
            raise ValueError(f"weights {wshape} and science {(r, nx)} differ in shape")
    else:
        wp, ws, keep_w = sp, ss, []
    wlim = _weight_limits(thresholds, n)
    if kind == "sum" and r * nx == 1 and hi > lo:
        _one_pixel_sum(sp, ss, fillval, flat_out, flat_ngood, counts)
    elif kind == "sum":
        _sum_kernel(sp, ss, lo * nx, hi * nx, fillval, block, flat_out, flat_ngood, counts)
    elif kind in ("median", "mean"):
        vlo, vhi = _value_limits(spec)
        is_median = kind == "median"
        nlow, nhigh = int(spec.nlow), int(spec.nhigh)
        k_of, even = _median_table(n, nlow, nhigh)
        mid = _middle(n, nlow, nhigh)
        if is_median:
            needed = tuple(p for p in (mid - 1, mid) if 0 <= p < n)
        else:
            needed = tuple(range(min(nlow, n), max(n - nhigh, 0)))
        net = sorting_network(n, needed)
        _numcombine_kernel(sp, ss, wp, ws, thresholds is not None, wlim, vlo, vhi, is_median,
                           bool(spec.fill), k_of, even, mid, nlow, nhigh, fillval, net,
                           lo * nx, hi * nx, block, flat_out, flat_ngood, counts)
    elif kind == "minmed":
        minchosen = _minmed(sp, ss, wp, ws, thresholds, wlim, spec, scalars, r, nx, lo, hi,
                            block, fillval, flat_out, flat_ngood, counts)
    else:
        raise ValueError(f"unknown combine kind {kind!r}")
    del keep_s, keep_w  # (held until the kernels are done with the addresses)
    return FastSectionResult(median=out, ngood=ngood, minchosen=minchosen, nonfinite=counts)


def _pixel_values(ptrs: np.ndarray, swaps: np.ndarray) -> np.ndarray:
    """The first value of each plane (native float32), from the kernels' plane addresses."""
    out = np.empty(ptrs.shape[0], dtype=np.float32)
    _gather_first(ptrs, swaps, out)
    return out


@nb.njit(**_JIT)
def _gather_first(ptrs, swaps, out):
    for i in range(ptrs.shape[0]):
        out[i] = _at(ptrs, swaps, i, 0)


def _one_pixel_sum(sp, ss, fillval, flat_out, flat_ngood, counts) -> None:
    """``sum`` of a one-pixel section: NumPy's pairwise sum (see the module notes)."""
    vals = _pixel_values(sp, ss)
    finite = np.isfinite(vals)
    total = reference.one_pixel_sum(np.where(finite, vals, np.float32(0)).reshape(-1, 1, 1))
    flat_out[0] = total[0, 0] if finite.any() else fillval
    flat_ngood[0] = min(int(finite.sum()), 65535)
    counts += ~finite


def _one_pixel_minimum(sp, ss, wp, ws, thresholds) -> np.ndarray:  # type: ignore[no-untyped-def]
    """minmed's minimum of a one-pixel section, as drizzlepac's NumPy call makes it."""
    vals = _pixel_values(sp, ss)
    masked = ~np.isfinite(vals)
    if thresholds is not None:
        w = _pixel_values(wp, ws)
        masked |= (w.astype(np.float64) < np.asarray(thresholds, np.float64)) | ~np.isfinite(w)
    vals = np.where(masked, np.float32(np.nan if thresholds is not None else np.inf), vals)
    if masked.all():
        vals[:] = 0
    return reference.minimum_as_numpy(vals.reshape(-1, 1, 1), thresholds is not None).ravel()


def count_nonfinite(values: np.ndarray) -> int:
    """How many NaN/±inf values a float32 array (either byte order) holds."""
    sp, ss, keep, (r, nx) = _planes(np.asarray(values).reshape(1, -1, values.shape[-1]))
    counts = np.zeros(1, dtype=np.int64)
    _count_nonfinite(sp, ss, 0, r * nx, counts)
    del keep
    return int(counts[0])


def _minmed(sp, ss, wp, ws, thresholds, wlim, spec, scalars, r, nx, lo, hi, block, fillval,
            flat_out, flat_ngood, counts):  # type: ignore[no-untyped-def]
    n = sp.shape[0]
    if n < 2:
        raise ValueError("minmed needs two or more images")
    if scalars is None:
        raise ValueError("minmed needs weights and per-image scalars")
    grow = int(spec.grow)
    if grow < 0:
        raise ValueError(f"grow must be >= 0, got {grow}")
    # rows whose flags the grow box of the output rows can see
    y0c, y1c = (max(0, lo - grow), min(r, hi + grow)) if grow else (lo, hi)
    sps = np.array([float(s) / float(t) for s, t in zip(scalars.sky, scalars.exptime)],
                   dtype=np.float64)
    rn2 = scalars.readnoise.astype(np.float64) ** 2
    rn_const = float(np.float32(sum(float(v) ** 2 for v in scalars.readnoise)))
    k_of, even = _median_table(n, 0, 1)
    mid = _middle(n, 0, 1)
    net = sorting_network(n, tuple(p for p in (mid - 1, mid) if 0 <= p < n) if n >= 3 else None)
    fw_pos = _fmin_first_positions(r, nx, masks=thresholds is not None)
    mn_fix = np.empty(0, np.float32)
    if r * nx == 1:  # NumPy reduces along a contiguous axis there: its own result
        mn_fix = _one_pixel_minimum(sp, ss, wp, ws, thresholds)
    m = (y1c - y0c) * nx
    mn = np.empty(m, np.float32)
    med = np.empty(m, np.float32)
    f1 = np.empty(m, np.uint8)
    f2 = np.empty(m, np.uint8)
    gcount = np.empty(m, np.int32)
    _minmed_kernel(sp, ss, wp, ws, thresholds is not None, wlim, sps, rn2,
                   bool(spec.weight_masks), rn_const, float(spec.nsigma1), float(spec.nsigma2),
                   bool(spec.fill), k_of, even, mid, net, fw_pos, mn_fix, y0c * nx, y1c * nx,
                   block, mn, med, f1, f2, gcount, counts)
    # the halo rows belong to the neighbouring sections' counts
    halo = np.zeros(n, dtype=np.int64)
    _count_nonfinite(sp, ss, y0c * nx, lo * nx, halo)
    _count_nonfinite(sp, ss, hi * nx, y1c * nx, halo)
    counts -= halo
    minchosen = np.empty((hi - lo, nx), dtype=np.uint8)
    _minmed_decide(mn, med, f1, f2, gcount, nx, y0c, y1c, lo, hi, grow, n, fillval, flat_out,
                   flat_ngood, minchosen.reshape(-1))
    return minchosen


# ---------------------------------------------------------------------------------------------
# is a compile coming?
# ---------------------------------------------------------------------------------------------

#: The compiled functions each step calls from Python (their callees are compiled into them).
_ENTRY_POINTS: dict[str, tuple[str, ...]] = {
    "weights": ("_weight_sums_kernel",),
    "sum": ("_sum_kernel",),
    "median": ("_numcombine_kernel",),
    "mean": ("_numcombine_kernel",),
    "minmed": ("_minmed_kernel", "_minmed_decide", "_count_nonfinite"),
}


def _compiled(name: str) -> bool:
    """Whether the kernel ``name`` is compiled in this process or in numba's on-disk cache
    (an index for this very source file); True when that cannot be told."""
    dispatcher = globals()[name]
    if dispatcher.signatures:
        return True
    try:
        return bool(dispatcher._cache._cache_file._load_index())  # {} when missing or stale
    except Exception:  # numba's cache layout changed: say nothing rather than something wrong
        return True


#: About how long compiling each step's kernels takes, in seconds (measured on a loaded
#: 2-core machine; a faster machine takes less).
COMPILE_SECONDS: dict[str, float] = {"weights": 1.0, "sum": 1.0, "median": 3.0, "mean": 3.0,
                                     "minmed": 5.0}


def uncompiled(steps: tuple[str, ...] | list[str]) -> list[str]:
    """The kernels of ``steps`` (``"weights"``, ``"sum"``, ``"median"``, ``"mean"``,
    ``"minmed"``) that the first call will compile: neither compiled in this process nor found
    in numba's cache. Reads at most a few small index files (well under a millisecond)."""
    names = dict.fromkeys(n for step in steps for n in _ENTRY_POINTS.get(step, ()))
    return [n for n in names if not _compiled(n)]


def compile_seconds(steps: tuple[str, ...] | list[str]) -> float:
    """About how long the first call of ``steps`` will spend compiling, in seconds: 0 when
    every kernel they need is compiled already (see :func:`uncompiled`)."""
    return sum(COMPILE_SECONDS.get(step, 0.0) for step in dict.fromkeys(steps)
               if uncompiled([step]))
