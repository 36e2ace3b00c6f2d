"""Section planning, and sectioned == unsectioned over many buffer sizes and grow values."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_stack, same_bits, write_stack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medstack import median_image
from medstack.core.sections import plan_sections, section_rows


@given(ny=st.integers(1, 300), rows=st.integers(1, 300), grow=st.integers(0, 5))
def test_plan_tiles_the_image_with_halo(ny, rows, grow):
    rows = min(max(rows, 2 * grow + 1), ny)
    sections = plan_sections(ny, rows, grow)
    covered = []
    for s in sections:
        assert s.nrows <= rows
        assert s.read[0] == max(0, s.out[0] - grow) or s.read == (0, ny)
        assert s.read[1] == min(ny, s.out[1] + grow) or s.read == (0, ny)
        covered.extend(range(*s.out))
    assert covered == list(range(ny))


def test_section_rows_budget_and_grow_floor():
    assert section_rows(4096, 4096, 2**20) == 64  # 1 MiB of float32 rows of 4096
    assert section_rows(1070, 1092, 2**20) == 240
    assert section_rows(100, 1000, 10) == 1  # at least one row
    assert section_rows(100, 1000, 10, grow=3) == 7  # never fewer than 2·grow + 1 (Q18)
    assert section_rows(5, 1000, 10, grow=3) == 5  # but not more than the image


def test_plan_single_section_when_buffer_holds_image():
    assert [(s.read, s.out) for s in plan_sections(10, 10, 2)] == [((0, 10), (0, 10))]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    rng = np.random.default_rng(11)
    sci, wht = random_stack(rng, 5, 37, 23)
    return write_stack(tmp_path_factory.mktemp("sec"), sci, wht)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ctype=st.sampled_from(["minmed", "iminmed", "median", "imean", "sum"]),
    grow=st.integers(0, 4),
    rows=st.integers(1, 40),
    kernel=st.sampled_from(["fast", "reference"]),
)
def test_sectioned_equals_unsectioned(stack, ctype, grow, rows, kernel):
    bufsize = rows * 23 * 4 / 2**20  # exactly ``rows`` rows of this 23-column stack
    whole = median_image(stack, combine_type=ctype, combine_grow=grow, combine_bufsize=100,
                         kernel=kernel)
    parts = median_image(stack, combine_type=ctype, combine_grow=grow, combine_bufsize=bufsize,
                         kernel=kernel, workers=2)
    assert len(parts.plan.sections) >= min(37, 37 // max(rows, 2 * grow + 1))
    assert same_bits(whole.data, parts.data)
