"""The atomic, section-by-section FITS writer."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from astropy.io import fits

from medstack.errors import OutputError
from medstack.writer import FitsImageWriter, check_output_path, output_header


def test_rows_in_any_order_make_a_valid_fits(tmp_path):
    data = np.arange(35, dtype=np.float32).reshape(7, 5) - 3.5
    header = output_header(fits.Header({"OBJECT": "x", "NAXIS": 9, "EXTEND": True}),
                           [("NCOMBINE", 3, "n")], ["made here"])
    path = tmp_path / "out_med.fits"
    with FitsImageWriter(path, data.shape, np.float32, header) as w:
        w.write_rows(4, data[4:])
        w.write_rows(0, data[:4])
        assert not path.exists()
        w.commit()
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert np.array_equal(hdul[0].data, data)
        assert hdul[0].header["OBJECT"] == "x" and hdul[0].header["NCOMBINE"] == 3
        assert "EXTEND" not in hdul[0].header and "made here" in str(hdul[0].header["HISTORY"])
    assert os.path.getsize(path) % 2880 == 0
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_integer_maps(tmp_path, dtype):
    data = np.array([[0, 1, 200], [255, 7, 3]], dtype=dtype)
    if dtype == np.uint16:
        data[0, 2] = 65535
    with FitsImageWriter(tmp_path / "m.fits", data.shape, dtype) as w:
        w.write_rows(0, data)
        w.commit()
    back = fits.getdata(tmp_path / "m.fits")
    assert back.dtype.kind == "u" and np.array_equal(back, data)


def test_abort_keeps_the_old_file(tmp_path):
    path = tmp_path / "out_med.fits"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with FitsImageWriter(path, (2, 2)) as w:
            w.write_rows(0, np.zeros((1, 2)))
            raise RuntimeError("stop")
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]


def test_disk_full_is_an_output_error(tmp_path, monkeypatch):
    def full(fd, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OutputError, match="out_med.fits: no space left on device"):
        FitsImageWriter(tmp_path / "out_med.fits", (10, 10))
    assert list(tmp_path.iterdir()) == []


def test_check_output_path(tmp_path):
    (tmp_path / "in_single_sci.fits").touch()
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(tmp_path / "nope" / "x.fits")
    with pytest.raises(OutputError, match="would overwrite input"):
        check_output_path(tmp_path / "in_single_sci.fits", [str(tmp_path / "in_single_sci.fits")])
    assert check_output_path(tmp_path / "ok.fits") == tmp_path / "ok.fits"
