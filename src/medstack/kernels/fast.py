"""Compiled kernels: C (``_fast.c``), fused per section, bit-identical to :mod:`.reference`.

This module plans each call (sorting networks, median positions, limits, NumPy's ``fmin`` tie
positions) for the C library, loaded with ctypes on import (built at installation). One pass
over each block of pixels does what the reference does in whole-section steps: masks, gathering
the good values (padded so that every median is at one of two fixed sorted positions), a sorting
network (:mod:`.networks`) over the block, the selection, and minmed's noise model, dilation and
decision. The planes are read where they lie, in either byte order (views of memory-mapped FITS
rows); ctypes releases the GIL for each call, so sections run on several threads.

Notes
-----
Everything the reference computes in float64 is computed in float64, in the same order, without
fast-math or fused multiply-adds (:mod:`._build`). Where a plain implementation would change bits:

- The weight mask ``float64(w) < t`` is evaluated as ``w < t32`` with ``t32`` the smallest
  float32 ``>= t`` (equivalent for every float32 ``w``); a NaN weight fails ``w >= t32``.
- Sorting networks do not say where ``-0.0`` and ``+0.0`` land among equal values; the reference
  (like drizzlepac) uses an exchange sort that does. A median that picks zeros from a pixel
  holding a ``-0.0`` is redone with the exchange sort.
- minmed's minimum is NumPy's ``fmin.reduce`` (``minimum.reduce`` without weight masks), whose
  SIMD loops return the *second* operand of a ``±0`` tie and whose scalar tail loops may return
  the *first*: the positions NumPy treats that way are probed once per section size
  (:func:`_fmin_first_positions`) and redone first-wins. A one-pixel section is reduced by NumPy
  along a contiguous axis: there the minimum (and ``sum``'s pairwise sum) is NumPy's own.
- Sequential sums start from ``+0.0`` and run in stack order (float32 weights, ``sum``) or in
  sorted order (float64 ``mean``), as the reference writes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from . import WEIGHT_LANES, reference
from ._library import load
from .networks import _middle, median_network, sorting_network
from .spec import MIN_WEIGHT, CombineSpec, ImageScalars, Planes, SectionResult, WeightSums

__all__ = ["combine_section", "sorting_network", "weight_sums"]

#: Bytes of the (N, B) float32 block of sorted values (L2-sized; B a multiple of 8).
_BLOCK_BYTES = 65536


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
            nl, nh = max(nl - 1, 0), max(nh - 1, 0)
        m = g - nl - nh
        k_of[g] = nl + m // 2
        even[g] = m % 2 == 0
    return k_of, even


def _weight_limits(thresholds: np.ndarray | None, n: int) -> np.ndarray:
    """Per image: a weight is good where ``w >= limit``, the smallest float32 >= its threshold
    (so that ``float64(w) < t`` ⇔ ``w < limit`` for float32 w); -inf for none or NaN."""
    if thresholds is None:
        return np.full(n, -np.inf, dtype=np.float32)
    t = np.asarray(thresholds, np.float64)
    with np.errstate(over="ignore"):
        limits = t.astype(np.float32)
    limits = np.where(limits < t, np.nextafter(limits, np.float32(np.inf)), limits)
    limits[np.isnan(t)] = -np.inf
    return limits


@lru_cache(maxsize=64)
def _fmin_first_positions(n_pixels: int, masks: bool) -> np.ndarray:
    """Flat positions of an ``(N, rows, nx)`` section (``n_pixels = rows * nx``) where NumPy's
    ``fmin`` (with weight masks, else ``minimum``) reduction over axis 0 returns the first operand
    of a ``±0`` tie. Probed, not assumed: it depends on the CPU and NumPy build."""
    probe = np.zeros((2, 1, n_pixels), dtype=">f4")  # big-endian, as drizzlepac holds them
    probe[1] = np.float32(-0.0)
    first = ~np.signbit((np.fmin if masks else np.minimum).reduce(probe, axis=0)).ravel()
    return np.flatnonzero(first).astype(np.int64)


_library = load()
_lib, _call = _library.cdll, _library.call


class _Planes(NamedTuple):
    """A stack as the kernels take it: each plane's address and 1 where it is big-endian, the
    planes themselves (held until the kernels are done with the addresses), their shape."""

    ptrs: np.ndarray
    swaps: np.ndarray
    keep: list[np.ndarray]
    shape: tuple[int, int]


def _planes(stack: Planes) -> _Planes:
    """``stack``, an (N, r, nx) array or a sequence of N (r, nx) arrays, float32 of either byte
    order (FITS data as read, or native), as the kernels take it; anything else is converted to
    native float32."""
    keep = [p if p.dtype.kind == "f" and p.dtype.itemsize == 4 and p.flags.c_contiguous
            else np.ascontiguousarray(p, dtype=np.float32) for p in map(np.asarray, stack)]
    shapes = {p.shape for p in keep}
    if len(shapes) != 1 or keep[0].ndim != 2:
        raise ValueError(f"expected planes of one 2-D shape, got shapes {sorted(shapes)}")
    return _Planes(np.array([p.ctypes.data for p in keep], dtype=np.int64),
                   np.array([0 if p.dtype.isnative else 1 for p in keep], dtype=np.uint8),
                   keep, keep[0].shape)


def weight_sums(blocks: Sequence[np.ndarray], totals: Sequence[float]) -> WeightSums:
    """See :meth:`medstack.kernels.Kernels.weight_sums`: the blocks (float32 of either byte
    order, added in C order) of up to :data:`WEIGHT_LANES` images per kernel call."""
    out: WeightSums = ([], [], [])
    for g0 in range(0, len(blocks), WEIGHT_LANES):
        group = _planes([np.asarray(b).reshape(1, -1) for b in blocks[g0:g0 + WEIGHT_LANES]])
        k = len(group.keep)
        sums = np.array(totals[g0:g0 + WEIGHT_LANES], dtype=np.float64)
        counts, nans = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
        _call("medstack_weight_sums", ptrs=group.ptrs, swaps=group.swaps, k=k,
              m=group.shape[1], min_weight=MIN_WEIGHT, totals=sums, counts=counts, nans=nans)
        for got, new in zip(out, (sums, counts, nans)):
            got += new.tolist()
    return out


def combine_section(sci: Planes, wht: Planes | None, spec: CombineSpec, *,
                    thresholds: np.ndarray | None, scalars: ImageScalars | None,
                    rows: tuple[int, int]) -> SectionResult:
    """See :meth:`medstack.kernels.Kernels.combine_section`; the planes are read where they
    lie, without a converted copy."""
    s = _planes(sci)
    n = len(s.keep)
    r, nx = s.shape
    lo, hi = rows
    if not 0 <= lo <= hi <= r:
        raise ValueError(f"rows {rows} outside the section's {r} rows")
    kind = spec.kind
    if kind == "sum" and r * nx == 1:  # NumPy's own pairwise sum (see the notes)
        return reference.combine_section(sci, wht, spec, thresholds=thresholds,
                                         scalars=scalars, rows=rows)
    counts = np.zeros(n, dtype=np.int64)
    out = np.empty((hi - lo, nx), dtype=np.float32)
    ngood = np.empty((hi - lo, nx), dtype=np.uint16)
    flat_out, flat_ngood = out.reshape(-1), ngood.reshape(-1)
    fillval = np.float32(spec.fillval)
    block = max(8, min(2048, _BLOCK_BYTES // (4 * n) // 8 * 8))  # pixels per block
    minchosen = None
    w = s
    if thresholds is not None or kind == "minmed":
        if wht is None:
            raise ValueError("weight masks and minmed need weights")
        w = _planes(wht)
        if w.shape != s.shape or len(w.keep) != n:
            raise ValueError(f"{len(w.keep)} weight planes of {w.shape} for {n} science "
                             f"planes of {s.shape}")
    wlim = _weight_limits(thresholds, n)
    if kind == "sum":
        _call("medstack_sum", sp=s.ptrs, ss=s.swaps, n=n, p_lo=lo * nx, p_hi=hi * nx,
              fillval=fillval, block=block, out=flat_out, ngood=flat_ngood, nonfinite=counts)
    elif kind in ("median", "mean"):
        nlow, nhigh = int(spec.nlow), int(spec.nhigh)
        k_of, even = _median_table(n, nlow, nhigh)
        mid = _middle(n, nlow, nhigh)
        net = median_network(n, mid) if kind == "median" else \
            sorting_network(n, tuple(range(min(nlow, n), max(n - nhigh, 0))))
        # a finite value is kept where vlo <= v < vhi (float32), as the reference's thresholds
        vlo, vhi = (np.float32(default if v is None or math.isnan(v) else v)
                    for v, default in ((spec.lthresh, -np.inf), (spec.hthresh, np.inf)))
        _call("medstack_numcombine", sp=s.ptrs, ss=s.swaps, wp=w.ptrs, ws=w.swaps, n=n,
              use_w=thresholds is not None, wlim=wlim, vlo=vlo, vhi=vhi,
              is_median=kind == "median", fill=spec.fill, k_of=k_of, even=even, mid=mid,
              nlow=nlow, nhigh=nhigh, fillval=fillval, net=net, ncomp=net.shape[0],
              p_lo=lo * nx, p_hi=hi * nx, block=block, out=flat_out, ngood=flat_ngood,
              nonfinite=counts)
    elif kind == "minmed":
        if scalars is None:
            raise ValueError("minmed needs weights and per-image scalars")
        minchosen = _minmed(s, w, thresholds, wlim, spec, scalars, rows, block, flat_out,
                            flat_ngood, counts)
    else:
        raise ValueError(f"unknown combine kind {kind!r}")
    return SectionResult(median=out, ngood=ngood, minchosen=minchosen, nonfinite=counts)


def _pixel_values(stack: _Planes) -> np.ndarray:
    """The first value of each plane (native float32)."""
    out = np.empty(len(stack.keep), dtype=np.float32)
    _call("medstack_gather_first", ptrs=stack.ptrs, swaps=stack.swaps, n=len(out), out=out)
    return out


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
    n = len(s.keep)
    r, nx = s.shape
    lo, hi = rows
    if n < 2:
        raise ValueError("minmed needs two or more images")
    grow = int(spec.grow)
    if grow < 0:
        raise ValueError(f"grow must be >= 0, got {grow}")
    y0c, y1c = max(0, lo - grow), min(r, hi + grow)  # the rows the grow box of rows sees
    sps = np.asarray(scalars.sky, np.float64) / np.asarray(scalars.exptime, np.float64)
    rn2 = scalars.readnoise.astype(np.float64) ** 2
    rn_const = float(np.float32(sum(float(v) ** 2 for v in scalars.readnoise)))
    k_of, even = _median_table(n, 0, 1)
    mid = _middle(n, 0, 1)
    net = median_network(n, mid)  # (for n < 3: the whole network)
    fw_pos = _fmin_first_positions(r * nx, thresholds is not None)
    mn_fix = np.empty(0, np.float32)
    if r * nx == 1:  # NumPy reduces along a contiguous axis there: its own result
        mn_fix = _one_pixel_minimum(s, w, thresholds)
    m = (y1c - y0c) * nx
    mn, med = np.empty(m, np.float32), np.empty(m, np.float32)
    f1, f2, gcount = np.empty(m, np.uint8), np.empty(m, np.uint8), np.empty(m, np.int32)
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
