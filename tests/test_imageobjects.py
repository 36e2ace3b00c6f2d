"""createMedian with drizzlepac-like image objects (no drizzlepac needed): what is read from
them, the in-memory hand-back, the errors. The real AstroDrizzle runs are in
test_astrodrizzle.py."""

from __future__ import annotations

import logging
import math
import sys

import numpy as np
import pytest
from astropy.io import fits
from conftest import random_stack, same_bits, write_stack

from medstack import createMedian, median_image
from medstack.errors import InputError, ParameterError, StepAbortedError
from medstack.io.imageobjects import is_image_object, stack_from_objects


class Chip:
    def __init__(self, sky, factor=1.0, rdnoise=4.0):
        self.subtractedSky = sky
        self._conversionFactor = factor
        self._rdnoise = rdnoise


class Exposure:
    def __init__(self, exptime):
        self._exptime = exptime


class ImageObject:
    """The attributes of drizzlepac's imageObject that its median step uses."""

    scienceExt = "SCI"

    def __init__(self, sci, wht, median, *, exptime=100.0, chips=None,
                 units="ELECTRONS", gain=1.0, inmemory=False, memory=None):
        self._filename = sci.replace("_single_sci.fits", "_flt.fits")
        self.outputNames = {"outSingle": sci, "outSWeight": wht, "outMedian": median}
        self._image = {("sci", 1): Exposure(exptime)}
        self._chips = [Chip(50.0)] if chips is None else list(chips)
        self.native_units = units
        self._gain = gain
        self.inmemory = inmemory
        self.virtualOutputs = dict(memory or {})
        self.saved = []

    def returnAllChips(self, extname=None):
        assert extname == "SCI"
        return self._chips

    def getGain(self, exten):
        return self._gain

    def getOutputName(self, name):
        value = self.outputNames[name]
        return self.virtualOutputs[value] if self.inmemory else value

    def saveVirtualOutputs(self, outdict):
        self.saved.append(outdict)
        self.virtualOutputs.update(outdict)


CONFIG = {"_task_name_": "astrodrizzle", "proc_unit": "native", "num_cores": 1,
          "STEP 3: DRIZZLE SEPARATE IMAGES": {"driz_sep_compress": False},
          "STEP 4: CREATE MEDIAN IMAGE": {"median": True, "combine_type": "minmed"}}


@pytest.fixture
def stack(tmp_path):
    sci, wht = random_stack(np.random.default_rng(3), 4, 40, 33, exptime=100.0)
    names = write_stack(tmp_path, sci, wht, exptime=100.0, sky=50.0)
    return tmp_path, names, sci, wht


def _objects(tmp_path, names, **kwargs):
    return [ImageObject(n, n.replace("_sci", "_wht"), str(tmp_path / "final_med.fits"),
                        **kwargs) for n in names]


def test_image_objects_are_recognised_by_attributes(stack):
    tmp_path, names, _, _ = stack
    assert is_image_object(_objects(tmp_path, names)[0])
    assert not is_image_object(names[0])
    import subprocess  # importing medstack (every door) imports no drizzlepac

    code = ("import sys, medstack, medstack.createMedian, medstack.drizzlepac; "
            "print('drizzlepac' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_values_are_read_as_drizzlepac_reads_them(stack):
    tmp_path, names, _, _ = stack
    # sky: the "min over chips" loop compares a converted value with an unconverted one:
    # chips (10, x3), (20, x3), (5, x3): 30, then 20 < 30 -> 60, then 5 < 60 -> 15.
    chips = (Chip(10.0, 3.0, 3.0), Chip(20.0, 3.0, 4.0), Chip(5.0, 3.0, 5.0))
    objs = [ImageObject(n, n.replace("_sci", "_wht"), "final_med.fits", exptime=40.0 + i,
                        chips=chips) for i, n in enumerate(names)]
    got = stack_from_objects(objs)
    assert [img.exptime for img in got.images] == [40.0, 41.0, 42.0, 43.0]
    assert [img.sky for img in got.images] == [15.0] * 4
    assert [img.readnoise for img in got.images] == [math.sqrt((9 + 16 + 25) / 3)] * 4
    assert [img.sci for img in got.images] == names
    assert got.median_name == "final_med.fits" and not got.in_memory
    no_chips = stack_from_objects([ImageObject(names[0], names[0].replace("_sci", "_wht"),
                                               "m.fits", chips=())])
    assert (no_chips.images[0].sky, no_chips.images[0].readnoise) == (0.0, 0.0)


def test_native_units_are_checked_and_threshold_scale_reported(stack, caplog):
    tmp_path, names, _, _ = stack
    objs = _objects(tmp_path, names, units="COUNTS/S", gain=2.0, exptime=10.0)
    assert stack_from_objects(objs).threshold_scale == (2.0 * 10.0) ** 4  # cumulative
    assert stack_from_objects(objs, proc_unit="electrons").threshold_scale == 1.0
    with pytest.raises(InputError, match=r"_flt.fits: unexpected native units 'DN'; with "
                                         r"proc_unit=native the median step needs one of"):
        stack_from_objects(_objects(tmp_path, names, units="DN"))
    config = {**CONFIG, "STEP 4: CREATE MEDIAN IMAGE": {"combine_type": "median",
                                                         "combine_hthresh": 1000.0}}
    createMedian.createMedian(objs, config)
    assert "drizzlepac 3.11.0 would multiply them by 160000 here" in caplog.text


def test_files_give_the_same_median_as_the_names(stack, caplog):
    tmp_path, names, _, _ = stack
    caplog.set_level("INFO", logger="medstack")
    result = createMedian.createMedian(_objects(tmp_path, names), CONFIG)
    assert result.path == tmp_path / "final_med.fits"
    trailer = caplog.text
    assert "inputs of 40x33" not in trailer  # the -v plan line stays out of the trailer
    assert "per-image values" not in trailer
    assert logging.getLogger("medstack.core").level == logging.NOTSET  # set back
    expected = median_image(names, combine_type="minmed", exptime=[100.0] * 4,
                            sky=[50.0] * 4, readnoise=[4.0] * 4)
    assert same_bits(fits.getdata(result.path), expected.data)
    assert "\tcombine_type :\tminmed" in caplog.text and "\tproc_unit :\tnative" in caplog.text
    assert "\tcompress :\tFalse" in caplog.text
    assert "minmed of 4 images on 1 thread(s)" in caplog.text
    assert "reference sky value for image" in caplog.text


def test_in_memory_median_is_handed_back_to_every_object(stack):
    tmp_path, names, sci, wht = stack
    expected = median_image(names, combine_type="minmed")
    for compress in (False, True):
        objs = []
        for i in range(len(names)):
            # names that exist nowhere on disk: the pixels come from memory only
            s_name, w_name = f"mem{i}_single_sci.fits", f"mem{i}_single_wht.fits"
            header = fits.Header([("EXPTIME", 100.0), ("TESTKEY", i)])
            if compress:
                s_hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci[i], header)])
                w_hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(wht[i])])
            else:
                s_hdul = fits.HDUList([fits.PrimaryHDU(sci[i], header)])
                w_hdul = fits.HDUList([fits.PrimaryHDU(wht[i])])
            objs.append(ImageObject(s_name, w_name, "final_med.fits", inmemory=True,
                                    memory={s_name: s_hdul, w_name: w_hdul}))
        config = {**CONFIG, "STEP 3: DRIZZLE SEPARATE IMAGES": {"driz_sep_compress": compress}}
        result = createMedian.createMedian(objs, config)
        assert result.path is None and not (tmp_path / "final_med.fits").exists()
        for obj in objs:
            (saved,) = obj.saved
            hdul = saved["final_med.fits"]
            assert len(hdul) == 1 and isinstance(hdul[0], fits.PrimaryHDU)
            assert same_bits(hdul[0].data, expected.data), compress
            assert hdul[0].header["TESTKEY"] == 0  # the first single's header
            assert hdul[0].header["NCOMBINE"] == 4
            assert obj.getOutputName("outMedian") is hdul  # what blot and driz_cr read


def test_errors_name_the_culprit(stack):
    tmp_path, names, _, _ = stack
    objs = _objects(tmp_path, names)
    objs[2].outputNames["outSWeight"] = str(tmp_path / "gone_single_wht.fits")
    with pytest.raises(InputError, match=r"gone_single_wht.fits: weight file not found"):
        createMedian.createMedian(objs, CONFIG)
    with pytest.raises(ParameterError, match="imgObjList: mixes drizzlepac image objects"):
        createMedian.createMedian([_objects(tmp_path, names)[0], names[1]], CONFIG)
    assert not (tmp_path / "final_med.fits").exists()


def test_abort_leaves_no_earlier_median_and_ends_the_step(stack):
    tmp_path, names, _, _ = stack
    earlier = tmp_path / "final_med.fits"
    earlier.write_bytes(b"earlier")

    class Steps:
        def __init__(self):
            self.calls = []

        def addStep(self, name):
            self.calls.append(("add", name))

        def endStep(self, name, reason=None, delay_msg=False):
            self.calls.append(("end", name, reason))

    steps = Steps()
    config = {**CONFIG, "STEP 4: CREATE MEDIAN IMAGE": {"combine_type": "median",
                                                         "combine_nlow": 2,
                                                         "combine_nhigh": 2}}
    with pytest.raises(StepAbortedError, match="rejects every one of the 4 input images"):
        createMedian.createMedian(_objects(tmp_path, names), config, procSteps=steps)
    assert not earlier.exists()
    assert steps.calls == [("add", "Create Median"), ("end", "Create Median", "aborted")]


def test_install_without_drizzlepac_is_one_clear_error(monkeypatch):
    import medstack.drizzlepac as msdp

    for name in [m for m in sys.modules if m == "drizzlepac" or m.startswith("drizzlepac.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "drizzlepac", None)  # import drizzlepac -> ImportError
    with pytest.raises(ParameterError, match=r"medstack.drizzlepac: drizzlepac is not "
                                             r"installed \(pip install 'medstack\[drizzlepac\]'"):
        msdp.install()
    assert not msdp.is_installed()
