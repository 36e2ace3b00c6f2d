"""One test per row of docs/deviations.md: where drizzlepac is broken, medstack does the documented
right thing instead."""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import pytest
from astropy.io import fits
from conftest import random_stack, same_bits, write_stack

from medstack import median_image
from medstack.errors import InputError, ParameterError
from medstack.kernels import CombineSpec, ImageScalars, combine_section


def _stack(tmp_path, n=4, ny=12, nx=9, seed=0, **kw):
    sci, wht = random_stack(np.random.default_rng(seed), n, ny, nx)
    return sci, wht, write_stack(tmp_path, sci, wht, **kw)


def test_q1_i_type_fill_acts_at_every_all_masked_pixel(tmp_path):
    sci = np.full((3, 4, 5), 2.0, dtype=np.float32)
    sci[:, 2, 3] = [0.0, 7.0, 9.0]
    wht = np.ones_like(sci)
    wht[:, 2, 3] = 0.0  # all masked, away from column 0
    names = write_stack(tmp_path, sci, wht)
    assert median_image(names, combine_type="imedian").data[2, 3] == 7.0  # first non-zero
    assert median_image(names, combine_type="imean").data[2, 3] == 7.0
    assert median_image(names, combine_type="median").data[2, 3] == 0.0


@pytest.mark.parametrize("kernel", ["fast", "reference"])
def test_q1_iminmed_fill_changes_pixels_in_the_grow_box(tmp_path, kernel):
    """The fill also acts on iminmed's "median" of a fully masked pixel: its flag can fire and
    the grow box lowers its neighbours' threshold to nsigma2, so a neighbour with good values
    of its own comes out differently from minmed (where drizzlepac's column-0 fill would not
    act either, away from column 0)."""
    sci = np.zeros((3, 5, 5), dtype=np.float32)
    wht = np.ones_like(sci)
    sci[0, 2, 2] = 1000.0  # fully masked below; the fill takes it as its "median"
    wht[:, 2, 2] = 0.1  # below 0.7 × the mean weight in every image
    sci[:, 2, 3] = [0.0, 20.0, 25.0]  # min 0; median 10: between 3 and 4 sigma below
    names = write_stack(tmp_path, sci, wht, sky=0.0)
    run = {ct: median_image(names, combine_type=ct, combine_grow=1, kernel=kernel).data
           for ct in ("minmed", "iminmed")}
    assert run["minmed"][2, 3] == 10.0  # the "median": 4 sigma not reached
    assert run["iminmed"][2, 3] == 0.0  # the minimum: the filled neighbour's flag grew here
    assert run["minmed"][2, 2] == run["iminmed"][2, 2] == 0.0  # fully masked: fillval
    changed = np.argwhere(run["minmed"] != run["iminmed"])
    assert changed.tolist() == [[2, 3]]
    for ct in ("minmed", "iminmed"):  # without grow, the fill changes nothing here
        run[ct] = median_image(names, combine_type=ct, combine_grow=0, kernel=kernel).data
    assert same_bits(run["minmed"], run["iminmed"])


def test_q6_average_is_mean(tmp_path):
    _, _, names = _stack(tmp_path)
    mean = median_image(names, combine_type="mean").data
    assert same_bits(median_image(names, combine_type="average").data, mean)
    assert np.any(mean != 0)


def test_q7_sum_ignores_nlow_nhigh_guard(tmp_path):
    sci, _, names = _stack(tmp_path, n=3)
    out = median_image(names, combine_type="sum", combine_nlow=2, combine_nhigh=2).data
    assert same_bits(out, (sci[0] + sci[1]) + sci[2])
    with pytest.raises(ParameterError, match="combine_nlow \\+ combine_nhigh = 4 rejects every"):
        median_image(names, combine_type="median", combine_nlow=2, combine_nhigh=2)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("ctype", ["median", "mean", "minmed", "imedian"])
def test_q8_nonfinite_science_is_masked(tmp_path, bad_value, ctype):
    sci, wht, _ = _stack(tmp_path / "a", n=5)
    sci[2, 4, 4] = bad_value
    sci[0, 7, 1] = bad_value
    with_nan = write_stack(tmp_path / "b", sci, wht)
    masked = wht.copy()
    masked[2, 4, 4] = 0.0
    masked[0, 7, 1] = 0.0
    clean = sci.copy()
    clean[2, 4, 4] = 1.0e6  # any finite value: it is masked by weight instead
    clean[0, 7, 1] = -3.0
    by_weight = write_stack(tmp_path / "c", clean, masked)
    a = median_image(with_nan, combine_type=ctype).data
    b = median_image(by_weight, combine_type=ctype).data
    assert np.all(np.isfinite(a))
    if ctype == "minmed":  # the noise model counts weights: compare away from the two pixels
        away = np.ones(a.shape, dtype=bool)
        away[3:6, 3:6] = away[6:9, 0:3] = False
        assert same_bits(a[away], b[away])
    else:
        assert same_bits(a, b)


def test_q8_sum_skips_nonfinite(tmp_path):
    sci, wht, _ = _stack(tmp_path / "a", n=3)
    sci[1, 2, 2] = np.nan
    names = write_stack(tmp_path / "b", sci, wht)
    out = median_image(names, combine_type="sum").data
    assert out[2, 2] == sci[0, 2, 2] + sci[2, 2, 2]


def test_q13_one_image(tmp_path):
    sci, wht, names = _stack(tmp_path, n=1)
    with pytest.raises(ParameterError, match="needs two or more input images"):
        median_image(names, combine_type="minmed")
    good = wht[0] >= 0.7 * wht[0][wht[0] >= np.float32(1e-8)].mean(dtype=np.float64)
    out = median_image(names, combine_type="median", fillval=-1.0).data
    assert same_bits(out, np.where(good, sci[0], np.float32(-1.0)))
    filled = median_image(names, combine_type="imedian", fillval=-1.0).data
    assert same_bits(filled, np.where(good | (sci[0] != 0), sci[0], np.float32(-1.0)))


def test_q14_nan_under_mask_does_not_poison_one_good_value():
    sci = np.array([[[5.0]], [[np.nan]], [[np.inf]]], dtype=np.float32)
    wht = np.array([[[1.0]], [[0.0]], [[0.0]]], dtype=np.float32)
    scalars = ImageScalars.of([1.0] * 3, [0.0] * 3, [1.0] * 3)
    for kernel in ("reference", "fast"):
        out = combine_section(sci, wht, CombineSpec(kind="minmed", grow=0),
                              thresholds=np.full(3, 0.5), scalars=scalars, kernel=kernel)
        assert out.median[0, 0] == 5.0


def test_q15_zero_exptime_is_a_clear_error(tmp_path):
    _, _, names = _stack(tmp_path, n=3, exptime=[100.0, 0.0, 100.0])
    with pytest.raises(InputError, match="img001_single_sci.fits: EXPTIME = 0"):
        median_image(names, tmp_path / "out", combine_type="minmed")
    assert not (tmp_path / "out_med.fits").exists()
    # other types do not need it
    assert median_image(names, combine_type="median").data.shape == (12, 9)


def test_q16_nan_weights_are_bad_and_left_out_of_the_mean(tmp_path, caplog):
    sci, wht, _ = _stack(tmp_path / "a", n=3)
    wht[1, 3, 3] = np.nan
    names = write_stack(tmp_path / "b", sci, wht)
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image(names, combine_type="median").data
    assert "img001_single_wht.fits: 1 NaN/inf weights" in caplog.text
    zeroed = wht.copy()
    zeroed[1, 3, 3] = 0.0  # NaN and 0 both: out of the mean (0 < 1e-8) and bad
    ref = median_image(write_stack(tmp_path / "c", sci, zeroed), combine_type="median").data
    assert same_bits(out, ref)


@pytest.mark.parametrize("ctype", ["median", "minmed", "imean"])
@pytest.mark.parametrize("kernel", ["fast", "reference"])
def test_q16b_inf_weights_are_bad_like_nan(tmp_path, caplog, ctype, kernel):
    """One +inf weight would make drizzlepac's mean weight inf and mask the whole image;
    ±inf weights are bad pixels, left out of the mean, and count as 0 in minmed's noise model:
    the same result as a weight of 0 there. All-inf weights: the image masked, with warnings."""
    sci, wht, _ = _stack(tmp_path / "a", n=4)
    wht[1, 3, 3] = np.inf
    wht[2, 5, 1] = -np.inf
    names = write_stack(tmp_path / "b", sci, wht)
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image(names, combine_type=ctype, kernel=kernel, save_maps=True,
                           keep_maps=True)
    assert "img001_single_wht.fits: 1 NaN/inf weights, treated as bad pixels" in caplog.text
    assert "img002_single_wht.fits: 1 NaN/inf weights" in caplog.text
    zeroed = np.where(np.isfinite(wht), wht, np.float32(0.0))
    ref = median_image(write_stack(tmp_path / "c", sci, zeroed), combine_type=ctype,
                       kernel=kernel, save_maps=True, keep_maps=True)
    assert same_bits(out.data, ref.data)
    assert np.array_equal(out.ngood, ref.ngood)
    # image 1 is not wholly masked: it counts nearly everywhere
    rest = [0, 2, 3]
    without = median_image(write_stack(tmp_path / "e", sci[rest], zeroed[rest]),
                           combine_type=ctype, save_maps=True, keep_maps=True)
    assert int(out.ngood.sum()) - int(without.ngood.sum()) > out.ngood.size // 2

    caplog.clear()
    wht[0] = np.inf
    names = write_stack(tmp_path / "d", sci, wht)
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image(names, combine_type=ctype, kernel=kernel, save_maps=True,
                           keep_maps=True)
    assert "img000_single_wht.fits: no weight >= 1e-8; the whole image is masked" in caplog.text
    assert f"img000_single_wht.fits: {wht[0].size} NaN/inf weights" in caplog.text
    assert out.ngood.max() == 3


def test_q17_all_zero_weight_image_is_wholly_masked(tmp_path, caplog):
    sci, wht, _ = _stack(tmp_path / "a", n=4)
    wht[2] = 0.0
    names = write_stack(tmp_path / "b", sci, wht)
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image(names, combine_type="median").data
    assert "img002_single_wht.fits: no weight >= 1e-8; the whole image is masked" in caplog.text
    rest = [0, 1, 3]
    ref = median_image(write_stack(tmp_path / "c", sci[rest], wht[rest]),
                       combine_type="median").data
    assert same_bits(out, ref)


def test_q18_grow_never_shrinks_with_the_buffer(tmp_path):
    _, _, names = _stack(tmp_path, n=4, ny=30, nx=16)
    whole = median_image(names, combine_grow=3, combine_bufsize=10).data
    one_row = 16 * 4 / 2**20  # a buffer of one row: sections grow to 7 rows
    tiny = median_image(names, combine_grow=3, combine_bufsize=one_row)
    assert tiny.plan.section_rows == 7
    assert same_bits(whole, tiny.data)


def test_q19_one_nsigma_value_is_used_for_both(tmp_path):
    _, _, names = _stack(tmp_path, n=4)
    assert same_bits(median_image(names, combine_nsigma="3.5").data,
                     median_image(names, combine_nsigma="3.5 3.5").data)


def test_q20_thresholds_are_never_rescaled(tmp_path):
    sci = np.array([[[1.0, 20.0]], [[2.0, 30.0]], [[3.0, 40.0]]], dtype=np.float32)
    wht = np.ones_like(sci)
    names = write_stack(tmp_path, sci, wht, header_extra={"BUNIT": "COUNTS/S", "ATODGNA": 2.0})
    out = median_image(names, combine_type="median", combine_hthresh=25.0,
                       combine_lthresh=1.5).data
    assert out.tolist() == [[2.5, 20.0]]


def test_missing_weight_file_is_named(tmp_path):
    _, _, names = _stack(tmp_path, n=3)
    os.remove(names[1].replace("_sci", "_wht"))
    with pytest.raises(InputError, match="img001_single_wht.fits: weight file not found"):
        median_image(names)


def test_shapes_that_differ_name_both_files(tmp_path):
    _, _, names = _stack(tmp_path / "a", n=2)
    sci, wht = random_stack(np.random.default_rng(1), 1, 13, 9)
    other = write_stack(tmp_path / "b", sci, wht, prefix="odd")
    with pytest.raises(InputError, match=r"odd000_single_sci.fits: shape 13x9 differs from "
                       r".*img000_single_sci.fits 12x9"):
        median_image(names + other)


def test_failure_leaves_earlier_output_untouched(tmp_path, monkeypatch):
    _, _, names = _stack(tmp_path, n=3, ny=40)
    first = median_image(names, tmp_path / "out", combine_type="median")
    before = first.path.read_bytes()
    import medstack.core.unit as engine

    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return combine_section(*args, **kwargs)

    monkeypatch.setattr(engine, "combine_section", failing)
    with pytest.raises(RuntimeError, match="boom"):
        median_image(names, tmp_path / "out", combine_type="minmed",
                     combine_bufsize=9 * 4 * 5 / 2**20, workers=1)
    assert first.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_header_has_provenance(tmp_path):
    _, _, names = _stack(tmp_path, n=3)
    result = median_image(names, tmp_path / "prov", combine_type="median", combine_nhigh=1)
    header = fits.getheader(result.path)
    assert header["NCOMBINE"] == 3
    assert header["MEDCTYPE"] == "median" and header["MEDNHIGH"] == 1
    assert header["MEDNSIG"] == "4 3" and header["MEDLTHR"] == "None"
    assert header["MEDSTACK"]
    history = "\n".join(str(h) for h in header["HISTORY"])
    for i in range(3):
        assert f"medstack input {i + 1}: img00{i}_single_sci.fits" in history
    assert header["EXPTIME"] == 100.0 and header["BUNIT"] == "ELECTRONS/S"


def test_fillval_changes_all_masked_pixels(tmp_path):
    sci, wht, _ = _stack(tmp_path / "a", n=3)
    wht[:, 5, 5] = 0.0
    names = write_stack(tmp_path / "b", sci, wht)
    assert median_image(names, combine_type="median").data[5, 5] == 0.0
    assert math.isnan(median_image(names, combine_type="median", fillval="nan").data[5, 5])
    assert math.isnan(median_image(names, combine_type="minmed", fillval=np.nan).data[5, 5])


def test_maskpt_default_is_the_task_default(tmp_path):
    sci, wht, _ = _stack(tmp_path / "a", n=3)
    wht[0, 2:4] *= 0.5  # masked at 0.7 of the mean weight, kept at 0.3
    names = write_stack(tmp_path / "b", sci, wht)
    assert same_bits(median_image(names).data,
                     median_image(names, combine_maskpt=0.7).data)
    assert not same_bits(median_image(names).data,
                         median_image(names, combine_maskpt=0.3).data)
