"""Weight statistics and masks (docs/spec.md §4), sequential float64 mean as drizzlepac's ImageStats."""

from __future__ import annotations

import numpy as np

from medstack.core.weights import MIN_WEIGHT, WeightMean, mask_threshold
from medstack.kernels.reference import weight_mask


def test_mean_is_sequential_float64_rounded_to_float32():
    rng = np.random.default_rng(5)
    w = rng.uniform(0, 100, (50, 40)).astype(np.float32)
    w[w < 5] = 0.0
    w[3, 3] = np.float32(1e-9)  # below ImageStats' lower limit
    acc = 0.0
    count = 0
    for v in w.ravel():
        if v >= MIN_WEIGHT:
            acc += float(v)
            count += 1
    expected = float(np.float32(acc / count))
    whole = WeightMean()
    whole.add(w)
    sections = WeightMean()
    for y in range(0, 50, 7):
        sections.add(w[y : y + 7])
    assert whole.mean == expected == sections.mean
    assert whole.count == count


def test_nan_weights_are_excluded_and_counted():
    acc = WeightMean()
    acc.add(np.array([1.0, np.nan, 3.0], dtype=np.float32))
    assert acc.mean == 2.0 and acc.nan_count == 1


def test_all_zero_weights_mask_everything():
    acc = WeightMean()
    acc.add(np.zeros(10, dtype=np.float32))
    assert acc.mean is None
    assert mask_threshold(acc.mean, 0.7) == float("inf")
    assert weight_mask(np.zeros((1, 2, 2), np.float32), [np.inf]).all()


def test_mask_compares_in_float64_and_equal_is_good():
    thr = mask_threshold(float(np.float32(0.1)), 1.0)
    w = np.array([[[np.float32(0.1), np.nextafter(np.float32(0.1), np.float32(0)), np.nan]]])
    assert weight_mask(w.astype(np.float32), [thr]).tolist() == [[[False, True, True]]]
    # a float64 threshold between two float32 values: compared exactly, not rounded to float32
    w = np.array([[[1.0, np.nextafter(np.float32(1.0), np.float32(2))]]], dtype=np.float32)
    assert weight_mask(w, [1.0 + 2**-30]).tolist() == [[[True, False]]]
    assert not weight_mask(w, [0.0]).any()  # threshold 0 masks nothing
