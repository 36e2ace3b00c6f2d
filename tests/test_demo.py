"""The synthetic stack generator (:mod:`medstack.extras.demo`) and the ``medstack-demo`` command."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from medstack.errors import ParameterError
from medstack.extras import demo, synthetic
from medstack.extras.demo import make_stack

SHAPE = (128, 160)
N = 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A small stack, its data and headers."""
    paths = make_stack(tmp_path_factory.mktemp("demo"), n_images=N, shape=SHAPE, seed=3)
    sci = np.array([fits.getdata(p) for p in paths])
    wht = np.array([fits.getdata(wht_name(p)) for p in paths])
    headers = [fits.getheader(p) for p in paths]
    return paths, sci, wht, headers


@pytest.fixture(scope="module")
def clean_stack(tmp_path_factory):
    """The same stack without cosmic rays."""
    paths = make_stack(tmp_path_factory.mktemp("clean"), n_images=N, shape=SHAPE, seed=3,
                       cosmic_rays=False)
    return np.array([fits.getdata(p) for p in paths])


def wht_name(sci: Path) -> Path:
    return sci.with_name(sci.name.replace("_single_sci", "_single_wht"))


def test_files(stack):
    paths, _, _, _ = stack
    assert [p.name for p in paths] == [f"demo{i:02d}_single_sci.fits" for i in range(1, N + 1)]
    for p in paths:
        assert p.is_file() and wht_name(p).is_file()
        with fits.open(p) as hdul, fits.open(wht_name(p)) as whdul:
            assert len(hdul) == 1 and len(whdul) == 1  # data in the primary HDU


def test_prefix_and_types(tmp_path):
    paths = make_stack(str(tmp_path / "new" / "dir"), n_images=1, shape=(32, 48), seed=0,
                       prefix="j8bt06")
    assert len(paths) == 1 and isinstance(paths[0], Path)
    assert paths[0].name == "j8bt0601_single_sci.fits"
    assert fits.getheader(paths[0])["ROOTNAME"] == "j8bt0601"


def test_same_seed_same_bytes(stack, tmp_path):
    paths, _, _, _ = stack
    again = make_stack(tmp_path, n_images=N, shape=SHAPE, seed=3)
    for a, b in zip(paths, again, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert wht_name(a).read_bytes() == wht_name(b).read_bytes()


def test_other_seed_other_data(stack, tmp_path):
    _, sci, wht, _ = stack
    other = make_stack(tmp_path, n_images=N, shape=SHAPE, seed=4)
    for i, p in enumerate(other):
        assert fits.getdata(p).tobytes() != sci[i].tobytes()
        assert fits.getdata(wht_name(p)).tobytes() != wht[i].tobytes()  # other dithers


def test_more_images_keep_the_first(stack, tmp_path):
    """Each exposure has its own random stream: adding exposures does not change the others."""
    _, sci, _, _ = stack
    fewer = make_stack(tmp_path, n_images=2, shape=SHAPE, seed=3)
    for i, p in enumerate(fewer):
        assert np.array_equal(fits.getdata(p), sci[i])


def test_shapes_and_dtypes(stack):
    paths, sci, wht, _ = stack
    assert sci.shape == wht.shape == (N, *SHAPE)
    for p in paths:
        for name in (p, wht_name(p)):
            with fits.open(name) as hdul:
                assert hdul[0].header["BITPIX"] == -32
                assert hdul[0].data.dtype == np.dtype(">f4")
    assert np.isfinite(sci).all() and np.isfinite(wht).all()


@pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")  # HST's date-only DATE-OBS
def test_headers(stack):
    paths, _, _, headers = stack
    for p, h in zip(paths, headers, strict=True):
        assert h["INSTRUME"] == "ACS" and h["DETECTOR"] == "WFC" and h["TELESCOP"] == "HST"
        assert h["BUNIT"] == "ELECTRONS/S"
        assert h["FILENAME"] == p.name
        assert h["ROOTNAME"] == p.name.split("_single")[0]
        assert h["TARGNAME"]
        assert h["CCDAMP"] == "ABCD"
        assert h["D001FVAL"] == "INDEF"
        assert h["EXPTIME"] > 0
        for amp in "ABCD":
            assert 4.0 <= h[f"READNSE{amp}"] <= 5.5
            assert 1.5 <= h[f"ATODGN{amp}"] <= 2.5
        sky = h["MDRIZSKY"]
        assert isinstance(sky, float) and float(np.float32(sky)) == sky  # float32 value
        assert 0.05 < sky / h["EXPTIME"] < 0.2  # electrons, a plausible ACS/WFC sky
        wcs = WCS(h)
        assert wcs.has_celestial and wcs.wcs.ctype[0] == "RA---TAN"
        assert h["CD1_1"] < 0 < h["CD2_2"]
        assert abs(wcs.proj_plane_pixel_scales()[0].to_value("arcsec") - 0.05) < 1e-9
        centre = wcs.pixel_to_world((SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2)
        assert abs(centre.ra.deg - h["CRVAL1"]) < 1e-9 and abs(centre.dec.deg - h["CRVAL2"]) < 1e-9
        wh = fits.getheader(wht_name(p))
        assert wh["FILENAME"] == wht_name(p).name and "BUNIT" not in wh
        assert WCS(wh).wcs.compare(wcs.wcs)
    assert len({h["EXPSTART"] for h in headers}) == N  # exposures follow each other


def test_median_step_reads_the_headers(stack):
    """medstack's own header reader gets exptime, sky (float32) and read noise from them."""
    inputs = pytest.importorskip("medstack.io.inputs")
    _, _, _, headers = stack
    exptime, sky, readnoise = inputs.scalars_from_header(headers[0])
    assert exptime == headers[0]["EXPTIME"] and sky == headers[0]["MDRIZSKY"]
    assert 4.0 < readnoise < 5.5


def test_weights_zero_at_edges(stack):
    _, _, wht, _ = stack
    for w in wht:
        assert (w[:2, :] == 0).all() and (w[-2:, :] == 0).all()
        assert (w[:, :2] == 0).all() and (w[:, -2:] == 0).all()


def gap_rows(w: np.ndarray) -> set[int]:
    """Rows of the middle half that are empty over the central columns."""
    ny, nx = w.shape
    central = w[:, nx // 3 : 2 * nx // 3]
    return {y for y in range(ny // 4, 3 * ny // 4) if (central[y] == 0).all()}


def test_chip_gap_moves_with_the_dither(stack):
    _, _, wht, _ = stack
    gaps = [gap_rows(w) for w in wht]
    for rows in gaps:
        assert len(rows) >= 2  # a band of zero weight across the middle
        assert max(rows) - min(rows) == len(rows) - 1  # one contiguous band
    assert len({min(rows) for rows in gaps}) >= 3  # it moves from one exposure to the next
    # every row of the gap region is covered by at least one exposure
    assert not set.intersection(*gaps)


def test_weights_exptime_inside(stack):
    _, _, wht, headers = stack
    for w, h in zip(wht, headers, strict=True):
        t = h["EXPTIME"]
        covered = w > 0
        assert 0.6 < covered.mean() < 0.95
        assert w.max() <= 1.1 * t
        full = w >= 0.9 * t
        assert abs(np.median(w[full]) / t - 1) < 0.05
        assert full.sum() > 0.85 * covered.sum()  # most of the covered area: ~ EXPTIME
        partial = covered & (w < 0.9 * t)
        assert partial.sum() > 0  # fractional weights along the edges


def test_science_zero_where_no_weight(stack):
    _, sci, wht, _ = stack
    assert (sci[wht == 0] == 0).all()


def test_sky_subtracted(stack, clean_stack):
    _, sci, wht, headers = stack
    for s, w, h in zip(clean_stack, wht, headers, strict=True):
        good = w > 0
        background = np.median(s[good])
        noise = 1.4826 * np.median(np.abs(s[good] - background))
        assert abs(background) < 0.3 * noise  # sky-subtracted: the background is ~ 0
        sky_rate = h["MDRIZSKY"] / h["EXPTIME"]
        expected = np.sqrt(sky_rate * h["EXPTIME"] + 4.5**2) / h["EXPTIME"]
        assert 0.4 * expected < noise < 1.2 * expected  # Poisson + read noise (correlated)


def outliers(sci: np.ndarray, wht: np.ndarray, exptime: float) -> np.ndarray:
    """Pixels of each image far above the per-pixel median of the stack (all images covering)."""
    everywhere = (wht > 0).all(axis=0)
    med = np.median(sci, axis=0)
    bg = sci[:, everywhere] - med[everywhere]
    sigma_bg = 1.4826 * np.median(np.abs(bg))
    sigma = np.sqrt(sigma_bg**2 + np.maximum(med, 0) / exptime)
    return ((sci - med) > 12 * sigma) & everywhere


def test_cosmic_rays(stack, clean_stack):
    _, sci, wht, headers = stack
    exptime = headers[0]["EXPTIME"]
    hits = outliers(sci, wht, exptime)
    for i in range(N):
        assert hits[i].sum() >= 3  # cosmic rays in every image
    # at a hit of one image, the others are not hit: cosmic rays are not in the sky
    assert (hits.sum(axis=0) > 1).sum() <= 0.1 * hits.any(axis=0).sum()
    # they are where the data with and without cosmic rays differ, and nowhere else
    diff = sci - clean_stack
    assert (diff[hits] > 0).all()
    assert np.abs(diff).max() > 1.0  # a hit brings electrons/s far above the sky noise
    assert outliers(clean_stack, wht, exptime).sum() == 0


def test_cosmic_ray_rate_1024():
    """Several hundred hits per 1024² image of ~500 s, some of them multi-pixel tracks."""
    assert 300 <= synthetic.CR_RATE * 1024**2 * 500 <= 1000
    image = synthetic._cosmic_rays(np.random.default_rng(0), (1024, 1024), 500.0)
    hit = image > 30.0  # electrons: far above the read noise
    assert 500 <= hit.sum() <= 20000
    # tracks: runs of >= 5 hit pixels in a row or a column
    runs = 0
    for a in (hit, hit.T):
        x = a.astype(np.int8)
        run = x.copy()
        for k in range(1, 5):
            run[:, k:] &= x[:, :-k]
        runs += int(run[:, 4:].any(axis=1).sum())
    assert runs >= 10


@pytest.mark.parametrize("kwargs", [
    {"n_images": 0}, {"n_images": 2.5}, {"shape": (16, 200)}, {"shape": (100,)},
    {"prefix": ""}, {"prefix": "a/b"},
])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ParameterError) as err:
        make_stack(tmp_path, **{"n_images": 1, "shape": (32, 32), **kwargs})
    assert isinstance(err.value, ValueError)
    assert not list(tmp_path.iterdir())


def test_main_generation_only(tmp_path, capsys):
    outdir = tmp_path / "out"
    argv = ["--outdir", str(outdir), "--n-images", "2", "--size", "48x64", "--seed", "5"]
    assert demo.main(argv, run_cli=False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("demo: 2 images of 48")
    names = sorted(p.name for p in outdir.iterdir())
    assert names == ["demo01_single_sci.fits", "demo01_single_wht.fits",
                     "demo02_single_sci.fits", "demo02_single_wht.fits"]
    assert fits.getdata(outdir / "demo01_single_sci.fits").shape == (48, 64)


def test_main_runs_the_cli(tmp_path, capsys, monkeypatch):
    """main() hands the stack to medstack.cli.main with -o and --png, then prints one line."""
    cli = pytest.importorskip("medstack.cli")
    seen = []

    def fake_cli(argv):
        seen.append(list(argv))
        return 0

    monkeypatch.setattr(cli, "main", fake_cli)
    outdir = tmp_path / "d"
    assert demo.main(["--outdir", str(outdir), "--n-images", "3", "--size", "40"]) == 0
    (argv,) = seen
    assert argv[:3] == [str(outdir / f"demo{i:02d}_single_sci.fits") for i in (1, 2, 3)]
    assert argv[3:] == ["-o", str(outdir / "demo"), "--png", str(outdir / "demo_med.png")]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1  # the fake command says nothing
    assert re.match(r"demo: 3 images of 40(×|x)40 (→|->) .*d \(generated in [\d.]+ s\)$",
                    out[0])


def test_main_passes_on_cli_failure(tmp_path, capsys, monkeypatch):
    cli = pytest.importorskip("medstack.cli")
    monkeypatch.setattr(cli, "main", lambda argv: 2)
    assert demo.main(["--outdir", str(tmp_path), "--size", "40", "--n-images", "1"]) == 2
    assert capsys.readouterr().out.startswith("demo: 1 image of 40")  # the stack only


def test_main_end_to_end(tmp_path, capsys):
    """The real medstack command on a small demo stack (skipped while the CLI cannot run)."""
    pytest.importorskip("medstack.cli")
    outdir = tmp_path / "e2e"
    status = demo.main(["--outdir", str(outdir), "--n-images", "3", "--size", "64x80"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert (outdir / "demo_med.fits").is_file() and (outdir / "demo_med.png").is_file()
    assert fits.getdata(outdir / "demo_med.fits").shape == (64, 80)
    stack_line, median_line = captured.out.splitlines()
    assert stack_line.startswith("demo: 3 images of 64")
    assert re.fullmatch(rf"medstack: wrote {re.escape(str(outdir / 'demo_med.fits'))} \(minmed "
                        r"of 3 images, 64x80, [\d.]+ s\); quick-look "
                        rf"{re.escape(str(outdir / 'demo_med.png'))} \([\d.]+ s\)", median_line)


@pytest.mark.parametrize("argv", [["--n-images", "0"], ["--size", "10"], ["--size", "ax3"],
                                  ["--seed", "x"]])
def test_main_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        demo.main(argv, run_cli=False)
    assert exc.value.code == 2


def test_main_unwritable_outdir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert demo.main(["--outdir", str(blocker / "sub"), "--size", "32"], run_cli=False) == 2
    err = capsys.readouterr().err
    assert err.startswith("medstack-demo: error:") and len(err.splitlines()) == 1


@pytest.mark.parametrize("size", [256, 1024, 4096])
def test_big_galaxy_fades_out_at_every_size(size):
    """The large spiral (effective radius min(ny, nx) / 14 at most) reaches at least 3
    effective radii and fades to nothing before its stamp's square edge: no sharp square."""
    reff = size / 14.0
    stamp = synthetic._sersic_stamp(np.random.default_rng(1), 1e4, reff, 1.0, 0.7, 0.4,
                               (0.3, 0.6), spiral=True)
    half = stamp.shape[0] // 2
    assert half >= int(3 * reff)
    border = np.concatenate([stamp[0], stamp[-1], stamp[:, 0], stamp[:, -1]])
    assert border.max() < 1e-6 * stamp.max()
    # the fade is smooth: no jump from one pixel to the next along the major axis
    row = stamp[half]
    assert np.abs(np.diff(row[: half // 2])).max() < 0.05 * row.max()
    assert stamp.sum() == pytest.approx(1e4)
