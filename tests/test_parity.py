"""Parity with drizzlepac 3.11.0, bit for bit.

Real ACS/HRC data with drizzlepac's own outputs (``../shared/data/hrc-47tuc``; skipped when
absent) and small synthetic fixtures kept in the repository (``tests/data/synthetic``, made by
``benchmarks/make_parity_fixtures.py`` with drizzlepac's real ``_median``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from conftest import SHARED_DATA, SYNTHETIC, same_bits

from medstack import median_image
from medstack.cli import main

_KEYS = {
    "combine_type": "combine_type",
    "nsigma": "combine_nsigma",
    "grow": "combine_grow",
    "maskpt": "combine_maskpt",
    "nlow": "combine_nlow",
    "nhigh": "combine_nhigh",
    "lthresh": "combine_lthresh",
    "hthresh": "combine_hthresh",
    "newmasks": "median_newmasks",
    "bufsize": "combine_bufsize",
}


def case_params(case: dict) -> dict:
    """A cases.json entry as medstack parameters."""
    return {_KEYS[k]: v for k, v in case.items() if k in _KEYS}


def _shared_cases():
    path = SHARED_DATA / "cases.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())["cases"]


@pytest.mark.parametrize("case", _shared_cases(), ids=lambda c: c["name"])
@pytest.mark.parametrize("kernel", ["fast", "reference"])
def test_hrc_case_bit_for_bit(hrc_data, case, kernel):
    result = median_image(hrc_data["sci"], kernel=kernel, **case_params(case))
    expected = fits.getdata(SHARED_DATA / case["expected"])
    assert same_bits(result.data, expected)


@pytest.mark.parametrize("case", _shared_cases()[:3], ids=lambda c: c["name"])
def test_hrc_case_through_cli(hrc_data, case, tmp_path):
    argv = [*hrc_data["sci"], "-o", str(tmp_path / "out"), "-q", "--combine-bufsize", "0.3"]
    for key, value in case_params(case).items():
        option = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(option if value else "--no-" + option[2:])
        else:
            argv += [option, str(value)]
    assert main(argv) == 0
    with fits.open(tmp_path / "out_med.fits") as hdul:
        assert len(hdul) == 1
        assert hdul[0].data.dtype == np.dtype(">f4")
        assert same_bits(hdul[0].data, fits.getdata(SHARED_DATA / case["expected"]))
        assert hdul[0].header["NCOMBINE"] == 4
        assert hdul[0].header["MEDCTYPE"] == case["combine_type"]


def test_hrc_header_is_first_input_plus_provenance(hrc_data):
    result = median_image(hrc_data["sci"], combine_maskpt=0.3)
    expected = fits.getheader(SHARED_DATA / "astrodrizzle_e2e_med.fits.gz")
    for key in ("EXPTIME", "MDRIZSKY", "CRVAL1", "CRVAL2", "CD1_1", "BUNIT", "FILENAME"):
        assert result.header[key] == expected[key]
    assert same_bits(result.data, fits.getdata(SHARED_DATA / "astrodrizzle_e2e_med.fits.gz"))


def _synthetic():
    path = SYNTHETIC / "cases.json"
    if not path.exists():
        return [], {}
    data = json.loads(path.read_text())
    return data["cases"], data["stacks"]


SYN_CASES, SYN_STACKS = _synthetic()


@pytest.mark.skipif(not SYN_CASES, reason="synthetic fixtures missing")
@pytest.mark.parametrize("case", SYN_CASES, ids=lambda c: c["name"])
@pytest.mark.parametrize("kernel", ["fast", "reference"])
def test_synthetic_case_bit_for_bit(case, kernel):
    if case.get("touches_deviation"):
        pytest.skip(f"touches deviation {case['touches_deviation']}: see test_deviations")
    images = SYN_STACKS[case["stack"]]["images"]
    scis = [str(SYNTHETIC / im["sci"]) for im in images]
    result = median_image(
        scis,
        weights=[str(SYNTHETIC / im["wht"]) for im in images],
        exptime=[im["exptime"] for im in images],
        sky=[im["sky"] for im in images],
        readnoise=[im["readnoise"] for im in images],
        kernel=kernel,
        **case_params(case),
    )
    expected = fits.getdata(SYNTHETIC / case["expected"])
    assert same_bits(result.data, expected)
