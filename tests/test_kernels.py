"""Hand-computed cases for every kernel, run on both implementations."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from conftest import random_stack, same_bits

from medstack.kernels import CombineSpec, ImageScalars, combine_section

KERNELS = ["reference", "fast"]


def pixels(values, good=None):
    """A 1-row stack: ``values`` is a list over images of per-pixel lists."""
    sci = np.array(values, dtype=np.float32)[:, None, :]
    if good is None:
        return sci, None, None
    wht = np.array(good, dtype=np.float32)[:, None, :]
    return sci, wht, np.full(sci.shape[0], 0.5)


def run(kind, values, good=None, kernel="reference", **spec):
    sci, wht, thr = pixels(values, good)
    out = combine_section(sci, wht, CombineSpec(kind=kind, **spec), thresholds=thr,
                          kernel=kernel)
    return out.median[0], out.ngood[0]


@pytest.mark.parametrize("kernel", KERNELS)
class TestMedian:
    def test_odd_even_and_ties(self, kernel):
        med, ngood = run("median", [[1, 1, 2], [5, 2, 2], [3, 3, 2], [np.nan, 10, 5]],
                         kernel=kernel)
        # pixel 0: NaN masked → [1,3,5] → 3; pixel 1: [1,2,3,10] → 2.5; pixel 2: ties → 2
        assert med.tolist() == [3.0, 2.5, 2.0]
        assert ngood.tolist() == [3, 4, 4]

    def test_even_average_in_float64(self, kernel):
        a, b = np.float32(16777216.0), np.float32(16777218.0)  # 2**24 and 2**24 + 2
        med, _ = run("median", [[a], [b]], kernel=kernel)
        assert med[0] == np.float32(16777217.0)  # exact in float64, then rounded once

    def test_nlow_nhigh(self, kernel):
        med, _ = run("median", [[1], [2], [3], [4], [50]], kernel=kernel, nlow=1, nhigh=1)
        assert med.tolist() == [3.0]

    def test_nlow_nhigh_reduced_together(self, kernel):
        # 2 good values, nlow = nhigh = 1 → both reduced to 0 → mean of the two
        med, _ = run("median", [[1], [9], [4]], good=[[1], [1], [0]], kernel=kernel,
                     nlow=1, nhigh=1)
        assert med.tolist() == [5.0]
        # 3 good, nlow=2, nhigh=1 → (1, 0): m = 2, k = 2 → mean of v[1], v[2]
        med, _ = run("median", [[1], [2], [10], [7]], good=[[1], [1], [1], [0]],
                     kernel=kernel, nlow=2, nhigh=1)
        assert med.tolist() == [6.0]

    def test_thresholds_in_float32(self, kernel):
        med, ngood = run("median", [[1], [2], [5], [10]], kernel=kernel, lthresh=2.0,
                         hthresh=10.0)
        assert med.tolist() == [3.5]  # 1 < 2 rejected, 10 >= 10 rejected
        assert ngood.tolist() == [2]
        # 0.1 as float32 is above 0.1: a float32 0.1 value is not below the threshold
        med, _ = run("median", [[np.float32(0.1)], [5]], kernel=kernel, lthresh=0.1)
        assert med.tolist() == [np.float32(2.55)]

    def test_all_masked_and_one_good(self, kernel):
        med, ngood = run("median", [[4, 4], [6, 8]], good=[[0, 0], [0, 1]], kernel=kernel)
        assert med.tolist() == [0.0, 8.0]
        assert ngood.tolist() == [0, 1]
        med, _ = run("median", [[4], [6]], good=[[0], [0]], kernel=kernel, fillval=math.nan)
        assert math.isnan(med[0])

    def test_i_type_fill_first_nonzero(self, kernel):
        med, _ = run("median", [[0, 3], [7, 0], [3, 5]], good=[[0, 0], [0, 0], [0, 1]],
                     kernel=kernel, fill=True)
        assert med.tolist() == [7.0, 5.0]


@pytest.mark.parametrize("kernel", KERNELS)
class TestMean:
    def test_mean_with_rejection(self, kernel):
        med, _ = run("mean", [[1], [2], [3], [10]], kernel=kernel, nlow=1)
        assert med.tolist() == [5.0]

    def test_mean_no_reduction(self, kernel):
        # one good value and nhigh = 1: nothing is left → 0 (docs/spec.md Q4/Q5), not the fill value
        med, _ = run("mean", [[5], [6], [7]], good=[[1], [0], [0]], kernel=kernel, nhigh=1,
                     fillval=-1.0)
        assert med.tolist() == [0.0]

    def test_mean_all_masked_takes_fillval(self, kernel):
        med, _ = run("mean", [[5], [6]], good=[[0], [0]], kernel=kernel, fillval=-1.0)
        assert med.tolist() == [-1.0]

    def test_mean_ascending_float64_sum(self, kernel):
        values = [np.float32(v) for v in (1e8, 1.0, -1e8, 3.0)]
        med, _ = run("mean", [[v] for v in values], kernel=kernel)
        ordered = sorted(float(v) for v in values)
        acc = 0.0
        for v in ordered:
            acc += v
        assert med[0] == np.float32(acc / 4)


@pytest.mark.parametrize("kernel", KERNELS)
def test_sum_ignores_masks_and_skips_nan(kernel):
    med, ngood = run("sum", [[1, np.nan], [2, 5], [3, np.inf]], good=[[0, 1], [1, 1], [1, 1]],
                     kernel=kernel)
    assert med.tolist() == [6.0, 5.0]
    assert ngood.tolist() == [3, 1]


def minmed(values, good, kernel, weight=100.0, exptime=100.0, sky=50.0, rn=4.0, **spec):
    sci, wht, thr = pixels(values, good)
    wht = wht * weight
    n = sci.shape[0]
    scalars = ImageScalars.of([exptime] * n, [sky] * n, [rn] * n)
    out = combine_section(sci, wht, CombineSpec(kind="minmed", **spec), thresholds=thr * weight,
                          scalars=scalars, kernel=kernel)
    return out


@pytest.mark.parametrize("kernel", KERNELS)
class TestMinmed:
    def test_cosmic_ray_median_kept_and_minimum_chosen(self, kernel):
        # pixel 0: one CR of three → median of the lowest two = 10 = minimum → 10
        # pixel 1: two CRs of three → Med = mean(10, 1000) = 505; Min·Wt = 3000 is far
        #          below Med·Wt − 4σ (σ² = 151500 + 150 + 48) → the minimum, 10
        out = minmed([[10, 10], [10, 1000], [1000, 1000]], [[1, 1]] * 3, kernel, grow=0)
        assert out.median[0].tolist() == [10.0, 10.0]
        assert out.minchosen[0].tolist() == [0, 1]
        sigma = math.sqrt(505 * 300 + 3 * 100 * 0.5 + 3 * 16)
        assert 10 * 300 < 505 * 300 - 4 * sigma

    def test_two_good_of_three_takes_lower(self, kernel):  # docs/spec.md Q11
        out = minmed([[10], [12], [0]], [[1], [1], [0]], kernel, grow=0)
        assert out.median[0].tolist() == [10.0]

    def test_one_good_of_three_uses_it(self, kernel):
        out = minmed([[10], [12], [-3]], [[0], [1], [0]], kernel, grow=0)
        assert out.median[0].tolist() == [12.0]
        assert out.ngood[0].tolist() == [1]

    def test_two_images_use_mean(self, kernel):
        out = minmed([[10], [11]], [[1], [1]], kernel, grow=0)
        assert out.median[0].tolist() == [10.5]

    def test_all_bad_is_fillval(self, kernel):
        out = minmed([[10, 10], [11, 11]], [[0, 1], [0, 1]], kernel, grow=1, fillval=-5.0)
        assert out.median[0].tolist() == [-5.0, 10.5]
        assert out.minchosen[0].tolist() == [0, 0]

    def test_grow_lowers_threshold_next_to_a_flag(self, kernel):
        # pixel 0 has a strong CR (flagged with nsigma1); pixel 1 a weak one, between
        # nsigma2 and nsigma1: only with grow does its neighbour's flag make it take the minimum.
        base = np.float32(100.0)
        wt = 400.0
        med1 = 110.0
        sigma = math.sqrt(med1 * wt + 4 * 100 * 0.5 + 4 * 16)
        weak_min = (med1 * wt - 3.5 * sigma) / wt  # between 3σ and 4σ below
        values = [[base, weak_min, 100]] + [[5000, med1, 100]] * 3
        no_grow = minmed(values, [[1, 1, 1]] * 4, kernel, grow=0)
        grown = minmed(values, [[1, 1, 1]] * 4, kernel, grow=1)
        assert no_grow.minchosen[0].tolist() == [1, 0, 0]
        assert grown.minchosen[0].tolist() == [1, 1, 0]
        assert grown.median[0][1] == np.float32(weak_min)


@pytest.mark.parametrize("kernel", KERNELS)
def test_rows_argument_returns_only_output_rows(kernel):
    rng = np.random.default_rng(3)
    sci = rng.normal(size=(4, 9, 5)).astype(np.float32)
    wht = np.ones_like(sci)
    scalars = ImageScalars.of([1.0] * 4, [0.0] * 4, [1.0] * 4)
    spec = CombineSpec(kind="minmed", grow=1)
    whole = combine_section(sci, wht, spec, thresholds=np.zeros(4), scalars=scalars,
                            kernel=kernel)
    part = combine_section(sci, wht, spec, thresholds=np.zeros(4), scalars=scalars,
                           rows=(2, 6), kernel=kernel)
    assert same_bits(part.median, whole.median[2:6])
    assert part.ngood.shape == (4, 5)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("kind", ["minmed", "median", "mean", "sum"])
def test_planes_as_a_list_of_big_endian_views(kernel, kind):
    # the engine passes N separate (big-endian, as in FITS) planes, not one native array
    rng = np.random.default_rng(4)
    sci = rng.normal(100, 10, size=(5, 7, 6)).astype(np.float32)
    wht = rng.uniform(0, 2, size=sci.shape).astype(np.float32)
    scalars = ImageScalars.of([100.0] * 5, [1.0] * 5, [3.0] * 5)
    spec = CombineSpec(kind=kind, grow=1)
    thresholds = np.full(5, 0.7)
    whole = combine_section(sci, wht, spec, thresholds=thresholds, scalars=scalars,
                            kernel=kernel)
    planes = [p.astype(">f4") for p in sci]
    wplanes = [p.astype(">f4") for p in wht]
    listed = combine_section(planes, wplanes, spec, thresholds=thresholds, scalars=scalars,
                             kernel=kernel)
    assert listed.median.shape == (7, 6)
    assert same_bits(listed.median, whole.median)
    assert np.array_equal(listed.ngood, whole.ngood)


@pytest.mark.parametrize("kernel", KERNELS)
def test_signed_zeros_follow_drizzlepac(kernel):
    # drizzlepac's exchange sort puts [0.0, -0.0, -0.108] in the order [-0.108, -0.0, 0.0]:
    # the median is -0.0 (a stable sort would give +0.0)
    med, _ = run("median", [[0.0], [-0.0], [-0.108]], kernel=kernel)
    assert med[0] == 0 and np.signbit(med[0])
    med, _ = run("median", [[-0.0], [0.0], [-0.108]], kernel=kernel)
    assert med[0] == 0 and not np.signbit(med[0])
    # np.sum starts from +0.0: a sum of -0.0 values is +0.0
    total, _ = run("sum", [[-0.0], [-0.0]], kernel=kernel)
    assert total[0] == 0 and not np.signbit(total[0])


# ---------------------------------------------------------------------------------------------
# issue 12: NumPy's own reduction order where drizzlepac's np.sum / np.amin change it


def _drizzlepac_sum(section: np.ndarray) -> np.ndarray:
    """drizzlepac's sum of one section: ``np.sum(data, axis=0, out=float32)`` on its
    big-endian (N, rows, nx) array."""
    data = np.ascontiguousarray(section, dtype=">f4")
    return np.sum(data, axis=0, out=np.empty(data.shape[1:], dtype=np.float32))


@pytest.mark.parametrize("kernel", KERNELS)
def test_sum_of_one_pixel_sections_is_numpys_pairwise_sum(tmp_path, kernel):
    """Sixteen 1×1 images [1e8, 1, ..., 1]: NumPy sums a one-pixel section along a contiguous
    axis, pairwise; elsewhere in stack order. A 1-column image cut into 1-row sections, and
    into 2-row sections, gives each section drizzlepac's bits."""
    from conftest import write_stack

    from medstack import median_image

    sci = np.ones((16, 1, 1), dtype=np.float32)
    sci[0] = 1e8
    sequential = np.float32(1e8)
    for _ in range(15):
        sequential = np.float32(sequential + np.float32(1))
    expected = _drizzlepac_sum(sci)
    out = combine_section(sci, None, CombineSpec(kind="sum"), kernel=kernel)
    assert same_bits(out.median, expected)
    assert expected[0, 0] != sequential  # (pairwise is not sequential here)

    rng = np.random.default_rng(16)
    column = (rng.standard_normal((40, 7, 1)) * 10.0 ** rng.integers(-2, 8, (40, 7, 1)))
    column = column.astype(np.float32)
    names = write_stack(tmp_path, column, np.ones_like(column))
    for rows in (1, 2):
        got = median_image(names, combine_type="sum", kernel=kernel,
                           combine_bufsize=rows * 4 / 2**20).data
        want = np.concatenate([_drizzlepac_sum(column[:, y:y + rows])
                               for y in range(0, 7, rows)])
        assert same_bits(got, want), rows


def _signed_zero_stack(rng, n, r, nx):
    """Per pixel, a quarter of the values (at least two) are zeros of both signs at random
    places in the stack (the minimum, tied), the rest 1000 or more (a median far above)."""
    sci = rng.choice(np.array([1000.0, 1001.0, 1002.0, 1003.0], np.float32), (n, r, nx))
    k = max(2, n // 4)
    for y in range(r):
        for x in range(nx):
            where = rng.permutation(n)[:k]
            signs = rng.permutation(np.r_[[0.0, -0.0], rng.choice([0.0, -0.0], k - 2)])
            sci[where, y, x] = signs
    return sci.astype(np.float32)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("masks", [False, True])
def test_minmed_signed_zero_ties_follow_drizzlepacs_numpy_minimum(kernel, masks):
    """Without weight masks drizzlepac takes ``np.amin`` (ties of ±0: the second operand, at
    every position), with masks ``nanmin`` (``np.fmin``: the first at its scalar-tail
    positions); a one-pixel section is reduced along a contiguous axis, in SIMD lanes. The
    issue's case: 5 images of 1×17 holding +0.0, −0.0, 100, 101, 102, grow 0."""
    sci = np.zeros((5, 1, 17), dtype=np.float32)
    sci[1] = -0.0
    sci[2:] = np.array([100, 101, 102], np.float32)[:, None, None]
    cases = [sci]
    rng = np.random.default_rng(17)
    cases += [_signed_zero_stack(rng, n, r, nx)
              for n, r, nx in [(5, 1, 33), (6, 2, 17), (20, 1, 1), (40, 1, 1), (64, 1, 1),
                               (33, 1, 1), (7, 3, 16)]]
    op = np.fmin if masks else np.minimum
    for stack in cases:
        n = stack.shape[0]
        wht = np.full(stack.shape, 100.0, dtype=np.float32)
        out = combine_section(stack, wht, CombineSpec(kind="minmed", grow=0, weight_masks=masks),
                              thresholds=np.full(n, 1.0) if masks else None,
                              scalars=ImageScalars.of([100.0] * n, [0.0] * n, [0.0] * n),
                              kernel=kernel)
        expected = op.reduce(np.ascontiguousarray(stack, dtype=">f4"), axis=0)
        assert out.minchosen.all()
        assert same_bits(out.median, expected), (stack.shape, masks)
    if not masks:  # the pixel (0, 16): np.amin takes the second zero there too
        first = combine_section(sci, np.full(sci.shape, 100.0, np.float32),
                                CombineSpec(kind="minmed", grow=0, weight_masks=False),
                                thresholds=None, kernel=kernel,
                                scalars=ImageScalars.of([100.0] * 5, [0.0] * 5, [0.0] * 5))
        assert np.signbit(first.median[0, 16])


@pytest.fixture()
def not_built(monkeypatch, tmp_path):
    """As in an installation whose compiled library was not built (no C compiler then)."""
    unload_fast(monkeypatch)
    from medstack.kernels import _build

    monkeypatch.setattr(_build, "library_path", lambda: None)


def unload_fast(monkeypatch) -> None:
    """Forget the loaded fast module, so that the next use imports it again."""
    import medstack.kernels

    monkeypatch.delitem(sys.modules, "medstack.kernels.fast", raising=False)
    monkeypatch.delattr(medstack.kernels, "fast", raising=False)


def test_auto_takes_the_compiled_kernels():
    from medstack.kernels import choose_kernel, fast_unavailable

    assert fast_unavailable() is None
    assert choose_kernel("auto").name == "fast"
    assert choose_kernel("fast").name == "fast"
    assert choose_kernel("reference").name == "reference"
    with pytest.raises(ValueError, match="choose one of: auto, fast, reference"):
        choose_kernel("gpu")


def test_a_section_result_carries_only_its_declared_fields():
    import dataclasses
    import pickle

    from medstack.kernels import SectionResult

    sci, wht = random_stack(np.random.default_rng(6), 3, 5, 4)
    result = combine_section(sci, wht, CombineSpec(kind="median"), thresholds=np.zeros(3))
    assert [f.name for f in dataclasses.fields(SectionResult)] == [
        "median", "ngood", "minchosen", "nonfinite", "masked"]
    assert result.masked is None and result.nonfinite.shape == (3,)
    with pytest.raises(AttributeError):
        result.counted = 1
    again = pickle.loads(pickle.dumps(result))
    assert again.median.tobytes() == result.median.tobytes()


@pytest.mark.parametrize("name", ["fast", "reference"])
def test_the_chosen_kernels_pickle_as_their_name(name):
    """What a Dask task carries: the name, resolved again where it is unpickled."""
    import pickle

    from medstack.kernels import Kernels, choose_kernel

    data = pickle.dumps(choose_kernel(name))
    assert len(data) < 100 and name.encode() in data
    again = pickle.loads(data)
    assert isinstance(again, Kernels) and again.name == str(again) == name
    sci, wht = random_stack(np.random.default_rng(5), 4, 6, 7)
    spec = CombineSpec(kind="median")
    got = again.combine_section(sci, wht, spec, thresholds=np.zeros(4))
    want = combine_section(sci, wht, spec, thresholds=np.zeros(4), kernel="reference")
    assert got.median.tobytes() == want.median.tobytes()
    assert got.nonfinite.tolist() == want.nonfinite.tolist()


def test_the_library_is_found_beside_its_source():
    from medstack.kernels import _build, fast

    path = _build.library_path()
    assert path is not None and path.parent == _build.SOURCE.parent
    assert path.name.startswith("_fast.") and path.suffix == ".so"
    assert fast._lib._name == str(path)


def test_without_the_library_auto_takes_the_reference_kernels(not_built):
    from medstack.kernels import KernelsNotBuilt, choose_kernel, fast_unavailable

    why = fast_unavailable()
    assert why is not None and "compiled kernels are not built" in why
    assert "medstack-compile" in why
    assert choose_kernel("auto").name == "reference"
    assert choose_kernel("reference").name == "reference"
    with pytest.raises(KernelsNotBuilt, match="^kernel: fast: the compiled kernels are not built"):
        choose_kernel("fast")
    assert "medstack.kernels.fast" not in sys.modules


def test_a_library_that_cannot_be_loaded_says_so(monkeypatch, tmp_path):
    from medstack.kernels import _build, choose_kernel, fast_unavailable

    broken = tmp_path / "_fast.cpython-broken.so"
    broken.write_text("not a shared library\n")
    unload_fast(monkeypatch)
    monkeypatch.setattr(_build, "library_path", lambda: broken)
    why = fast_unavailable()
    assert why is not None and why.startswith(f"{broken}: cannot be loaded")
    assert choose_kernel("auto").name == "reference"


@pytest.mark.parametrize("kind", ["minmed", "imedian", "mean", "sum"])
def test_auto_gives_the_same_bits_as_each_kernel(tmp_path, kind, monkeypatch, caplog):
    from conftest import random_stack, write_stack

    from medstack import median_image
    from medstack.kernels import _build

    sci, wht = random_stack(np.random.default_rng(3), 5, 70, 45)
    sci[1, 3, 4] = np.nan
    wht[2, 5, 6] = np.inf
    names = write_stack(tmp_path, sci, wht)
    runs = {k: median_image(names, combine_type=kind, kernel=k, save_maps=True)
            for k in ("fast", "reference", "auto")}
    assert not [r for r in caplog.records if "reference kernels run instead" in r.getMessage()]
    # no library: auto runs the reference kernels, and says so
    unload_fast(monkeypatch)
    monkeypatch.setattr(_build, "library_path", lambda: None)
    runs["auto, not built"] = median_image(names, combine_type=kind, save_maps=True)
    assert "medstack.kernels.fast" not in sys.modules
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [m for m in said if m.endswith("the NumPy reference kernels run instead (the same "
                                          "image, several times slower)")], said
    for k in ("fast", "reference", "auto"):
        assert same_bits(runs[k].data, runs["auto, not built"].data), k
        assert same_bits(runs[k].ngood, runs["auto, not built"].ngood), k


def test_a_run_compiles_nothing_and_imports_no_jit(tmp_path):
    """The command runs the compiled kernels as built at installation: the library is
    loaded, no compiler runs, and neither numba nor llvmlite is imported."""
    import subprocess

    from conftest import random_stack, write_stack

    sci, wht = random_stack(np.random.default_rng(4), 3, 64, 64)
    names = write_stack(tmp_path, sci, wht)
    code = ("import subprocess, sys\n"
            "def refuse(*a, **k): raise AssertionError('a subprocess ran')\n"
            "subprocess.Popen = refuse\n"
            "from medstack.cli import main\n"
            "status = main(sys.argv[1:])\n"
            "print('medstack.kernels.fast' in sys.modules, 'numba' in sys.modules, "
            "'llvmlite' in sys.modules, status)")
    for kind in ("median", "minmed"):
        done = subprocess.run([sys.executable, "-c", code, *names, "-o", str(tmp_path / kind),
                               "--combine-type", kind, "-q"],
                              capture_output=True, text=True, check=True)
        assert done.stdout.split() == ["True", "False", "False", "0"], (kind, done.stdout,
                                                                        done.stderr)
