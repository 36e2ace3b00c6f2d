"""The atomic, section-by-section FITS writer."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from astropy.io import fits

from medstack.errors import OutputError
from medstack.io.writer import FitsImageWriter, check_output_path, output_header


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


def test_rows_start_their_write_back_as_they_are_written(tmp_path, monkeypatch):
    from medstack.io import writer

    calls = []
    real = writer._sync_file_range

    def spy(fd, offset, nbytes, flags):
        calls.append((offset, nbytes, flags))
        return real(fd, offset, nbytes, flags) if real is not None else 0

    monkeypatch.setattr(writer, "_sync_file_range", spy)
    monkeypatch.setattr(writer, "WRITEBACK_BYTES", 2 * 2800)  # every two rows' worth
    data = np.arange(7 * 700, dtype=np.float32).reshape(7, 700) * np.float32(0.37)
    path = tmp_path / "out_med.fits"
    with FitsImageWriter(path, data.shape) as w:
        w.write_rows(3, data[3:6])  # 3 rows: a kick
        w.write_rows(0, data[:1])  # 1 row: none yet
        w.write_rows(6, data[6:])  # 2 rows so far: a kick
        w.write_rows(1, data[1:3])  # 2 rows: a kick
        size = w._total
        w.commit()
    assert os.path.getsize(path) == size
    with fits.open(path) as hdul:
        back = hdul[0].data.astype(np.float32)
        assert np.array_equal(back.view(np.uint32), data.view(np.uint32))
    assert calls == [(0, size, 2)] * 3


def test_write_back_not_available(tmp_path, monkeypatch):
    from medstack.io import writer

    assert writer.start_writeback(0, 0, 10) in (True, False)
    monkeypatch.setattr(writer, "_sync_file_range", None)
    assert writer.start_writeback(0, 0, 10) is False
    data = np.linspace(-1, 1, 40, dtype=np.float32).reshape(4, 10)
    with FitsImageWriter(tmp_path / "a_med.fits", data.shape) as w:
        w.write_rows(0, data)
        w.commit()
    assert np.array_equal(fits.getdata(tmp_path / "a_med.fits"), data)


def test_write_back_failing_is_silent(tmp_path, monkeypatch):
    from medstack.io import writer

    calls = []

    def fails(fd, offset, nbytes, flags):
        calls.append(offset)
        return -1  # e.g. ESPIPE, EINVAL: the final fsync does it all

    monkeypatch.setattr(writer, "_sync_file_range", fails)
    monkeypatch.setattr(writer, "WRITEBACK_BYTES", 1)
    data = np.arange(40, dtype=np.float32).reshape(4, 10)
    with FitsImageWriter(tmp_path / "b_med.fits", data.shape) as w:
        w.write_rows(0, data[:2])
        w.write_rows(2, data[2:])
        w.commit()
    assert len(calls) == 1  # tried once, then left to the fsync
    assert np.array_equal(fits.getdata(tmp_path / "b_med.fits"), data)


def test_row_target_writes_and_starts_write_back(tmp_path, monkeypatch):
    from medstack.io import writer

    calls = []
    monkeypatch.setattr(writer, "_sync_file_range",
                        lambda fd, offset, nbytes, flags: calls.append((offset, nbytes)) or 0)
    data = np.arange(20, dtype=np.float32).reshape(4, 5)
    with FitsImageWriter(tmp_path / "c_med.fits", data.shape) as w:
        target = w.target()
        target.write_rows(2, data[2:])
        target.write_rows(0, data[:2])
        target.sync()
        w.commit()
    assert [n for _, n in calls] == [40, 40]
    assert np.array_equal(fits.getdata(tmp_path / "c_med.fits"), data)


def test_every_product_gets_the_same_mode_and_atomic_write(tmp_path):
    """The median, a .cfg file and a PNG are all written through one atomic path: mode 0644
    less the umask (the .cfg used to stay 0600), nothing left behind on failure."""
    import stat

    from medstack.config import write_config
    from medstack.extras.quicklook import save_quicklook
    from medstack.io.writer import atomic_file
    from medstack.params import validate

    mask = os.umask(0o022)
    try:
        cfg = write_config(tmp_path / "p.cfg", validate(), input="a_flt.fits")
        png = save_quicklook(tmp_path / "q.png", np.ones((8, 8), np.float32))
        with FitsImageWriter(tmp_path / "m.fits", (2, 2), np.float32, None) as writer:
            writer.write_rows(0, np.zeros((2, 2), np.float32))
            writer.commit()
        for path in (cfg, png, tmp_path / "m.fits"):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path
        (tmp_path / "keep.txt").write_text("earlier")
        with pytest.raises(RuntimeError), atomic_file(tmp_path / "keep.txt", "a test") as fh:
            fh.write(b"partial")
            raise RuntimeError("stop")
        assert (tmp_path / "keep.txt").read_text() == "earlier"
        with pytest.raises(OutputError, match="missing/x.txt: cannot write a test"):
            with atomic_file(tmp_path / "missing" / "x.txt", "a test"):
                pass
        assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "m.fits", "p.cfg",
                                                              "q.png"]
    finally:
        os.umask(mask)


def test_replacing_an_earlier_product_releases_it_in_the_background(tmp_path, monkeypatch):
    """Renaming over an earlier product only drops its name; its pages are freed when a
    background thread closes the descriptor held on it, and no descriptor is left open. If
    the rename fails, the descriptor is closed at once and the earlier file stays."""
    import threading

    path = tmp_path / "out_med.fits"
    path.write_bytes(b"old" * 1000)
    fds = set(os.listdir("/proc/self/fd"))
    closed: list[int] = []
    real_close = os.close

    def spy(fd):
        if threading.current_thread().name == "medstack-release":
            closed.append(fd)
        real_close(fd)

    monkeypatch.setattr(os, "close", spy)
    with FitsImageWriter(path, (2, 3)) as w:
        w.write_rows(0, np.ones((2, 3), np.float32))
        w.commit()
    for t in threading.enumerate():
        if t.name == "medstack-release":
            t.join(10)
    assert len(closed) == 1
    assert np.array_equal(fits.getdata(path), np.ones((2, 3)))
    assert set(os.listdir("/proc/self/fd")) == fds

    def refuse(src, dst):
        raise OSError(errno.EACCES, "Permission denied")

    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", refuse)
    with FitsImageWriter(path, (2, 3)) as w:
        w.write_rows(0, np.zeros((2, 3), np.float32))
        with pytest.raises(OutputError, match="cannot rename the finished file"):
            w.commit()
    assert path.read_bytes() == before and len(closed) == 1
    assert set(os.listdir("/proc/self/fd")) == fds
