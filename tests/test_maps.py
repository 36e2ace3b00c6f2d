"""``--save-maps`` (count and minimum-chosen maps) and ``--png`` (the quick-look image).

The maps are checked against the reference kernel's SectionResult on the same arrays; their
headers carry the median's WCS; they are written atomically like the median.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from conftest import random_stack, same_bits, write_stack

from medstack import median_image
from medstack.cli import main
from medstack.kernels import CombineSpec, ImageScalars, combine_section
from medstack.params import validate

NY, NX = 30, 22
WCS_CARDS = {
    "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 6.0223, "CRVAL2": -72.0814,
    "CRPIX1": 11.5, "CRPIX2": 15.0, "CD1_1": -6.9e-6, "CD1_2": 1.1e-6, "CD2_1": 1.1e-6,
    "CD2_2": 6.9e-6,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    sci, wht = random_stack(np.random.default_rng(21), 5, NY, NX)
    wht[:, 4:7, 3:9] = 0.0  # a hole in every image: ngood 0 there
    wht[1, 10:20, :] = 0.0
    names = write_stack(tmp_path_factory.mktemp("maps"), sci, wht, header_extra=WCS_CARDS)
    return sci, wht, names


def expected(sci, wht, **params):
    """Reference kernel on the whole arrays, thresholds computed here."""
    p = validate(params)
    thresholds = []
    for w in wht:
        keep = w[w >= np.float32(1e-8)].astype(np.float64)
        thresholds.append(float(np.float32(np.cumsum(keep)[-1] / keep.size)) * 0.7)
    n = len(sci)
    return combine_section(sci, wht, CombineSpec.from_params(p), thresholds=np.array(thresholds),
                           scalars=ImageScalars.of([100.0] * n, [50.0] * n, [4.0] * n),
                           kernel="reference")


@pytest.mark.parametrize("ctype", ["minmed", "iminmed"])
def test_minmed_maps_match_the_reference(stack, tmp_path, ctype):
    sci, wht, names = stack
    result = median_image(names, tmp_path / "v", combine_type=ctype, save_maps=True,
                          combine_bufsize=4 * NX * 4 / 2**20, workers=2)
    ref = expected(sci, wht, combine_type=ctype)
    ngood = fits.getdata(tmp_path / "v_med_ngood.fits")
    chosen = fits.getdata(tmp_path / "v_med_minchosen.fits")
    assert ngood.dtype == np.uint16 and chosen.dtype == np.uint8
    assert np.array_equal(ngood, ref.ngood) and np.array_equal(chosen, ref.minchosen)
    assert same_bits(fits.getdata(tmp_path / "v_med.fits"), ref.median)
    # the maps say something: holes have no good input, cosmic rays were replaced
    assert ngood[5, 5] == 0 and ngood.max() == 5 and (ngood[12, :] <= 4).all()
    assert 0 < chosen.sum() < chosen.size and chosen[5, 5] == 0
    # returned arrays as well as files
    assert np.array_equal(result.ngood, ngood) and np.array_equal(result.minchosen, chosen)
    assert [p.name for p in result.map_paths] == ["v_med_ngood.fits", "v_med_minchosen.fits"]


@pytest.mark.parametrize("ctype", ["median", "mean", "sum", "imedian"])
def test_other_types_write_only_the_count_map(stack, tmp_path, ctype):
    sci, wht, names = stack
    median_image(names, tmp_path / "v", combine_type=ctype, save_maps=True,
                 combine_nhigh=1 if ctype == "median" else 0, keep_data=False)
    params = {"combine_nhigh": 1} if ctype == "median" else {}
    ref = expected(sci, wht, combine_type=ctype, **params)
    ngood = fits.getdata(tmp_path / "v_med_ngood.fits")
    assert ngood.dtype == np.uint16 and np.array_equal(ngood, ref.ngood)
    assert not (tmp_path / "v_med_minchosen.fits").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v_med.fits", "v_med_ngood.fits"]


def test_map_headers_have_the_same_wcs(stack, tmp_path):
    _, _, names = stack
    median_image(names, tmp_path / "v", save_maps=True)
    median = fits.getheader(tmp_path / "v_med.fits")
    for name, bitpix, unit in [("v_med_ngood.fits", 16, "count"), ("v_med_minchosen.fits", 8, "")]:
        header = fits.getheader(tmp_path / name)
        assert header["BITPIX"] == bitpix and header["BUNIT"] == unit
        assert header["MEDMAP"] == name.split("_")[-1].removesuffix(".fits")
        for key in WCS_CARDS:
            assert header[key] == median[key] == WCS_CARDS[key]
        assert WCS(header).wcs.compare(WCS(median).wcs)
        assert header["NCOMBINE"] == 5 and header["MEDCTYPE"] == "minmed"


def test_maps_are_written_atomically(stack, tmp_path, monkeypatch):
    _, _, names = stack
    first = median_image(names, tmp_path / "v", save_maps=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["v_med.fits", "v_med_minchosen.fits", "v_med_ngood.fits"]
    import medstack.core.unit as engine

    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("disk pulled")
        return combine_section(*args, **kwargs)

    monkeypatch.setattr(engine, "combine_section", failing)
    with pytest.raises(RuntimeError, match="disk pulled"):
        median_image(names, tmp_path / "v", save_maps=True, combine_nsigma="2 1",
                     combine_bufsize=3 * NX * 4 / 2**20, workers=1)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert first.path.read_bytes() == before["v_med.fits"]


def test_cli_save_maps(stack, tmp_path, capsys):
    _, _, names = stack
    assert main([*names, "-o", str(tmp_path / "c"), "--save-maps"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c_med.fits", "c_med_minchosen.fits", "c_med_ngood.fits"]
    assert main([*names, "-o", str(tmp_path / "d")]) == 0
    assert not (tmp_path / "d_med_ngood.fits").exists()


def png_size(path):
    """(width, height) from a PNG's IHDR chunk; fails unless the file is a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_cli_png(stack, tmp_path, capsys):
    _, _, names = stack
    png = tmp_path / "look.png"
    assert main([*names, "-o", str(tmp_path / "c"), "--png", str(png)]) == 0
    width, height = png_size(png)
    assert 300 <= width <= 4000 and 200 <= height <= 4000
    assert png.stat().st_size > 5000  # an image with content, not an empty canvas
    # the PNG needs the count map, but --png alone writes no map file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c_med.fits", "look.png"]


def test_save_quicklook_api(stack, tmp_path):
    from medstack.extras.quicklook import save_quicklook

    _, _, names = stack
    result = median_image(names, keep_maps=True)
    for stretch in ("zscale", "asinh"):
        path = tmp_path / f"{stretch}.png"
        save_quicklook(path, result.data, result.ngood, title="test", stretch=stretch,
                       header=result.header)
        width, height = png_size(path)
        assert width >= 300 and height >= 200
    alone = tmp_path / "alone.png"
    save_quicklook(alone, result.data)  # without a count map
    assert png_size(alone)[0] >= 200
