"""The parameter spec: defaults, coercion, validation messages."""

from __future__ import annotations

import math

import pytest

from medstack.errors import ParameterError
from medstack.params import COMBINE_TYPES, PARAMETERS, MedianParams, parse_nsigma, spec, validate


def test_defaults_are_the_seed_tasks():
    p = validate()
    assert p == MedianParams()
    assert (p.combine_type, p.combine_maskpt, p.combine_nsigma, p.combine_grow) == (
        "minmed", 0.7, (4.0, 3.0), 1)
    assert (p.combine_nlow, p.combine_nhigh, p.combine_lthresh, p.combine_hthresh) == (
        0, 0, None, None)
    assert p.budget_bytes == 4 * 2**20  # DEFAULT_BUFSIZE_MIB; drizzlepac 1 MiB
    assert {q.name for q in PARAMETERS} >= {
        "median", "median_newmasks", "combine_maskpt", "combine_type", "combine_nsigma",
        "combine_nlow", "combine_nhigh", "combine_lthresh", "combine_hthresh", "combine_grow",
        "combine_bufsize", "fillval"}


def test_strings_as_cfg_files_hold_them():
    p = validate({"combine_lthresh": "None", "combine_nsigma": "5 2", "median_newmasks": "False",
                  "combine_grow": "2", "combine_bufsize": "0.5", "combine_type": "IMedian"})
    assert p.combine_lthresh is None and p.combine_nsigma == (5.0, 2.0)
    assert p.median_newmasks is False and p.combine_grow == 2 and p.budget_bytes == 2**19
    assert p.kind == "median" and p.fill and p.grow_px == 0


@pytest.mark.parametrize("value, expected", [("4", (4.0, 4.0)), (3, (3.0, 3.0)),
                                             ([4, 2.5], (4.0, 2.5)), ("4,3", (4.0, 3.0))])
def test_nsigma_forms(value, expected):  # one value → both (Q19)
    assert parse_nsigma(value) == expected


@pytest.mark.parametrize("name, value, message", [
    ("combine_type", "average2", "choose one of: minmed, iminmed, median"),
    ("combine_nsigma", "four", "combine_nsigma"),
    ("combine_nsigma", "-1 3", "non-negative"),
    ("combine_nsigma", "1 2 3", "one or two"),
    ("combine_maskpt", -0.1, "combine_maskpt: must be >= 0"),
    ("combine_grow", -1, "combine_grow: must be >= 0"),
    ("combine_grow", 1.5, "combine_grow: expected an integer"),
    ("combine_bufsize", 0, "combine_bufsize: must be > 0"),
    ("combine_nlow", "x", "combine_nlow: expected an integer"),
    ("combine_hthresh", "inf", "combine_hthresh: expected a finite number"),
    ("median_newmasks", "maybe", "median_newmasks: expected True or False"),
])
def test_invalid_values_name_the_parameter(name, value, message):
    with pytest.raises(ParameterError, match=message):
        validate({name: value})


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ParameterError, match="unknown parameter 'combine_typo'; valid names: "
                       "median, median_newmasks, combine_maskpt"):
        validate(combine_typo=1)


def test_average_is_mean_and_fillval_nan():
    p = validate(combine_type="average", fillval="nan")
    assert p.kind == "mean" and not p.fill and math.isnan(p.fillval)
    assert set(COMBINE_TYPES) >= {"minmed", "iminmed", "median", "imedian", "mean", "imean",
                                  "average", "sum"}


def test_replace_validates():
    p = validate(combine_type="median").replace(combine_nhigh=1)
    assert p.combine_nhigh == 1 and p.combine_type == "median"
    with pytest.raises(ParameterError):
        p.replace(combine_nhigh=-1)
    assert spec("combine_type").option == "--combine-type"


def test_median_params_fields_are_the_declaration():
    """The written-out fields (what mypy sees) have the names, types and defaults that
    PARAMETERS declares, in its order."""
    from dataclasses import fields
    from typing import get_type_hints

    types = {"bool": bool, "int": int, "float": float, "str": str, "nsigma": tuple[float, float]}
    hints = get_type_hints(MedianParams)
    assert [f.name for f in fields(MedianParams)] == [p.name for p in PARAMETERS]
    for f, p in zip(fields(MedianParams), PARAMETERS):
        assert hints[f.name] == (types[p.kind] | None if p.optional else types[p.kind]), p.name
        assert f.default == p.convert(p.default), p.name


def test_median_params_check_themselves_when_made():
    p = MedianParams(combine_type=" IMedian", combine_nsigma="5", combine_grow="2")
    assert (p.combine_type, p.combine_nsigma, p.combine_grow) == ("imedian", (5.0, 5.0), 2)
    assert p == validate(combine_type="imedian", combine_nsigma=[5, 5], combine_grow=2)
    with pytest.raises(ParameterError, match="combine_grow: must be >= 0, got -1"):
        MedianParams(combine_grow=-1)
    with pytest.raises(ParameterError, match="combine_lthresh = 2 is not below"):
        MedianParams(combine_lthresh=2, combine_hthresh=2)


def test_header_keywords_come_from_the_spec(tmp_path):
    import numpy as np
    from conftest import random_stack, write_stack

    from medstack import median_image

    sci, wht = random_stack(np.random.default_rng(2), 3, 10, 9)
    header = median_image(write_stack(tmp_path, sci, wht), combine_type="median").header
    for p in PARAMETERS:
        if p.keyword is not None:
            assert header.comments[p.keyword] == p.name
    assert len({p.keyword for p in PARAMETERS if p.keyword}) == 11
