"""medstack.stcal inside the pipelines: jwst's OutlierDetectionStep and romancal's own tests.

jwst 3.0.0's ``OutlierDetectionStep`` runs offline (no CRDS: ``STPIPE_DISABLE_CRDS_STEPPARS``)
on synthetic NIRCam-like images with a gwcs, in memory and on disk, once as shipped and once
after ``medstack.stcal.install()``: every model's DQ must be identical. romancal 1.1.0's
outlier-detection tests, shipped inside the installed package, run with ``install()`` in force.

These tests need stcal, jwst and romancal (``pip install ".[pipelines]"``, which ``make test``
installs); they skip without them, except where ``MEDSTACK_REQUIRE_PIPELINES=1`` (CI) makes
that an error.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("STPIPE_DISABLE_CRDS_STEPPARS", "true")
if os.environ.get("MEDSTACK_REQUIRE_PIPELINES") == "1":
    import jwst  # noqa: F401  (CI: these tests must run, not skip)
    import romancal  # noqa: F401
pytest.importorskip("jwst.outlier_detection")
pytest.importorskip("romancal.outlier_detection")

from astropy import coordinates as coord  # noqa: E402
from astropy import units as u  # noqa: E402
from astropy.modeling import models  # noqa: E402
from gwcs import coordinate_frames as cf  # noqa: E402
from gwcs import wcs as gwcs_wcs  # noqa: E402
from jwst.assign_wcs.util import update_s_region_imaging  # noqa: E402
from jwst.datamodels import ModelLibrary  # noqa: E402
from jwst.outlier_detection import OutlierDetectionStep  # noqa: E402
from stdatamodels.jwst import datamodels  # noqa: E402

import medstack.stcal as ms  # noqa: E402

#: NIRCam short-wave pixels, degrees.
PIXEL_DEG = 0.031 / 3600
OUTLIER = datamodels.dqflags.pixel["OUTLIER"]


def _gwcs(shape, ra, dec, roll_deg):
    ny, nx = shape
    rot = np.deg2rad(roll_deg)
    matrix = PIXEL_DEG * np.array([[-np.cos(rot), np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    transform = (models.Shift(-(nx - 1) / 2) & models.Shift(-(ny - 1) / 2)
                 | models.AffineTransformation2D(matrix=matrix)
                 | models.Pix2Sky_TAN() | models.RotateNative2Celestial(ra, dec, 180))
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world", unit=(u.deg, u.deg))
    wcs = gwcs_wcs.WCS([(detector, transform), (sky, None)])
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    return wcs


@functools.lru_cache(maxsize=4)
def _templates(n, shape, dither_pixels, seed=1):
    """``n`` dithered NIRCam-like cal images: noise about 1, 1 % cosmic rays, some NaN (made
    once per test session: each step run gets copies)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        m = datamodels.ImageModel(shape)
        m.meta.telescope = "JWST"
        m.meta.exposure.type = "NRC_IMAGE"
        m.meta.instrument.name, m.meta.instrument.detector = "NIRCAM", "NRCA1"
        m.meta.instrument.channel, m.meta.instrument.filter = "SHORT", "F200W"
        m.meta.instrument.pupil = "CLEAR"
        m.meta.observation.date, m.meta.observation.time = "2024-01-01", "00:00:00"
        m.meta.observation.program_number, m.meta.observation.observation_number = "1234", "001"
        m.meta.observation.visit_number, m.meta.observation.visit_group = "001", "01"
        m.meta.observation.sequence_id, m.meta.observation.activity_id = "1", "01"
        m.meta.observation.exposure_number = str(i + 1)
        m.meta.exposure.exposure_time = m.meta.exposure.measurement_time = 100.0
        m.meta.exposure.start_time, m.meta.exposure.end_time = 60000.0 + i, 60000.001 + i
        m.meta.exposure.mid_time = 60000.0005 + i
        m.meta.filename = f"img{i:03d}_cal.fits"
        m.meta.asn.exptype = "science"
        ra = 10.0 + rng.uniform(-dither_pixels, dither_pixels) * PIXEL_DEG
        dec = 20.0 + rng.uniform(-dither_pixels, dither_pixels) * PIXEL_DEG
        info = m.meta.wcsinfo
        info.ctype1, info.ctype2 = "RA---TAN", "DEC--TAN"
        info.ra_ref, info.dec_ref, info.roll_ref = ra, dec, 0.0
        info.v2_ref, info.v3_ref, info.v3yangle, info.vparity = 0.0, 0.0, 0.0, -1
        info.crpix1, info.crpix2 = (shape[1] + 1) / 2, (shape[0] + 1) / 2
        info.crval1, info.crval2 = ra, dec
        info.cdelt1 = info.cdelt2 = PIXEL_DEG
        m.meta.photometry.pixelarea_steradians = np.deg2rad(PIXEL_DEG) ** 2
        m.meta.photometry.pixelarea_arcsecsq = 0.031**2
        m.meta.wcs = _gwcs(shape, ra, dec, 0.0)
        update_s_region_imaging(m)
        data = rng.normal(1.0, 0.05, shape).astype(np.float32)
        hits = rng.random(shape) < 0.01
        data[hits] += rng.uniform(5, 50, hits.sum()).astype(np.float32)
        data[rng.random(shape) < 0.002] = np.nan
        m.data = data
        m.err = np.full(shape, 0.05, np.float32)
        m.var_rnoise = np.full(shape, 0.0025, np.float32)
        m.var_poisson = np.zeros(shape, np.float32)
        m.var_flat = np.zeros(shape, np.float32)
        m.dq = np.zeros(shape, np.uint32)
        m.meta.background.level, m.meta.background.subtracted = 0.0, False
        out.append(m)
    return tuple(out)


def _models(n, shape, dither_pixels=3.0):
    return [m.copy() for m in _templates(n, shape, dither_pixels)]


def _step_dq(tmp_path, n, shape, in_memory, dither_pixels=3.0):
    """Every model's DQ after jwst's OutlierDetectionStep."""
    images = _models(n, shape, dither_pixels=dither_pixels)
    if in_memory:
        library = ModelLibrary(images, on_disk=False)
    else:
        folder = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        for m in images:
            m.save(str(folder / m.meta.filename))
        members = [{"expname": str(folder / m.meta.filename), "exptype": "science"}
                   for m in images]
        asn = {"asn_id": "o001", "asn_pool": "pool",
               "products": [{"name": "product", "members": members}]}
        library = ModelLibrary(asn, on_disk=True, temp_directory=str(folder))
    result = OutlierDetectionStep.call(library, in_memory=in_memory)
    dqs = []
    with result:
        for i in range(len(result)):
            model = result.borrow(i)
            dqs.append(model.dq.copy())
            result.shelve(model, i, modify=False)
    return dqs


@pytest.fixture
def installed_spy(monkeypatch):
    """install() in force, counting medstack's evaluate() calls; uninstalled afterwards."""
    calls = []
    evaluate = ms.MedianComputer.evaluate

    def spy(self):
        calls.append(self.in_memory)
        return evaluate(self)

    monkeypatch.setattr(ms.MedianComputer, "evaluate", spy)
    ms.install()
    yield calls
    ms.uninstall()


@pytest.mark.parametrize("in_memory", [True, False], ids=["in_memory", "on_disk"])
def test_outlier_detection_step_dq_identical(tmp_path, in_memory, installed_spy):
    ms.uninstall()
    expected = _step_dq(tmp_path, 4, (96, 96), in_memory)
    assert sum(int((dq & OUTLIER).astype(bool).sum()) for dq in expected) > 100
    assert installed_spy == []
    ms.install()
    got = _step_dq(tmp_path, 4, (96, 96), in_memory)
    assert installed_spy == [in_memory]
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected):
        assert np.array_equal(ours, theirs)


def test_step_runs_on_disk_where_stcal_raises(tmp_path, installed_spy):
    """More frames than mosaic rows on disk: stcal 1.20.0 raises IndexError; medstack gives the
    DQ of stcal's in-memory run (docs/deviations.md)."""
    ms.uninstall()
    n, shape = 8, (4, 4)  # a mosaic of at most 6 rows
    with pytest.raises(IndexError, match="Too many calls to add_image"):
        _step_dq(tmp_path, n, shape, False, dither_pixels=1.0)
    expected = _step_dq(tmp_path, n, shape, True, dither_pixels=1.0)
    ms.install()
    got = _step_dq(tmp_path, n, shape, False, dither_pixels=1.0)
    assert installed_spy == [False]
    for ours, theirs in zip(got, expected):
        assert np.array_equal(ours, theirs)


_PLUGIN = '''
import medstack.stcal as ms
import romancal.outlier_detection.outlier_detection as od

CALLS = []
_evaluate = ms.MedianComputer.evaluate


def _counting(self):
    CALLS.append(1)
    return _evaluate(self)


ms.MedianComputer.evaluate = _counting
ms.install()


def pytest_sessionfinish(session, exitstatus):
    assert od.MedianComputer is ms.MedianComputer
    print(f"medstack MedianComputer.evaluate calls: {len(CALLS)}")
'''


def test_romancal_outlier_tests_pass_with_install(tmp_path):
    (tmp_path / "medstack_install_plugin.py").write_text(_PLUGIN)
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get(
        "PYTHONPATH", ""))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "medstack_install_plugin", "-s", "--pyargs", "romancal.outlier_detection.tests"],
        cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    calls = [line for line in run.stdout.splitlines() if "evaluate calls:" in line]
    assert calls and int(calls[-1].split()[-1]) > 0, run.stdout[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
