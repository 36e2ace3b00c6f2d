"""Compiled kernels: C (``_fast.c``), fused per section, bit-identical to :mod:`.reference`.

This module plans each call (sorting networks, median positions, limits, NumPy's ``fmin``
tie positions) and hands the C library addresses and scalars; the library, built at
installation with the machine's C compiler (``setup.py``, or ``medstack-compile``), is loaded
with ctypes when this module is imported: no compiler runs then, and nothing is compiled
at run time. On x86-64 Linux each kernel is built for AVX-512, AVX2 and baseline x86-64 and
the best the CPU runs is picked at load time (the same operations at every width).

One pass over each block of pixels does everything the reference does in many whole-section
steps: the weight mask and the value thresholds, the gathering of the good values with a
per-pixel count (masked values become padding: -inf, +inf, -inf, ... for a median, which puts
every pixel's median at one of two fixed sorted positions whatever its count; +inf for a mean),
a sorting network run on whole blocks of pixels at once (vectorised min/max; Batcher's
odd-even merge sort, pruned to the positions needed: :mod:`.networks`; for the medians of up to
16 images written out in the C source, each pixel's values held in registers), the selection,
and for minmed its noise model, the grow dilation (running sums over the flags) and the decision. Pixels with fewer good
values than nlow + nhigh + 1 (drizzlepac's reduction rule) are done one by one.

Exactness. Everything the reference computes in float64 is computed in float64 here, in the
same order; no fast-math and no fused multiply-adds (the flags are in :mod:`._build`). The
places where a plain implementation would change bits:

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
rows, so the data are neither copied nor converted. ctypes releases the GIL for each call, so the
thread executor (:mod:`medstack.executors.threads`) runs sections on several threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import WEIGHT_LANES, reference
from ._library import load
from .networks import _middle, median_network, sorting_network
from .spec import MIN_WEIGHT, CombineSpec, ImageScalars, Planes, SectionResult, WeightSums

__all__ = ["combine_section", "sorting_network", "weight_sums"]

#: Bytes of the (N, B) float32 block of sorted values (L2-sized; B a multiple of 8).
_BLOCK_BYTES = 65536


# ---------------------------------------------------------------------------------------------
# planning helpers (plain Python, cached)


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
# the compiled library (_fast.c, built by pip install; see setup.py), loaded on import

_library = load()
_lib, _call = _library.cdll, _library.call


@dataclass
class _Planes:
    """The planes of a stack as the kernels take them.

    Attributes
    ----------
    ptrs : ndarray (N,) int64
        The address of each plane's first value.
    swaps : ndarray (N,) uint8
        1 where a plane is big-endian.
    keep : list of ndarray
        The arrays behind the addresses, held until the kernels are done with them.
    shape : (int, int)
        The shape of every plane.
    """

    ptrs: np.ndarray
    swaps: np.ndarray
    keep: list[np.ndarray]
    shape: tuple[int, int]


def _planes(stack: Planes, n_expected: int | None = None) -> _Planes:
    """``stack``, an (N, r, nx) array or a sequence of N (r, nx) arrays, float32 of either byte
    order (FITS data as read, or native), as the kernels take it; anything else is converted to
    native float32."""
    planes = [stack[i] for i in range(stack.shape[0])] if isinstance(stack, np.ndarray) \
        else list(stack)
    if n_expected is not None and len(planes) != n_expected:
        raise ValueError(f"{len(planes)} weight planes for {n_expected} science planes")
    keep: list[np.ndarray] = []
    shape: tuple[int, ...] | None = None
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
    if shape is None:
        raise ValueError("no input planes")
    return _Planes(np.array([p.ctypes.data for p in keep], dtype=np.int64),
                   np.array([0 if p.dtype.isnative else 1 for p in keep], dtype=np.uint8),
                   keep, (int(shape[0]), int(shape[1])))


def weight_sums(blocks: Sequence[np.ndarray], totals: Sequence[float]) -> WeightSums:
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
        group = _planes([np.asarray(b).reshape(1, -1) for b in blocks[g0:g0 + WEIGHT_LANES]])
        k = group.ptrs.shape[0]
        t = np.array(totals[g0:g0 + WEIGHT_LANES], dtype=np.float64)
        c = np.zeros(k, dtype=np.int64)
        nn = np.zeros(k, dtype=np.int64)
        _call("medstack_weight_sums", ptrs=group.ptrs, swaps=group.swaps, k=k,
              m=group.shape[1], min_weight=MIN_WEIGHT, totals=t, counts=c, nans=nn)
        out_t += [float(v) for v in t]
        out_c += [int(v) for v in c]
        out_n += [int(v) for v in nn]
    return out_t, out_c, out_n


# ---------------------------------------------------------------------------------------------
# the contract


def combine_section(
    sci: Planes,
    wht: Planes | None,
    spec: CombineSpec,
    *,
    thresholds: np.ndarray | None,
    scalars: ImageScalars | None,
    rows: tuple[int, int],
) -> SectionResult:
    """See :meth:`medstack.kernels.Kernels.combine_section`.

    Parameters
    ----------
    sci, wht : ndarray (N, r, nx) or sequence of N ndarrays (r, nx)
        float32, big-endian (as in FITS files) or native; used where they lie, without a
        converted copy (the kernels byte-swap each value as they load it), so the planes can be
        views of N different files.

    Returns
    -------
    SectionResult
        The section result, with the per-image NaN/inf counts of the output rows.
    """
    s = _planes(sci)
    n = s.ptrs.shape[0]
    r, nx = s.shape
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
    w = s
    if use_w:
        if wht is None:
            raise ValueError("weight masks and minmed need weights")
        w = _planes(wht, n)
        if w.shape != s.shape:
            raise ValueError(f"weights {w.shape} and science {s.shape} differ in shape")
    wlim = _weight_limits(thresholds, n)
    if kind == "sum" and r * nx == 1 and hi > lo:
        _one_pixel_sum(s, fillval, flat_out, flat_ngood, counts)
    elif kind == "sum":
        _call("medstack_sum", sp=s.ptrs, ss=s.swaps, n=n, p_lo=lo * nx, p_hi=hi * nx,
              fillval=fillval, block=block, out=flat_out, ngood=flat_ngood, nonfinite=counts)
    elif kind in ("median", "mean"):
        vlo, vhi = _value_limits(spec)
        is_median = kind == "median"
        nlow, nhigh = int(spec.nlow), int(spec.nhigh)
        k_of, even = _median_table(n, nlow, nhigh)
        mid = _middle(n, nlow, nhigh)
        net = median_network(n, mid) if is_median else \
            sorting_network(n, tuple(range(min(nlow, n), max(n - nhigh, 0))))
        _call("medstack_numcombine", sp=s.ptrs, ss=s.swaps, wp=w.ptrs, ws=w.swaps, n=n,
              use_w=thresholds is not None, wlim=wlim, vlo=vlo, vhi=vhi, is_median=is_median,
              fill=spec.fill, k_of=k_of, even=even, mid=mid, nlow=nlow, nhigh=nhigh,
              fillval=fillval, net=net, ncomp=net.shape[0], p_lo=lo * nx, p_hi=hi * nx,
              block=block, out=flat_out, ngood=flat_ngood, nonfinite=counts)
    elif kind == "minmed":
        if scalars is None:
            raise ValueError("minmed needs weights and per-image scalars")
        minchosen = _minmed(s, w, thresholds, wlim, spec, scalars, rows, block, flat_out,
                            flat_ngood, counts)
    else:
        raise ValueError(f"unknown combine kind {kind!r}")
    del s, w  # (the planes are held until the kernels are done with their addresses)
    return SectionResult(median=out, ngood=ngood, minchosen=minchosen, nonfinite=counts)


def _pixel_values(stack: _Planes) -> np.ndarray:
    """The first value of each plane (native float32)."""
    out = np.empty(stack.ptrs.shape[0], dtype=np.float32)
    _call("medstack_gather_first", ptrs=stack.ptrs, swaps=stack.swaps, n=stack.ptrs.shape[0],
          out=out)
    return out


def _one_pixel_sum(s: _Planes, fillval: np.float32, flat_out: np.ndarray,
                   flat_ngood: np.ndarray, counts: np.ndarray) -> None:
    """``sum`` of a one-pixel section: NumPy's pairwise sum (see the module notes)."""
    vals = _pixel_values(s)
    finite = np.isfinite(vals)
    total = reference.one_pixel_sum(np.where(finite, vals, np.float32(0)).reshape(-1, 1, 1))
    flat_out[0] = total[0, 0] if finite.any() else fillval
    flat_ngood[0] = min(int(finite.sum()), 65535)
    counts += ~finite


def _one_pixel_minimum(s: _Planes, w: _Planes, thresholds: np.ndarray | None) -> np.ndarray:
    """minmed's minimum of a one-pixel section, as drizzlepac's NumPy call makes it."""
    vals = _pixel_values(s)
    masked = ~np.isfinite(vals)
    if thresholds is not None:
        wv = _pixel_values(w)
        masked |= (wv.astype(np.float64) < np.asarray(thresholds, np.float64)) | ~np.isfinite(wv)
    vals = np.where(masked, np.float32(np.nan if thresholds is not None else np.inf), vals)
    if masked.all():
        vals[:] = 0
    return reference.minimum_as_numpy(vals.reshape(-1, 1, 1), thresholds is not None).ravel()


def _minmed(s: _Planes, w: _Planes, thresholds: np.ndarray | None, wlim: np.ndarray,
            spec: CombineSpec, scalars: ImageScalars, rows: tuple[int, int], block: int,
            flat_out: np.ndarray, flat_ngood: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """minmed of output rows ``rows``: the per-pixel part over the rows the grow box sees, then
    the dilation and the decision; returns the minchosen rows."""
    n = s.ptrs.shape[0]
    r, nx = s.shape
    lo, hi = rows
    if n < 2:
        raise ValueError("minmed needs two or more images")
    grow = int(spec.grow)
    if grow < 0:
        raise ValueError(f"grow must be >= 0, got {grow}")
    # rows whose flags the grow box of the output rows can see
    y0c, y1c = (max(0, lo - grow), min(r, hi + grow)) if grow else (lo, hi)
    sps = np.array([float(sky) / float(t) for sky, t in zip(scalars.sky, scalars.exptime)],
                   dtype=np.float64)
    rn2 = scalars.readnoise.astype(np.float64) ** 2
    rn_const = float(np.float32(sum(float(v) ** 2 for v in scalars.readnoise)))
    k_of, even = _median_table(n, 0, 1)
    mid = _middle(n, 0, 1)
    net = median_network(n, mid)  # (for n < 3: the whole network)
    fw_pos = _fmin_first_positions(r, nx, masks=thresholds is not None)
    mn_fix = np.empty(0, np.float32)
    if r * nx == 1:  # NumPy reduces along a contiguous axis there: its own result
        mn_fix = _one_pixel_minimum(s, w, thresholds)
    m = (y1c - y0c) * nx
    mn = np.empty(m, np.float32)
    med = np.empty(m, np.float32)
    f1 = np.empty(m, np.uint8)
    f2 = np.empty(m, np.uint8)
    gcount = np.empty(m, np.int32)
    _call("medstack_minmed", sp=s.ptrs, ss=s.swaps, wp=w.ptrs, ws=w.swaps, n=n,
          use_w=thresholds is not None, wlim=wlim, sps=sps, rn2=rn2, rn_masks=spec.weight_masks,
          rn_const=rn_const, n1=spec.nsigma1, n2=spec.nsigma2, fill=spec.fill, k_of=k_of,
          even=even, mid=mid, net=net, ncomp=net.shape[0], fw_pos=fw_pos, n_fw=fw_pos.shape[0],
          mn_fix=mn_fix, n_fix=mn_fix.shape[0], p_lo=y0c * nx, p_hi=y1c * nx, block=block,
          mn_out=mn, med_out=med, f1=f1, f2=f2, gcount=gcount, nonfinite=counts)
    # the halo rows belong to the neighbouring sections' counts
    halo = np.zeros(n, dtype=np.int64)
    for p_lo, p_hi in ((y0c * nx, lo * nx), (hi * nx, y1c * nx)):
        _call("medstack_count_nonfinite", sp=s.ptrs, ss=s.swaps, n=n, p_lo=p_lo, p_hi=p_hi,
              counts=halo)
    counts -= halo
    minchosen = np.empty((hi - lo, nx), dtype=np.uint8)
    _call("medstack_minmed_decide", mn=mn, med=med, f1=f1, f2=f2, gcount=gcount, nx=nx, y0c=y0c,
          y1c=y1c, lo=lo, hi=hi, grow=grow, fillval=np.float32(spec.fillval), out=flat_out,
          ngood=flat_ngood, minchosen=minchosen)
    return minchosen
