"""The quick-look PNG (:func:`medstack.extras.quicklook.save_quicklook`)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from matplotlib.image import imread

from medstack.errors import OutputError, ParameterError
from medstack.extras.demo import make_stack
from medstack.extras.quicklook import STRETCHES, save_quicklook

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk, after checking the signature."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def demo_median(tmp_path_factory):
    """A demo stack's plain per-pixel median of the good inputs, its count map and header."""
    paths = make_stack(tmp_path_factory.mktemp("ql"), n_images=5, shape=(128, 160), seed=2)
    sci = np.array([fits.getdata(p) for p in paths], dtype=np.float64)
    wht = np.array([fits.getdata(str(p).replace("_single_sci", "_single_wht")) for p in paths])
    good = wht >= 0.7 * wht.reshape(len(wht), -1).mean(axis=1)[:, None, None]
    ngood = good.sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels outside
        median = np.nanmedian(np.where(good, sci, np.nan), axis=0)
    return median, ngood, fits.getheader(paths[0])


@pytest.mark.parametrize("stretch", STRETCHES)
def test_png_with_count_map(demo_median, tmp_path, stretch):
    median, ngood, header = demo_median
    path = tmp_path / f"{stretch}.png"
    out = save_quicklook(path, median, ngood, title="demo", stretch=stretch, header=header)
    assert out == path and isinstance(out, Path)
    width, height = png_size(path)
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert 900 <= width <= 2500 and 400 <= height <= 1000  # two panels side by side
    assert path.stat().st_size > 20_000  # a picture with content
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_png_without_count_map(demo_median, tmp_path):
    median, ngood, _ = demo_median
    both = save_quicklook(tmp_path / "both.png", median, ngood)
    alone = save_quicklook(tmp_path / "alone.png", median)
    w_alone, h_alone = png_size(alone)
    assert 300 <= w_alone < png_size(both)[0] and h_alone >= 300


def test_demo_stack_picture(demo_median, tmp_path):
    """The count map's colours: the chip gap and the edges have fewer inputs."""
    median, ngood, header = demo_median
    path = save_quicklook(tmp_path / "demo.png", median, ngood, header=header, stretch="asinh")
    rgb = (imread(path)[..., :3] * 255).astype(np.uint32)
    colours = np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
    assert len(colours) > 50  # a grey-scale image and a colour map
    assert ngood.max() == 5 and ngood.min() == 0


def test_str_path_and_overwrite(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"old")
    image = np.random.default_rng(0).normal(size=(40, 50))
    out = save_quicklook(str(path), image, n_inputs=7, title="seven")
    assert out == path and path.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(os.listdir(tmp_path)) == ["x.png"]


def test_nan_pixels(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.normal(size=(60, 80))
    image[10:20, :] = np.nan
    image[0, 0] = np.inf
    ngood = np.full(image.shape, 3)
    ngood[10:20, :] = 0
    for stretch in STRETCHES:
        path = save_quicklook(tmp_path / f"nan_{stretch}.png", image, ngood, stretch=stretch)
        assert png_size(path)[0] > 300
    # all NaN, and a constant image: still a picture
    save_quicklook(tmp_path / "allnan.png", np.full((30, 30), np.nan), np.zeros((30, 30), int))
    save_quicklook(tmp_path / "const.png", np.ones((30, 30)), stretch="asinh")
    # a float count map with NaN
    counts = np.where(np.isnan(image), np.nan, 2.0)
    save_quicklook(tmp_path / "fcount.png", image, counts)


def test_large_image_is_binned(tmp_path):
    image = np.zeros((3300, 120), dtype=np.float32)
    image[::50] = 5.0
    ngood = np.full(image.shape, 4, dtype=np.uint16)
    ngood[1000:1003] = 1
    path = save_quicklook(tmp_path / "tall.png", image, ngood, title="tall")
    assert png_size(path)[1] <= 1000


def test_many_inputs(tmp_path):
    ngood = np.arange(40 * 50).reshape(40, 50) % 37
    save_quicklook(tmp_path / "many.png", np.zeros((40, 50)), ngood)


@pytest.mark.parametrize("stretch", ["linear", "ZSCALE", "", None])
def test_bad_stretch(tmp_path, stretch):
    with pytest.raises(ParameterError) as err:
        save_quicklook(tmp_path / "bad.png", np.zeros((10, 10)), stretch=stretch)
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert "zscale" in message and "asinh" in message
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("median, ngood", [
    (np.zeros(10), None),
    (np.zeros((2, 3, 4)), None),
    (np.zeros((0, 4)), None),
    (np.zeros((10, 12)), np.zeros((12, 10))),
])
def test_bad_arrays(tmp_path, median, ngood):
    with pytest.raises(ParameterError):
        save_quicklook(tmp_path / "bad.png", median, ngood)
    assert not list(tmp_path.iterdir())


def test_missing_folder(tmp_path):
    with pytest.raises(OutputError):
        save_quicklook(tmp_path / "nope" / "x.png", np.zeros((10, 10)))


def test_header_without_wcs(tmp_path):
    header = fits.Header({"BUNIT": "ELECTRONS/S", "CTYPE1": "BOGUS"})
    save_quicklook(tmp_path / "h.png", np.zeros((10, 12)), header=header)


def test_no_pyplot(tmp_path):
    """The figure is made without pyplot (no global state, no GUI backend)."""
    code = (
        "import sys, numpy as np\n"
        "from medstack.extras.quicklook import save_quicklook\n"
        f"save_quicklook({str(tmp_path / 'p.png')!r}, np.zeros((20, 20)), np.ones((20, 20)))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert png_size(tmp_path / "p.png")[0] > 0


def _tan_header(shape, scale_arcsec=0.05, *, cd=True, rotation_deg=20.0):
    """A TAN header for ``shape`` at ``scale_arcsec`` per pixel, rotated, with a CD matrix
    (or PC + CDELT)."""
    ny, nx = shape
    header = fits.Header()
    header["NAXIS"] = 2
    header["NAXIS1"], header["NAXIS2"] = nx, ny
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    header["CRVAL1"], header["CRVAL2"] = 6.02, -72.08
    header["CRPIX1"], header["CRPIX2"] = nx / 2 + 0.5, ny / 2 + 0.5
    t = np.deg2rad(rotation_deg)
    s = scale_arcsec / 3600.0
    pc = np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
    if cd:
        for i in range(2):
            for j in range(2):
                header[f"CD{i + 1}_{j + 1}"] = s * pc[i, j]
    else:
        header["CDELT1"], header["CDELT2"] = s, s
        for i in range(2):
            for j in range(2):
                header[f"PC{i + 1}_{j + 1}"] = pc[i, j]
    return header


@pytest.mark.parametrize("cd", [True, False], ids=["CD", "PC+CDELT"])
@pytest.mark.parametrize("shape", [(4096, 4096), (4000, 1500), (1600, 1600)])
def test_binned_axes_span_the_sky_of_the_full_image(shape, cd):
    """The binned WCS puts every shown block where the full WCS puts those pixels: the axes
    of a 4096² image at 0.05"/px span 204.8", not a third of it."""
    from astropy.wcs import WCS

    from medstack.extras.quicklook import _bin_factor, display_wcs

    header = _tan_header(shape, cd=cd)
    full = WCS(header)
    f = _bin_factor(shape)
    binned = display_wcs(header, shape, f)
    by, bx = shape[0] // f, shape[1] // f
    assert binned.pixel_shape == (bx, by)
    # the shown image's corners (pixel edges) and centre, in both grids
    xb = np.array([-0.5, bx - 0.5, -0.5, bx - 0.5, (bx - 1) / 2])
    yb = np.array([-0.5, -0.5, by - 0.5, by - 0.5, (by - 1) / 2])
    sky_b = binned.pixel_to_world(xb, yb)
    sky_f = full.pixel_to_world(f * (xb + 0.5) - 0.5, f * (yb + 0.5) - 0.5)
    assert np.all(sky_b.separation(sky_f).arcsec < 1e-6)
    width = sky_b[0].separation(sky_b[1]).arcsec
    assert width == pytest.approx(bx * f * 0.05, rel=1e-6)
    if shape == (4096, 4096):
        assert f == 8 and width == pytest.approx(204.8, rel=1e-6)


def test_png_of_a_large_image_prints_no_wcs_message(tmp_path, capfd):
    header = _tan_header((3300, 200))
    image = np.random.default_rng(3).normal(size=(3300, 200)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_quicklook(tmp_path / "w.png", image, np.ones(image.shape, int), header=header)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert not [w for w in caught if "cdelt" in str(w.message).lower()]


def test_sections_in_any_order_give_the_same_picture(tmp_path):
    """Rows fed in blocks that do not line up with the bins, in any order, give exactly what
    the whole image gives."""
    from medstack.extras.quicklook import QuickLook

    rng = np.random.default_rng(8)
    image = rng.normal(size=(3301, 97)).astype(np.float32)
    image[100:140, 5:9] = np.nan
    ngood = rng.integers(0, 6, image.shape).astype(np.uint16)
    whole = QuickLook(image.shape)
    whole.add(0, image, ngood)
    parts = QuickLook(image.shape)
    edges = [0, 1, 7, 500, 1001, 2999, 3000, 3301]
    for a, b in reversed(list(zip(edges, edges[1:]))):
        parts.add(a, image[a:b], ngood[a:b])
    f = whole.factor
    assert parts.factor == f == 7  # 3301 rows shown in at most 512
    np.testing.assert_array_equal(whole.median, parts.median)
    np.testing.assert_array_equal(whole.counts, parts.counts)
    np.testing.assert_array_equal(whole.sample(), parts.sample())
    assert whole.n_nan == parts.n_nan == 160 and whole.max_count == 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the all-NaN block
        blocks = image[:471 * f, :13 * f].reshape(471, f, 13, f).astype(np.float64)
        expected = np.nanmean(blocks, axis=(1, 3))
    np.testing.assert_allclose(parts.median, expected, rtol=1e-12)
    counts = ngood[:471 * f, :13 * f].reshape(471, f, 13, f).min(axis=(1, 3))
    assert np.array_equal(parts.counts, counts)


def test_cli_png_memory_stays_within_the_run(tmp_path):
    """--png adds less than one float32 copy of the image to the run's peak (traced) memory:
    the quick-look is built from the sections as they come, binned. (Rendering the PNG costs a
    fixed amount, about 15 MB, whatever the image's size: the image is made large enough that
    a full-size copy could not hide in it.)"""
    import tracemalloc

    from conftest import write_stack

    from medstack.cli import main

    ny, nx = 19200, 400
    rng = np.random.default_rng(0)
    names = write_stack(tmp_path / "in", rng.normal(5, 1, (3, ny, nx)),
                        np.full((3, ny, nx), 100.0))
    argv = [*names, "-o", str(tmp_path / "m"), "-q", "--workers", "1"]
    assert main([*argv, "--png", str(tmp_path / "warm.png")]) == 0  # imports matplotlib
    peaks = {}
    for png in (False, True):
        tracemalloc.start()
        assert main(argv + (["--png", str(tmp_path / "m.png")] if png else [])) == 0
        peaks[png] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[True] - peaks[False] < ny * nx * 4, peaks
    assert png_size(tmp_path / "m.png")[1] <= 1000
