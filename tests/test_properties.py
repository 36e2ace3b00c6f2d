"""Property tests (hypothesis) on small random stacks, NaN and inf included.

- Stack order does not change median/mean (the ``i`` fill aside, which takes the first non-zero
  value in stack order by definition); sum adds in float32 in stack order as drizzlepac does,
  so only rounding may differ; minmed is order-free wherever its float32/float64 sums are exact.
- A masked pixel (low weight or NaN science) gives the same median/mean as removing that image
  at that pixel.
- Random valid parameters on random files never crash, and the sectioned result equals the
  reference kernel run on the whole arrays at once.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import same_bits, write_stack
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from medstack import median_image
from medstack.errors import ParameterError
from medstack.kernels import CombineSpec, ImageScalars, combine_section
from medstack.params import COMBINE_TYPES, validate

KERNELS = ["reference", "fast"]
SETTINGS = settings(max_examples=60, deadline=None)


def no_negative_zero(a: np.ndarray) -> np.ndarray:
    """-0.0 → +0.0: the two compare equal, so their sorted order (and thus the sign of a zero
    result) legitimately follows the stack order."""
    return np.where(a == 0, np.float32(0.0), a).astype(np.float32)


@st.composite
def stacks(draw, *, nan=True, n=(1, 6), size=(1, 5), rows=None):
    """(sci, wht, thresholds): small float32 stacks, weights and per-image thresholds that are
    exact binary fractions (so sums of them are exact in any order)."""
    n_img = draw(st.integers(*n))
    ny, nx = draw(st.integers(*(rows or size))), draw(st.integers(*size))
    values = st.floats(-1000, 1000, width=32)
    if nan:
        values = st.one_of(values, st.sampled_from([math.nan, math.inf, -math.inf]))
    sci = draw(hnp.arrays(np.float32, (n_img, ny, nx), elements=values))
    wht_values = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 100.0] + ([math.nan] if nan else []))
    wht = draw(hnp.arrays(np.float32, (n_img, ny, nx), elements=wht_values))
    thresholds = np.array(draw(st.lists(st.sampled_from([0.0, 0.3, 0.75, 1.5]),
                                        min_size=n_img, max_size=n_img)))
    return no_negative_zero(sci), wht, thresholds


def numcombine_specs(kinds=("median", "mean"), fill=None):
    return st.builds(
        CombineSpec,
        kind=st.sampled_from(kinds),
        fill=st.booleans() if fill is None else fill,
        nlow=st.integers(0, 3),
        nhigh=st.integers(0, 3),
        lthresh=st.one_of(st.none(), st.floats(-500, 500)),
        hthresh=st.one_of(st.none(), st.floats(-500, 500)),
        fillval=st.sampled_from([0.0, -1.0, math.nan]),
    )


def permuted(perm, sci, wht, thresholds):
    p = list(perm)
    return sci[p], wht[p], thresholds[p]


# ---------------------------------------------------------------------------------------------
# stack order


@SETTINGS
@given(data=stacks(), spec=numcombine_specs(), masks=st.booleans(), kernel=st.sampled_from(KERNELS),
       perm_seed=st.randoms())
def test_stack_order_does_not_change_median_or_mean(data, spec, masks, kernel, perm_seed):
    sci, wht, thr = data
    perm = list(range(len(sci)))
    perm_seed.shuffle(perm)
    a = combine_section(sci, wht, spec, thresholds=thr if masks else None, kernel=kernel)
    s2, w2, t2 = permuted(perm, sci, wht, thr)
    b = combine_section(s2, w2, spec, thresholds=t2 if masks else None, kernel=kernel)
    assert np.array_equal(a.ngood, b.ngood)
    if not spec.fill:
        assert same_bits(a.median, b.median)
    else:  # the fill is "first non-zero in stack order": order-free where something is good
        some = a.ngood > 0
        assert same_bits(a.median[some], b.median[some])


@SETTINGS
@given(data=stacks(nan=False, n=(2, 6)), kernel=st.sampled_from(KERNELS), perm_seed=st.randoms(),
       grow=st.integers(0, 2), nsigma=st.tuples(st.floats(0, 6), st.floats(0, 6)),
       sky=st.sampled_from([0.0, 25.0, 100.0]), rn=st.integers(0, 8), masks=st.booleans())
def test_stack_order_does_not_change_minmed(data, kernel, perm_seed, grow, nsigma, sky, rn,
                                            masks):
    """With weights, exptimes, skies and read noises whose sums are exact, minmed's choice
    cannot depend on the order: bit for bit."""
    sci, wht, thr = data
    n = len(sci)
    perm = list(range(n))
    perm_seed.shuffle(perm)
    spec = CombineSpec(kind="minmed", grow=grow, nsigma1=nsigma[0], nsigma2=nsigma[1],
                       weight_masks=masks)
    scalars = ImageScalars.of([100.0] * n, [sky] * n, [float(rn)] * n)
    a = combine_section(sci, wht, spec, thresholds=thr if masks else None, scalars=scalars,
                        kernel=kernel)
    s2, w2, t2 = permuted(perm, sci, wht, thr)
    b = combine_section(s2, w2, spec, thresholds=t2 if masks else None, scalars=scalars,
                        kernel=kernel)
    assert same_bits(a.median, b.median)
    assert np.array_equal(a.minchosen, b.minchosen) and np.array_equal(a.ngood, b.ngood)


@SETTINGS
@given(data=stacks(), kernel=st.sampled_from(KERNELS), perm_seed=st.randoms())
def test_stack_order_changes_sum_by_rounding_only(data, kernel, perm_seed):
    sci, wht, thr = data
    perm = list(range(len(sci)))
    perm_seed.shuffle(perm)
    spec = CombineSpec(kind="sum")
    a = combine_section(sci, wht, spec, kernel=kernel).median
    b = combine_section(sci[perm], wht[perm], spec, kernel=kernel).median
    finite = np.where(np.isfinite(sci), sci, 0).astype(np.float64)
    bound = len(sci) * np.finfo(np.float32).eps * np.abs(finite).sum(axis=0)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.all(np.abs(a.astype(np.float64) - b) <= bound)
    exact = np.where(np.isfinite(sci), sci, 0).astype(np.float64).sum(axis=0)
    assert np.all(np.abs(a - exact) <= bound)


# ---------------------------------------------------------------------------------------------
# a masked pixel is a removed image


@SETTINGS
@given(data=stacks(n=(2, 6)), spec=numcombine_specs(fill=st.just(False)),
       kernel=st.sampled_from(KERNELS), how=st.sampled_from(["weight", "nan"]),
       pick=st.tuples(st.integers(0, 100), st.integers(0, 100), st.integers(0, 100)))
def test_masked_pixel_equals_removing_that_image(data, spec, kernel, how, pick):
    sci, wht, thr = data
    n, ny, nx = sci.shape
    i, y, x = pick[0] % n, pick[1] % ny, pick[2] % nx
    thr = np.maximum(thr, 0.3)  # a weight of 0 is then always bad
    sci, wht = sci.copy(), wht.copy()
    if how == "weight":
        wht[i, y, x] = 0.0
    else:
        sci[i, y, x] = np.nan
    masked = combine_section(sci, wht, spec, thresholds=thr, kernel=kernel)
    rest = [j for j in range(n) if j != i]
    removed = combine_section(sci[rest], wht[rest], spec, thresholds=thr[rest], kernel=kernel)
    assert same_bits(masked.median[y, x], removed.median[y, x])
    assert masked.ngood[y, x] == removed.ngood[y, x]


# ---------------------------------------------------------------------------------------------
# random valid parameters on random files: no crash, and sectioned == whole-array reference


def hand_thresholds(wht: np.ndarray, maskpt: float) -> np.ndarray:
    out = []
    for w in wht:
        flat = w.ravel()
        keep = flat[(flat >= np.float32(1e-8)) & ~np.isnan(flat)].astype(np.float64)
        out.append(float(np.float32(np.cumsum(keep)[-1] / keep.size)) * maskpt if keep.size
                   else math.inf)
    return np.array(out)


@settings(max_examples=40, deadline=None)
@given(
    data=stacks(n=(1, 5), size=(1, 8), rows=(1, 20)),
    ctype=st.sampled_from(COMBINE_TYPES),
    nlow=st.integers(0, 2), nhigh=st.integers(0, 2),
    nsigma=st.one_of(st.floats(0, 8).map(str),
                     st.tuples(st.floats(0, 8), st.floats(0, 8)).map(lambda t: f"{t[0]} {t[1]}")),
    grow=st.integers(0, 3),
    maskpt=st.floats(0, 1.5),
    newmasks=st.booleans(),
    lthresh=st.one_of(st.none(), st.floats(-800, 800)),
    hthresh=st.one_of(st.none(), st.floats(-800, 800)),
    rows=st.one_of(st.none(), st.integers(1, 6)),
    fillval=st.sampled_from([0.0, -7.0, math.nan]),
    sky=st.sampled_from([0.0, 12.5, 80.0]),
    exptime=st.sampled_from([1.0, 60.0, 400.0]),
    kernel=st.sampled_from(KERNELS),
    workers=st.integers(1, 3),
)
def test_random_parameters_never_crash_and_sections_match(data, ctype, nlow, nhigh, nsigma, grow,
                                                          maskpt, newmasks, lthresh, hthresh,
                                                          rows, fillval, sky, exptime, kernel,
                                                          workers):
    sci, wht, _ = data
    n, ny, nx = sci.shape
    params = dict(combine_type=ctype, combine_nlow=nlow, combine_nhigh=nhigh,
                  combine_nsigma=nsigma, combine_grow=grow, combine_maskpt=maskpt,
                  median_newmasks=newmasks, combine_lthresh=lthresh, combine_hthresh=hthresh,
                  combine_bufsize=None if rows is None else rows * nx * 4 / 2**20,
                  fillval=fillval)
    if lthresh is not None and hthresh is not None and np.float32(lthresh) >= np.float32(hthresh):
        with pytest.raises(ParameterError, match="is not below combine_hthresh"):
            validate(params)  # no value could pass both: refused
        return
    p = validate(params)
    with tempfile.TemporaryDirectory() as tmp:
        names = write_stack(Path(tmp), sci, wht, exptime=exptime, sky=sky)
        if p.kind == "minmed" and n < 2:
            with pytest.raises(ParameterError, match="needs two or more input images"):
                median_image(names, **params)
            return
        if p.kind in ("median", "mean") and nlow + nhigh >= n:
            with pytest.raises(ParameterError, match="rejects every one"):
                median_image(names, **params)
            return
        result = median_image(names, Path(tmp) / "out", kernel=kernel, workers=workers,
                              keep_maps=True, **params)
        on_disk = fits.getdata(Path(tmp) / "out_med.fits")
    event(f"{len(result.plan.sections)} section(s)")
    assert same_bits(on_disk, result.data)
    assert result.data.shape == (ny, nx) and result.data.dtype == np.float32
    if not math.isnan(fillval):
        assert np.isfinite(result.data).all()
    thresholds = hand_thresholds(wht, maskpt) if newmasks else None
    scalars = ImageScalars.of([exptime] * n, [float(np.float32(sky))] * n, [4.0] * n)
    whole = combine_section(sci, wht, CombineSpec.from_params(p), thresholds=thresholds,
                            scalars=scalars if p.kind == "minmed" else None, kernel="reference")
    assert same_bits(result.data, whole.median)
    assert np.array_equal(result.ngood, whole.ngood)
