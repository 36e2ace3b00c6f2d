"""The compiled kernels give the reference kernels' bits, for every combine type and parameter.

Randomized (hypothesis): N = 1…64, values drawn from small sets (ties, ±0) or the whole float32
range, NaN/±inf science, NaN/zero weights, all-masked pixels and columns, few rows, the ``rows``
halo argument, big-endian input. Plus the pieces the fast path is built from (sorting networks,
the weight mean, the raw reader) and the engine end to end.
"""

from __future__ import annotations

import gzip
import itertools
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import random_stack, resident_kib, write_stack
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from medstack import median_image
from medstack.core.weights import MIN_WEIGHT, WeightMean
from medstack.io.readers import ImageReader, RawReader, open_reader
from medstack.kernels import CombineSpec, ImageScalars, _build, combine_section, fast
from medstack.kernels.networks import FIXED_MAX as networks_max

SETTINGS = settings(max_examples=60, deadline=None)

TIES = [0.0, -0.0, 1.0, -1.0, 2.5, 3.0, 1000.0]
NONFINITE = [math.nan, math.inf, -math.inf]
#: 0.7 and 0.3 as float32 sit just below / above the float64 thresholds 0.7 and 0.3
WEIGHTS = [0.0, 0.25, 0.5, 1.0, 2.0, 100.0, math.nan, float(np.float32(0.7)),
           float(np.float32(0.3))]


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8)


def assert_same(ref, got) -> None:
    """Same bits in every output (float32 compared as uint32: signed zeros and NaN count)."""
    assert got.median.dtype == np.float32 and got.ngood.dtype == np.uint16
    assert np.array_equal(ref.median.view(np.uint32), got.median.view(np.uint32))
    assert np.array_equal(bits(ref.ngood), bits(got.ngood))
    assert ref.nonfinite.dtype == got.nonfinite.dtype == np.int64
    assert np.array_equal(ref.nonfinite, got.nonfinite)
    if ref.minchosen is None:
        assert got.minchosen is None
    else:
        assert got.minchosen.dtype == np.uint8
        assert np.array_equal(ref.minchosen, got.minchosen)


@st.composite
def stacks(draw, n=(1, 64), rows=(1, 4), cols=(1, 12)):
    """(sci, wht, thresholds or None, (lo, hi)): a random section."""
    n_img = draw(st.integers(*n))
    ny, nx = draw(st.integers(*rows)), draw(st.integers(*cols))
    style = draw(st.sampled_from(["ties", "wide", "mixed"]))
    ties = st.sampled_from(TIES)
    wide = st.floats(width=32, allow_nan=False, allow_infinity=False)
    pool = {"ties": ties, "wide": wide, "mixed": st.one_of(ties, wide)}[style]
    if draw(st.booleans()):
        pool = st.one_of(pool, st.sampled_from(NONFINITE))
    sci = draw(hnp.arrays(np.float32, (n_img, ny, nx), elements=pool))
    wht = draw(hnp.arrays(np.float32, (n_img, ny, nx), elements=st.sampled_from(WEIGHTS)))
    if draw(st.booleans()):  # a whole column, or everything, masked
        col = draw(st.integers(0, nx - 1))
        wht[:, :, col] = 0.0
    thresholds = None
    if draw(st.integers(0, 4)):
        thresholds = np.array(draw(st.lists(st.sampled_from([0.0, 0.3, 0.7, 0.75, 1.5, math.inf]),
                                            min_size=n_img, max_size=n_img)))
    lo = draw(st.integers(0, ny - 1))
    hi = draw(st.integers(lo + 1, ny))
    return sci, wht, thresholds, (lo, hi)


def numcombine_specs(kinds=("median", "mean")):
    return st.builds(
        CombineSpec,
        kind=st.sampled_from(kinds),
        fill=st.booleans(),
        nlow=st.integers(0, 4),
        nhigh=st.integers(0, 4),
        lthresh=st.one_of(st.none(), st.sampled_from([-1.0, 0.0, 1.0]), st.floats(-1e3, 1e3)),
        hthresh=st.one_of(st.none(), st.sampled_from([0.0, 1.0, 3.0]), st.floats(-1e3, 1e3)),
        fillval=st.sampled_from([0.0, -1.0, math.nan]),
    )


minmed_specs = st.builds(
    CombineSpec,
    kind=st.just("minmed"),
    fill=st.booleans(),
    nsigma1=st.floats(-1, 6),
    nsigma2=st.floats(-1, 6),
    grow=st.integers(0, 3),
    weight_masks=st.booleans(),
    fillval=st.sampled_from([0.0, -1.0, math.nan]),
)


def scalars_for(n: int, draw_values) -> ImageScalars:
    exptime, sky, readnoise = draw_values
    return ImageScalars.of([exptime] * n, [sky] * n, [readnoise] * n)


scalar_values = st.tuples(st.sampled_from([1.0, 60.0, 507.0]), st.sampled_from([0.0, 10.0, 58.0]),
                          st.sampled_from([0.0, 3.0, 4.5]))


def both(sci, wht, spec, thresholds, rows, scalars=None):
    kwargs = dict(thresholds=thresholds, scalars=scalars, rows=rows)
    with np.errstate(all="ignore"):  # the reference warns about the extreme values drawn
        ref = combine_section(sci, wht, spec, kernel="reference", **kwargs)
    got = combine_section(sci, wht, spec, kernel="fast", **kwargs)
    return ref, got


# ---------------------------------------------------------------------------------------------
# fast == reference


@SETTINGS
@given(data=stacks(), spec=numcombine_specs())
def test_median_and_mean(data, spec):
    sci, wht, thresholds, rows = data
    assert_same(*both(sci, wht, spec, thresholds, rows))


@SETTINGS
@given(data=stacks(), spec=numcombine_specs(("median",)))
def test_median_without_weights(data, spec):
    sci, _, _, rows = data
    assert_same(*both(sci, None, spec, None, rows))


@SETTINGS
@given(data=stacks(), fillval=st.sampled_from([0.0, math.nan]))
def test_sum(data, fillval):
    sci, wht, thresholds, rows = data
    assert_same(*both(sci, wht, CombineSpec(kind="sum", fillval=fillval), thresholds, rows))


@SETTINGS
@given(data=stacks(n=(2, 64)), spec=minmed_specs, values=scalar_values)
def test_minmed(data, spec, values):
    sci, wht, thresholds, rows = data
    scalars = scalars_for(len(sci), values)
    assert_same(*both(sci, wht, spec, thresholds, rows, scalars))


@SETTINGS
@given(data=stacks(n=(2, 12), rows=(1, 6)), spec=minmed_specs, values=scalar_values,
       sky=st.lists(st.floats(0, 100), min_size=12, max_size=12),
       rn=st.lists(st.floats(0, 8), min_size=12, max_size=12))
def test_minmed_per_image_scalars(data, spec, values, sky, rn):
    sci, wht, thresholds, rows = data
    n = len(sci)
    scalars = ImageScalars.of([values[0] + i for i in range(n)], sky[:n], rn[:n])
    assert_same(*both(sci, wht, spec, thresholds, rows, scalars))


@SETTINGS
@given(data=stacks(n=(1, 12)), kind=st.sampled_from(["median", "mean", "sum", "minmed"]),
       values=scalar_values)
def test_big_endian_input_gives_the_same_bits(data, kind, values):
    sci, wht, thresholds, rows = data
    if kind == "minmed" and len(sci) < 2:
        kind = "median"
    spec = CombineSpec(kind=kind, nhigh=1 if kind == "median" and len(sci) > 1 else 0)
    scalars = scalars_for(len(sci), values)
    native = combine_section(sci, wht, spec, thresholds=thresholds, scalars=scalars, rows=rows,
                             kernel="fast")
    big = combine_section(sci.astype(">f4"), wht.astype(">f4"), spec, thresholds=thresholds,
                          scalars=scalars, rows=rows, kernel="fast")
    assert_same(native, big)


@SETTINGS
@given(data=stacks(n=(1, 12)), kind=st.sampled_from(["median", "mean", "sum", "minmed"]))
def test_planes_of_mixed_byte_order_and_nonfinite_counts(data, kind):
    """Planes given one by one (as the engine gives views of N files), big-endian or native:
    the same bits, and the NaN/inf count of each image's output rows."""
    sci, wht, thresholds, rows = data
    n = len(sci)
    if kind == "minmed" and n < 2:
        kind = "sum"
    spec = CombineSpec(kind=kind, grow=2)
    scalars = ImageScalars.of([1.0] * n, [0.0] * n, [0.0] * n)
    whole = combine_section(sci, wht, spec, thresholds=thresholds, scalars=scalars, rows=rows,
                            kernel="fast")
    mixed = [s.astype(">f4") if i % 2 else s for i, s in enumerate(sci)]
    weights = [w if i % 3 else w.astype(">f4") for i, w in enumerate(wht)]
    planes = fast.combine_section(mixed, weights, spec, thresholds=thresholds, scalars=scalars,
                                  rows=rows)
    assert_same(whole, planes)
    lo, hi = rows
    expected = (~np.isfinite(sci[:, lo:hi])).reshape(n, -1).sum(axis=1)
    assert planes.nonfinite.tolist() == expected.tolist()


# ---------------------------------------------------------------------------------------------
# the signed-zero rules, aimed at directly


@pytest.mark.parametrize("n", [2, 3, 4, 5, 9])
@pytest.mark.parametrize("nx", [1, 7, 8, 9, 13, 16, 23])
def test_minmed_minimum_of_signed_zeros_follows_numpy_fmin(n, nx):
    """Where the minimum is a zero held as both +0.0 and -0.0 and minmed chooses it, its sign is
    what NumPy's fmin.reduce gives at that position of the section (SIMD body: the later
    operand; scalar tail: the earlier one)."""
    rng = np.random.default_rng(n * 100 + nx)
    sci = rng.choice(np.array([0.0, -0.0, 1000.0, 1000.0], np.float32), (n, 3, nx))
    sci[:2, :, :] = np.array([0.0, -0.0], np.float32)[rng.integers(0, 2, (2, 3, nx))]
    wht = np.full(sci.shape, 100.0, np.float32)
    spec = CombineSpec(kind="minmed", grow=0)
    scalars = ImageScalars.of([100.0] * n, [0.0] * n, [0.0] * n)
    ref, got = both(sci, wht, spec, np.zeros(n), (0, 3), scalars)
    assert_same(ref, got)


@SETTINGS
@given(sci=hnp.arrays(np.float32, st.tuples(st.integers(1, 9), st.just(1), st.integers(1, 20)),
                      elements=st.sampled_from([0.0, -0.0, 1.0, -1.0])),
       nlow=st.integers(0, 2), nhigh=st.integers(0, 2), kind=st.sampled_from(["median", "mean"]))
def test_zero_medians_take_the_exchange_sorts_sign(sci, nlow, nhigh, kind):
    spec = CombineSpec(kind=kind, nlow=nlow, nhigh=nhigh)
    assert_same(*both(sci, None, spec, None, (0, 1)))


def test_everything_masked_gives_fillval_and_fill():
    sci = np.array([[[0.0, 5.0, np.nan]], [[3.0, 0.0, 7.0]]], np.float32)
    wht = np.zeros_like(sci)
    for kind, fill in itertools.product(["median", "mean", "minmed"], [False, True]):
        spec = CombineSpec(kind=kind, fill=fill, fillval=-7.0)
        scalars = ImageScalars.of([1.0, 1.0], [0.0, 0.0], [1.0, 1.0])
        ref, got = both(sci, wht, spec, np.full(2, np.inf), (0, 1), scalars)
        assert_same(ref, got)
        if kind != "minmed":
            expected = [3.0, 5.0, 7.0] if fill else [-7.0] * 3
            assert got.median[0].tolist() == expected


# ---------------------------------------------------------------------------------------------
# the building blocks


@pytest.mark.parametrize("n", range(1, 13))
def test_sorting_network_sorts_every_zero_one_input(n):
    """The 0-1 principle: a comparator network sorts everything if it sorts all 0/1 inputs."""
    net = fast.sorting_network(n)
    cases = np.array(list(itertools.product([0.0, 1.0], repeat=n)), dtype=np.float32).T.copy()
    for a, b in net:
        lo, hi = np.minimum(cases[a], cases[b]), np.maximum(cases[a], cases[b])
        cases[a], cases[b] = lo, hi
    assert np.all(np.diff(cases, axis=0) >= 0)


@pytest.mark.parametrize("n", [13, 25, 64, 200, 513])
def test_sorting_network_sorts_large_n(n):
    rng = np.random.default_rng(n)
    values = rng.integers(-5, 5, (n, 300)).astype(np.float32)
    for a, b in fast.sorting_network(n):
        lo, hi = np.minimum(values[a], values[b]), np.maximum(values[a], values[b])
        values[a], values[b] = lo, hi
    assert np.all(np.diff(values, axis=0) >= 0)


def test_the_written_out_networks_in_the_c_source_are_up_to_date():
    """_fast.c's straight-line median networks are what kernels/networks.py generates from
    sorting_network (python -m medstack.kernels.networks rewrites them)."""
    from medstack.kernels import networks

    text = _build.SOURCE.read_text(encoding="utf-8")
    assert networks._replace_in(text) == text
    cases = networks._fixed_cases()
    assert (10, 5) in cases and max(n for n, _ in cases) == networks.FIXED_MAX


@pytest.mark.parametrize("n", range(2, networks_max + 3))
@pytest.mark.parametrize("kind", ["median", "minmed"])
def test_written_out_and_data_networks_give_the_reference_bits(n, kind):
    """Sections wide enough for the vector loops, at every stack size with a written-out network
    and past them (data networks): the fast kernels give the reference's bits, signed zeros,
    ties, NaN and masks included."""
    rng = np.random.default_rng(100 + n)
    shape = (n, 3, 157)
    sci = rng.choice(np.array([0.0, -0.0, 1.0, 2.0, 2.0, -3.5, np.nan], np.float32), shape)
    sci = np.where(rng.random(shape) < 0.5, rng.normal(size=shape).astype(np.float32), sci)
    wht = rng.choice(np.array([0.0, 0.5, 1.0, 2.0], np.float32), shape)
    thresholds = np.full(n, 0.7)
    scalars = ImageScalars.of([100.0] * n, [1.0] * n, [4.0] * n)
    spec = CombineSpec(kind=kind)
    ref, got = both(sci, wht, spec, thresholds, (0, 3), scalars if kind == "minmed" else None)
    assert_same(ref, got)


def test_pruned_network_gets_the_needed_positions_right():
    rng = np.random.default_rng(3)
    for n in (5, 10, 33):
        needed = tuple(range(n // 2 + 1))
        net = fast.sorting_network(n, needed)
        assert len(net) < len(fast.sorting_network(n))
        values = rng.normal(size=(n, 500)).astype(np.float32)
        expected = np.sort(values, axis=0)
        for a, b in net:
            lo, hi = np.minimum(values[a], values[b]), np.maximum(values[a], values[b])
            values[a], values[b] = lo, hi
        assert np.array_equal(values[list(needed)], expected[list(needed)])


def cumsum_mean(blocks) -> tuple[float, int, int]:
    """The float64 cumsum model of ImageStats' sequential mean (what WeightMean keeps), NaN
    and ±inf weights left out and counted (Q16, Q16b)."""
    total, count, nans = 0.0, 0, 0
    for block in blocks:
        flat = np.ravel(block)
        nans += int((~np.isfinite(flat)).sum())
        good = flat[(flat >= MIN_WEIGHT) & np.isfinite(flat)].astype(np.float64)
        total = float(np.cumsum(np.concatenate([[total], good]))[-1])
        count += good.size
    return total, count, nans


weight_values = st.one_of(
    st.sampled_from([0.0, 1e-9, 1e-8, 2e-8, 0.5, 100.0, math.nan, math.inf, -math.inf]),
    st.floats(0, 2.0**100, width=32))


@SETTINGS
@given(blocks=st.lists(hnp.arrays(np.float32, st.integers(0, 400), elements=weight_values),
                       min_size=1, max_size=4))
def test_weight_mean_is_the_sequential_float64_sum(blocks):
    acc, big = WeightMean(), WeightMean()
    for block in blocks:
        acc.add(block)
        big.add(block.astype(">f4"))
    total, count, nans = cumsum_mean(blocks)
    assert np.float64(acc.total).view(np.uint64) == np.float64(total).view(np.uint64)
    assert (acc.total, acc.count, acc.nan_count) == (total, count, nans)
    assert (big.total, big.count, big.nan_count) == (total, count, nans)


@SETTINGS
@given(images=st.integers(1, 14), size=st.integers(1, 300), chunks=st.integers(1, 3),
       data=st.data())
def test_weight_means_of_several_images_side_by_side(images, size, chunks, data):
    """add_blocks runs up to six images' sums in one loop: each still gets its own bits."""
    stacks = [[data.draw(hnp.arrays(np.float32, size, elements=weight_values))
               for _ in range(chunks)] for _ in range(images)]
    accs = [WeightMean() for _ in range(images)]
    for c in range(chunks):
        WeightMean.add_blocks(accs, [stacks[i][c] if i % 2 else stacks[i][c].astype(">f4")
                                     for i in range(images)])
    for acc, blocks in zip(accs, stacks):
        assert (acc.total, acc.count, acc.nan_count) == cumsum_mean(blocks)


@given(images=st.integers(1, 8), size=st.integers(1, 300), chunks=st.integers(1, 3),
       data=st.data())
def test_reference_weight_sums_give_the_fast_bits(images, size, chunks, data):
    """The reference weight pass (NumPy, what kernel="auto" takes on small stacks) keeps the
    same running sums, counts and NaN counts as the compiled one, bit for bit."""
    stacks = [[data.draw(hnp.arrays(np.float32, size, elements=weight_values))
               for _ in range(chunks)] for _ in range(images)]
    by_kernel = {}
    for kernel in ("fast", "reference"):
        accs = [WeightMean() for _ in range(images)]
        for c in range(chunks):
            WeightMean.add_blocks(accs, [stacks[i][c] if i % 2 else stacks[i][c].astype(">f4")
                                         for i in range(images)], kernel)
        by_kernel[kernel] = [(np.float64(a.total).view(np.uint64), a.count, a.nan_count)
                             for a in accs]
    assert by_kernel["fast"] == by_kernel["reference"]
    assert [(t.view(np.float64), c, n) for t, c, n in by_kernel["reference"]] == [
        cumsum_mean(blocks) for blocks in stacks]


@pytest.mark.parametrize("n", range(1, 14))
def test_weight_kernel_lanes_keep_each_image_to_itself(n):
    """Every grouping of images into one call (1, 2, 3-4, 5-6 lanes, and more than six split
    into calls) gives each image the bits of its own sequential sum."""
    rng = np.random.default_rng(n)
    blocks = [(rng.uniform(0, 1, 3001 + 7 * i) ** 3 * 900).astype(np.float32) for i in range(n)]
    blocks = [b[:3001] for b in blocks]
    for b in blocks[::3]:
        b[::97] = np.nan
    totals, counts, nans = fast.weight_sums([b.astype(">f4") for b in blocks], [0.5] * n)
    assert fast.WEIGHT_LANES == 6
    for b, total, count, nan in zip(blocks, totals, counts, nans):
        one = fast.weight_sums([b], [0.5])
        assert (total, count, nan) == (one[0][0], one[1][0], one[2][0])
        expect = 0.5 + np.cumsum(np.where(b >= MIN_WEIGHT, b, 0).astype(np.float64))[-1]
        assert np.float64(total).view(np.uint64) == np.float64(expect).view(np.uint64)


def test_weight_mean_of_many_rounding_additions():
    rng = np.random.default_rng(5)
    blocks = [(rng.uniform(0, 1, 5000) ** 3 * 700).astype(np.float32) for _ in range(5)]
    acc = WeightMean()
    for block in blocks:
        acc.add(block)
    assert (acc.total, acc.count, acc.nan_count) == cumsum_mean(blocks)


def test_raw_reader_maps_what_imagereader_reads(tmp_path):
    rng = np.random.default_rng(2)
    sci, wht = random_stack(rng, 1, 11, 9)
    name = write_stack(tmp_path, sci, wht)[0]
    raw = open_reader(name, 0)
    assert isinstance(raw, RawReader)
    plain = ImageReader(name, 0)
    try:
        assert np.array_equal(raw.read(2, 7), plain.read(2, 7))
        view = raw.rows(8, 11)
        assert view.dtype == np.dtype(">f4") and not view.flags.writeable
        assert np.array_equal(view, sci[0, 8:11])
        del view
        assert np.array_equal(raw.rows(0, 11), sci[0])
        assert raw.rows(5, 5).shape == (0, 9)
    finally:
        raw.close()
        plain.close()
    gz = tmp_path / "img000_single_sci.fits.gz"
    with open(name, "rb") as fin, gzip.open(gz, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    unpacked = open_reader(str(gz), 0)  # decompressed into a temporary file, then mapped
    assert isinstance(unpacked, RawReader) and unpacked.path == str(gz)
    assert np.array_equal(unpacked.read(0, 11), sci[0])
    unpacked.close()
    ext = tmp_path / "ext_single_sci.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci[0])]).writeto(ext)
    in_ext = open_reader(str(ext), 1)
    assert isinstance(in_ext, RawReader)
    assert np.array_equal(in_ext.read(0, 11), sci[0])
    in_ext.close()
    scaled = tmp_path / "scaled_single_sci.fits"
    fits.PrimaryHDU((sci[0] * 10).astype(np.int16)).writeto(scaled)
    assert isinstance(open_reader(str(scaled), 0), ImageReader)


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_raw_reader_keeps_only_the_rows_in_use_resident(tmp_path):
    # The resident size must hold the rows being combined, not what the kernel chooses to map
    # around them (fault-around, large folios), and nothing once they are done.
    ny, nx = 512, 2048  # 8 KiB rows, 4 MiB image
    data = np.random.default_rng(5).normal(size=(ny, nx)).astype(np.float32)
    path = tmp_path / "big_single_sci.fits"
    fits.PrimaryHDU(data).writeto(path)
    with open(path, "rb") as fh:  # in the page cache, as after a first read
        while fh.read(1 << 20):
            pass
    raw = open_reader(str(path), 0)
    try:
        view = raw.rows(200, 216)  # 128 KiB
        assert np.array_equal(view, data[200:216])
        assert 0 < resident_kib(path) <= 128 + 8  # the rows, plus a page on either side
        del view
        assert resident_kib(path) == 0
    finally:
        raw.close()


# ---------------------------------------------------------------------------------------------
# the engine, end to end


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory):
    rng = np.random.default_rng(11)
    sci, wht = random_stack(rng, 7, 37, 29)
    sci[2, 5, 5] = np.nan
    sci[4, 30, 1] = -0.0
    wht[3, 10:12, :] = np.nan
    folder = tmp_path_factory.mktemp("fast-engine")
    return write_stack(folder, sci, wht, exptime=[400.0 + i for i in range(7)],
                       readnoise=(4.0, 5.0))


@pytest.mark.parametrize("params", [
    dict(combine_type="minmed"),
    dict(combine_type="minmed", combine_grow=2, combine_nsigma="3 2"),
    dict(combine_type="iminmed", median_newmasks=False),
    dict(combine_type="median", combine_nhigh=1),
    dict(combine_type="imedian", combine_lthresh=-2.0, combine_hthresh=60.0),
    dict(combine_type="mean", combine_nlow=1, combine_nhigh=2),
    dict(combine_type="sum"),
])
@pytest.mark.parametrize("workers", [1, 3])
def test_engine_fast_equals_reference(small_stack, tmp_path, params, workers):
    common = dict(combine_bufsize=5 * 29 * 4 / 2**20, keep_maps=True, workers=workers, **params)
    ref = median_image(small_stack, tmp_path / "ref", kernel="reference", **common)
    got = median_image(small_stack, tmp_path / "fast", kernel="fast", **common)
    assert len(got.plan.sections) > 3
    assert np.array_equal(ref.data.view(np.uint32), got.data.view(np.uint32))
    assert np.array_equal(ref.ngood, got.ngood)
    if ref.minchosen is not None:
        assert np.array_equal(ref.minchosen, got.minchosen)
    assert (tmp_path / "fast_med.fits").read_bytes() == (tmp_path / "ref_med.fits").read_bytes()


@pytest.mark.parametrize("n", [1, 5, 6, 7, 10, 13])
@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_weight_groups_cover_every_image_once(n, workers):
    from medstack.core.weights import weight_groups as _weight_groups

    groups = _weight_groups(n, workers)
    assert [i for g in groups for i in g] == list(range(n))
    assert all(1 <= len(g) <= fast.WEIGHT_LANES for g in groups)
    if n >= workers:
        assert len(groups) % workers == 0 or len(groups) == n  # every thread as many groups


def test_weight_stats_the_same_on_any_number_of_threads(tmp_path):
    """The weight pass splits the images over the threads; each image's mean is its own
    sequential sum whatever the split (workers=1 against 2, 3 and 4; 13 images, more than one
    kernel call's worth)."""
    from concurrent.futures import ThreadPoolExecutor

    from medstack.core.weights import weight_groups as _weight_groups
    from medstack.core.weights import weight_stats, weight_stats_many

    rng = np.random.default_rng(11)
    sci, wht = random_stack(rng, 13, 37, 23)
    wht = (wht * rng.uniform(0.3, 3.0, wht.shape)).astype(np.float32)
    wht[4, 3:5] = np.nan
    names = write_stack(tmp_path, sci, wht)
    readers = [open_reader(name.replace("_single_sci", "_single_wht"), 0) for name in names]
    try:
        alone = [weight_stats(r, 5) for r in readers]
        assert alone[4].nan_count == 2 * 23
        for workers in (1, 2, 3, 4):
            with ThreadPoolExecutor(workers) as pool:
                groups = _weight_groups(len(readers), workers)
                stats = [s for part in pool.map(
                    lambda g: weight_stats_many([readers[i] for i in g], 5), groups)
                    for s in part]
            assert stats == alone
    finally:
        for r in readers:
            r.close()
    one = median_image(names, tmp_path / "w1", workers=1, combine_bufsize=5 * 23 * 4 / 2**20)
    two = median_image(names, tmp_path / "w2", workers=2, combine_bufsize=5 * 23 * 4 / 2**20)
    assert (tmp_path / "w1_med.fits").read_bytes() == (tmp_path / "w2_med.fits").read_bytes()
    assert np.array_equal(one.data.view(np.uint32), two.data.view(np.uint32))
