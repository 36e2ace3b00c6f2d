"""The atomic, section-by-section FITS writer, and the output header: the first input's cards
copied as they are where they are plain, else as astropy writes them; the same values as the
header astropy builds."""

from __future__ import annotations

import errno
import os
import warnings
from contextlib import contextmanager, nullcontext

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

import medstack.core.products as products
from medstack import median_image
from medstack.cli import main
from medstack.errors import OutputError
from medstack.extras.demo import make_stack
from medstack.io.fitsheader import STRUCTURAL, OutputHeader, copyable, format_card
from medstack.io.writer import FitsImageWriter, check_output_path


def test_rows_in_any_order_make_a_valid_fits(tmp_path):
    data = np.arange(35, dtype=np.float32).reshape(7, 5) - 3.5
    header = OutputHeader.from_astropy(fits.Header({"OBJECT": "x", "NAXIS": 9, "EXTEND": True})
                                       ).updated([("NCOMBINE", 3, "n")], ["made here"])
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
    from medstack.io import writeback, writer

    calls = []
    real = writeback._sync_file_range

    def spy(fd, offset, nbytes, flags):
        calls.append((offset, nbytes, flags))
        return real(fd, offset, nbytes, flags) if real is not None else 0

    monkeypatch.setattr(writeback, "_sync_file_range", spy)
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
    from medstack.io import writeback

    assert writeback.start_writeback(0, 0, 10) in (True, False)
    monkeypatch.setattr(writeback, "_sync_file_range", None)
    assert writeback.start_writeback(0, 0, 10) is False
    data = np.linspace(-1, 1, 40, dtype=np.float32).reshape(4, 10)
    with FitsImageWriter(tmp_path / "a_med.fits", data.shape) as w:
        w.write_rows(0, data)
        w.commit()
    assert np.array_equal(fits.getdata(tmp_path / "a_med.fits"), data)


def test_write_back_failing_is_silent(tmp_path, monkeypatch):
    from medstack.io import writeback, writer

    calls = []

    def fails(fd, offset, nbytes, flags):
        calls.append(offset)
        return -1  # e.g. ESPIPE, EINVAL: the final fsync does it all

    monkeypatch.setattr(writeback, "_sync_file_range", fails)
    monkeypatch.setattr(writer, "WRITEBACK_BYTES", 1)
    data = np.arange(40, dtype=np.float32).reshape(4, 10)
    with FitsImageWriter(tmp_path / "b_med.fits", data.shape) as w:
        w.write_rows(0, data[:2])
        w.write_rows(2, data[2:])
        w.commit()
    assert len(calls) == 1  # tried once, then left to the fsync
    assert np.array_equal(fits.getdata(tmp_path / "b_med.fits"), data)


def test_row_target_writes_and_starts_write_back(tmp_path, monkeypatch):
    from medstack.io import writeback

    calls = []
    monkeypatch.setattr(writeback, "_sync_file_range",
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
        with pytest.raises(OutputError, match="missing/x.txt: output directory .*missing does not exist"):
            with atomic_file(tmp_path / "missing" / "x.txt", "a test"):
                pass
        assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "m.fits", "p.cfg",
                                                              "q.png"]
    finally:
        os.umask(mask)


def test_replacing_an_earlier_product_holds_nothing_open(tmp_path, monkeypatch):
    """Renaming over an earlier product leaves no descriptor open and no thread behind; if
    the rename fails, the earlier file stays as it was and the temporary file goes."""
    import threading

    path = tmp_path / "out_med.fits"
    path.write_bytes(b"old" * 1000)
    fds = set(os.listdir("/proc/self/fd"))
    threads = set(threading.enumerate())
    with FitsImageWriter(path, (2, 3)) as w:
        w.write_rows(0, np.ones((2, 3), np.float32))
        w.commit()
    assert np.array_equal(fits.getdata(path), np.ones((2, 3)))
    assert set(os.listdir("/proc/self/fd")) == fds and set(threading.enumerate()) == threads

    def refuse(src, dst):
        raise OSError(errno.EACCES, "Permission denied")

    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", refuse)
    with FitsImageWriter(path, (2, 3)) as w:
        w.write_rows(0, np.zeros((2, 3), np.float32))
        with pytest.raises(OutputError, match="cannot rename the finished file"):
            w.commit()
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
    assert set(os.listdir("/proc/self/fd")) == fds


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_products_get_0644_less_the_umask_without_touching_it(tmp_path, monkeypatch, umask):
    """The mode comes from creating the file (the kernel applies the umask), never from
    setting the process's umask, which other threads creating files would race with."""
    import stat

    from medstack.io.writer import atomic_file

    old = os.umask(umask)
    try:
        def no_umask(mask):
            raise AssertionError("the process umask was changed")

        monkeypatch.setattr(os, "umask", no_umask)
        with FitsImageWriter(tmp_path / "m.fits", (2, 2)) as writer:
            writer.write_rows(0, np.zeros((2, 2), np.float32))
            writer.commit()
        with atomic_file(tmp_path / "p.cfg", "a test") as fh:
            fh.write(b"x = 1\n")
        monkeypatch.undo()
    finally:
        os.umask(old)
    for name in ("m.fits", "p.cfg"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644 & ~umask, name


# --- The output header: the first input's cards, plus medstack's, values as astropy's -------


_VALUES = [True, False, np.bool_(True), 0, 1, -1, 7, 2**31, 2**63 + 5, -(2**40), 10**19,
           10**25, np.int64(3), 0.0, -0.0, 1.0, 0.1, 0.7, 2.5, 3.0, 1e-10, 1.0e30, 1e16, 1e15,
           123456789.123, 57.831527709960938, -1.2345678901234567e-100, 5e-324,
           1.7976931348623157e308, np.float32(2.5), "", "a", "minmed", "12345678",
           "123456789", " lead", "trail  ", "4 3", "None", "x" * 60, "x" * 68, "it's", "''"]
_COMMENTS = [None, "", "c", "number of images combined", "x" * 80, "a / b", "it's"]


def test_format_card_reads_back_as_the_same_value_in_astropy():
    for keyword in ("A", "NCOMBINE", "MEDSTACK", "DATE-OBS", "X_1"):
        for value in _VALUES:
            for comment in _COMMENTS:
                image = format_card(keyword, value, comment)
                assert len(image) == 80
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # nothing for astropy to fix
                    card = fits.Card.fromstring(image)
                    card.verify("exception")
                    want = bool(value) if isinstance(value, np.bool_) else (
                        value.rstrip() if isinstance(value, str) else value)
                    assert card.keyword == keyword and card.value == want, (value, image)
                    back = fits.Card.fromstring(str(fits.Card(keyword, want))).value
                    assert type(card.value) is type(back), value  # as astropy's card reads
                    assert (comment or "").startswith(card.comment)
                    assert card.comment == (comment or "") or len(image.rstrip()) == 80


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "x" * 69, None, "caf\u00e9",
                                   1 + 2j, b"bytes"])
def test_format_card_refuses_what_one_card_cannot_hold(value):
    with pytest.raises(ValueError, match="KEY"):
        format_card("KEY", value, "c")
    for keyword in ("lower", "HIERARCH", "CONTINUE", "TOOLONGKEY", "A B", "", "HISTORY"):
        with pytest.raises(ValueError):
            format_card(keyword, 1, "c")
    with pytest.raises(ValueError, match="comment"):
        format_card("KEY", 1, "caf\u00e9")


def _c(text: str) -> str:
    return text.ljust(80)


#: Card images of an input header, each copied as it is (True), or left to astropy (False).
_TEMPLATE_CARDS = [
    (_c("OBJECT  = 'NGC 104 '           / target name"), True),
    (_c("QUOTED  = 'it''s ''quoted'''   / quotes doubled"), True),
    (_c("ODD     = 'x''/y   '"), True),
    (_c("TINY    =                1E-10 / tiny"), True),
    (_c("HUGE    =              1.0E+30"), True),
    (_c("NEGZERO =                 -0.0"), True),
    (_c("DEXP    =              1.25D+3 / D exponent"), True),
    (_c("BIGINT  = 12345678901234567890 / above 2**63"), True),
    (_c("FLAG    =                    T"), True),
    (_c("DATE-OBS= '2004-02-28'         / with a colon: in the comment"), True),
    (_c("TIME-OBS= '12:34:56'"), True),
    (_c("DP1     = 'AXIS.1: 1'          / record-valued"), True),
    (_c("COMMENT   a comment card"), True),
    (_c("HISTORY   a history card"), True),
    (_c("          / a blank-keyword card"), True),
    (_c(""), True),
    (_c("CPLX    = (1.5, -2)"), False),
    (_c("UNDEF   =                      / no value"), False),
    (_c("LOWEXP  =              1.0e-10 / astropy fixes this"), False),
    (_c("lowkey  =                    1"), False),
    (_c("EQ     =                     5 / = not in column 9"), False),
    (_c("BADVAL  = 12 34 / two numbers"), False),
    (_c("NOEQ      12"), False),
    (_c("HIERARCH ESO DET CHIP = 'CCD-1'"), False),
    (_c("CONTINUE  'more'"), False),
    (_c("comment   lower-case commentary"), False),
    (_c("TAB     = 'a\tb'"), False),
]


@pytest.mark.parametrize(("image", "plain"), _TEMPLATE_CARDS)
def test_template_cards_copied_only_where_astropy_has_nothing_to_fix(image, plain):
    assert copyable(image) is plain
    if plain:  # astropy would write the card as it is: reading the copy back is reading it
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert fits.Card.fromstring(image).image == image


def _astropy_output(cards, extra, history):
    """The header astropy builds: the template's cards but the structural ones, then
    ``header[key] = (value, comment)`` and ``add_history``."""
    template = fits.Header.fromstring("".join(cards) + _c("END"))
    header = fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for card in template.cards:
            if card.keyword not in STRUCTURAL:
                header.append(card, end=True)
    for key, value, comment in extra:
        header[key] = (value, comment)
    for line in history:
        header.add_history(line)
    return header


def _values(header):
    """Every card's keyword, value and comment, by keyword in order (blank cards aside)."""
    out = {}
    for card in header.cards:
        if card.keyword or str(card.value).strip():
            out.setdefault(card.keyword, []).append((card.value, card.comment))
    return out


_PLAIN_POOL = [image for image, plain in _TEMPLATE_CARDS if plain] + [
    _c("BUNIT   = 'ELECTRONS/S'        / units of the data"),
    _c("NCOMBINE=                    3 / images in the input"),
    _c("MEDNLOW =                    0 / combine_nlow"),
    _c("MEDCTYPE= 'median  '           / combine_type"),
    _c("EXPTIME =                507.0 / exposure time"),
    _c("SIMPLE  =                    T"),
    _c("NAXIS1  =                   10"),
    _c("HISTORY   a later history card"),
]
_EXTRA_POOL = [("NCOMBINE", 3, "number of images combined"), ("NCOMBINE", 4, "images"),
               ("MEDSTACK", "0.1.0", "medstack version"), ("MEDNLOW", 0, "combine_nlow"),
               ("MEDCTYPE", "minmed", "combine_type"), ("MEDCTYPE", "median", "same"),
               ("MEDLTHR", 1e-10, "combine_lthresh"), ("MEDFILL", -0.0, "fillval"),
               ("MEDNEWMK", True, "median_newmasks"), ("BUNIT", "count", "map unit"),
               ("BUNIT", "", "map unit"), ("MEDMAP", "ngood", "what"),
               ("EXPTIME", 507.0, "exposure time"), ("MEDBIG", 2**40, "")]
_HISTORY_POOL = ["medstack 0.1.0 median of 3 images", "", "h" * 72, "h" * 73, "x" * 150,
                 "with numpy 2.4.0, astropy 8.0.2"]


@settings(max_examples=300, deadline=None)
@given(cards=st.lists(st.sampled_from(_PLAIN_POOL), max_size=14),
       extra=st.lists(st.sampled_from(_EXTRA_POOL), max_size=6),
       history=st.lists(st.sampled_from(_HISTORY_POOL), max_size=4))
def test_output_header_has_astropys_card_values(cards, extra, history):
    """Any mix of plain cards (trailing blanks and commentary, keywords set again, long
    HISTORY lines): every keyword, value and comment of the header astropy would build, in
    the same order; so for the maps' headers."""
    made = OutputHeader.from_cards(cards).updated(extra, history)
    want = _astropy_output(cards, extra, history)
    assert _values(fits.Header.fromstring(made.tobytes().decode())) == _values(want)
    assert _values(made.astropy()) == _values(want)
    for key in ("ngood", "minchosen"):
        got = products._map_header(made, key).astropy()
        assert _values(got) == _values(products._map_header(
            OutputHeader.from_astropy(want), key).astropy())
        assert got["MEDMAP"] == key and "BUNIT" in got


def test_new_cards_go_where_astropy_puts_them():
    cards = [_c("OBJECT  = 'x'"), _c("HISTORY   old"), _c("COMMENT   c"), _c(""), _c(""),
             _c("")]
    made = OutputHeader.from_cards(cards).updated([("NEWKEY", 1, "a"), ("OTHER", 2.5, "b")],
                                                  ["new history"])
    # new cards before the trailing commentary, the new HISTORY after the old one (the
    # trailing blank cards stay: astropy would use them up)
    assert [image[:8].rstrip() for image in made.images if image.strip()] == [
        "OBJECT", "NEWKEY", "OTHER", "HISTORY", "HISTORY", "COMMENT"]
    assert OutputHeader.from_cards([_c("lowkey  =                    1")]) is None


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.uint8])
def test_writer_header_from_astropy_or_raw_cards(tmp_path, dtype):
    """A writer given an astropy Header writes its cards as astropy does; one given the
    same cards raw writes the same file."""
    cards = [image for image, ok in _TEMPLATE_CARDS if ok]
    made = OutputHeader.from_cards(cards).updated([("NCOMBINE", 3, "n")], ["made here"])
    files = []
    for i, header in enumerate((made, made.astropy(), None)):
        path = tmp_path / f"{i}.fits"
        with FitsImageWriter(path, (7, 5), dtype, header) as w:
            w.write_rows(0, np.ones((7, 5), dtype))
            w.commit()
        with fits.open(path) as hdul:
            hdul.verify("exception")
            assert hdul[0].header["BITPIX"] == {np.float32: -32, np.uint16: 16,
                                                np.uint8: 8}[dtype]
            assert np.array_equal(hdul[0].data, np.ones((7, 5)))
        files.append(path.read_bytes())
    assert files[0] == files[1] and len(files[2]) % 2880 == 0


class _Paths:
    """Which way each run took its output header's template: the first input's cards as they
    lie in the file (True) or astropy's; :meth:`astropy_only` runs with astropy's."""

    def __init__(self, monkeypatch):
        self.raw: list[bool] = []
        self._monkeypatch = monkeypatch
        real = OutputHeader.from_cards.__func__

        def spy(cls, images):
            header = real(cls, images)
            self.raw.append(header is not None)
            return header

        monkeypatch.setattr(OutputHeader, "from_cards", classmethod(spy))

    @contextmanager
    def astropy_only(self):
        with self._monkeypatch.context() as patch:
            patch.setattr(OutputHeader, "from_cards",
                          classmethod(lambda cls, images: self.raw.append(False)))
            yield


@pytest.fixture()
def paths(monkeypatch):
    return _Paths(monkeypatch)


_FLAG_SETS = [
    ["--save-maps"],
    ["--combine-type", "median", "--combine-nhigh", "1", "--save-maps"],
    ["--combine-type", "mean", "--combine-lthresh", "1e-10", "--combine-hthresh", "1e30",
     "--fillval", "-0.0", "--no-median-newmasks"],
    ["--combine-nsigma", "4 3", "--combine-grow", "1", "--save-maps"],
]


def _cli_both_ways(inputs, tmp_path, paths, flags):
    """The command's output files made with the raw header and with astropy's: the bytes."""
    outputs = {}
    for way in ("raw", "astropy"):
        root = tmp_path / way / "out"
        root.parent.mkdir()
        with paths.astropy_only() if way == "astropy" else nullcontext():
            assert main([*map(str, inputs), "-o", str(root), "-q", *flags]) == 0
        outputs[way] = {p.name: p.read_bytes() for p in sorted(root.parent.glob("*.fits"))}
    assert outputs["raw"] and outputs["raw"] == outputs["astropy"]
    return outputs["raw"]


@pytest.mark.parametrize("flags", _FLAG_SETS, ids=lambda f: " ".join(f) or "default")
def test_demo_stack_outputs_are_the_same_bytes(tmp_path, paths, flags):
    scis = make_stack(tmp_path / "stack", n_images=3, shape=(64, 64))
    files = _cli_both_ways(scis, tmp_path, paths, flags)
    assert paths.raw == [True, False]  # the raw header was built, and made the same files
    assert len(files) == (3 if flags[0] == "--save-maps" or "--combine-grow" in flags else
                          2 if "--save-maps" in flags else 1)


@pytest.mark.parametrize("flags", _FLAG_SETS[:2], ids=lambda f: " ".join(f))
def test_real_singles_outputs_are_the_same_bytes(hrc_data, tmp_path, paths, flags):
    _cli_both_ways(hrc_data["sci"], tmp_path, paths, flags)
    assert paths.raw == [True, False]


def _single_with_cards(path, cards, data):
    """A plain single whose primary header holds the structural cards and then ``cards``
    (raw images, as given)."""
    head = fits.PrimaryHDU(np.asarray(data, ">f4")).header.tostring(endcard=False,
                                                                   padding=False)
    text = head + "".join(cards) + _c("END")
    text += " " * (-len(text) % 2880)
    raw = np.asarray(data, ">f4").tobytes()
    path.write_bytes(text.encode("ascii") + raw + b"\0" * (-len(raw) % 2880))


_LONG = str(fits.Card("LONGSTR", "a long string value " * 5, "long strings use CONTINUE"))
_HIER = str(fits.Card("HIERARCH ESO DET CHIP NAME", "CCD-1", "a HIERARCH card"))
_TRICKY = {
    "plain": ([_c("OBJECT  = 'NGC 104 '           / target")], True),
    "quotes in strings": ([str(fits.Card("QUOTED", "it's 'quoted'", "quotes")),
                           _c("ODD     = 'x''/y   '")], True),
    "numbers": ([_c("TINY    =                1E-10"), _c("HUGE    =              1.0E+30"),
                 _c("NEGZERO =                 -0.0"), _c("DEXP    =              1.25D+3"),
                 _c("BIGINT  = 12345678901234567890"), _c("NEGBIG  = -9223372036854775809")],
                True),
    "blank cards, trailing too": ([_c("A       =                    1"), _c(""),
                                   _c("B       =                    2"), _c(""), _c(""), _c("")],
                                  True),
    "commentary at the end": ([_c("A       =                    1"), _c("COMMENT   c1"),
                               _c("HISTORY   h1"), _c("          / section"),
                               _c("HISTORY   h2"), _c("")], True),
    "only blank cards": ([_c("")] * 5, True),
    "provenance keywords there already": ([_c("NCOMBINE=                    3 / old"),
                                          _c("BUNIT   = 'count   '           / map unit"),
                                          _c("MEDMAP  = 'ngood   '"),
                                          _c("BUNIT   = 'second'")], True),
    "the same combine type": ([_c("MEDCTYPE= 'minmed  '           / combine_type")], True),
    "long string": ([_LONG], False),
    "HIERARCH": ([_HIER], False),
    "lower-case keyword": ([_c("lowkey  =                    1 / fixed by astropy")], False),
    "lower-case exponent": ([_c("LOWEXP  =              1.0e-10 / fixed by astropy")], False),
    "misplaced equal sign": ([_c("EQ     =                     5")], False),
    "record-valued": ([_c("DP1     = 'AXIS.1: 1'")], True),
    "unparsable": ([_c("BADVAL  = 12 34 / two numbers")], False),
}


@pytest.mark.parametrize("case", list(_TRICKY))
def test_tricky_headers_same_bytes_raw_only_where_plain(tmp_path, paths, case, caplog):
    """Synthetic first inputs with tricky cards: the raw path takes the plain ones and
    declines the others (then astropy reads the header, with its fixes and warnings); the
    files are the same either way, and the header's values are astropy's."""
    cards, plain = _TRICKY[case]
    rng = np.random.default_rng(3)
    scis = []
    for i in range(3):
        sci = tmp_path / f"t{i}_single_sci.fits"
        _single_with_cards(sci, cards if i == 0 else [], rng.normal(10, 1, (9, 7)))
        fits.PrimaryHDU(np.full((9, 7), 2.0, ">f4")).writeto(
            tmp_path / f"t{i}_single_wht.fits")
        scis.append(str(sci))
    values = {"exptime": [100.0] * 3, "sky": [1.0] * 3, "readnoise": [4.0] * 3}
    outputs, logs = {}, {}
    for way in ("raw", "astropy"):
        caplog.clear()
        with paths.astropy_only() if way == "astropy" else nullcontext():
            result = median_image(scis, tmp_path / way, save_maps=True, **values)
        outputs[way] = [p.read_bytes() for p in (result.path, *result.map_paths)]
        logs[way] = [r.getMessage() for r in caplog.records if r.levelno >= 30]
    assert outputs["raw"] == outputs["astropy"] and len(outputs["raw"]) == 3
    assert logs["raw"] == logs["astropy"]
    assert paths.raw == ([True, False] if plain else [False, False])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        given, written = fits.getheader(scis[0]), fits.getheader(result.path)
        for card in given.cards:  # the input's cards as astropy reads them, as it fixes them
            try:
                value = card.value
            except fits.VerifyError:
                continue  # astropy cannot read it: left out, with a warning
            if card.keyword not in {*STRUCTURAL, "", "COMMENT", "HISTORY", "MEDCTYPE",
                                    "NCOMBINE", "BUNIT", "MEDMAP"}:
                assert written[card.keyword] == value, card.keyword


def test_result_header_is_the_astropy_header_of_the_written_cards(tmp_path, paths):
    scis = make_stack(tmp_path / "stack", n_images=3, shape=(48, 40))
    pending = []
    result = median_image(scis, tmp_path / "raw", save_maps=True, before_commit=pending.append)
    assert paths.raw == [True] and isinstance(result.__dict__["_header"], OutputHeader)
    assert pending[0].header is result.header  # one Header for every holder
    with paths.astropy_only():
        via_astropy = median_image(scis, tmp_path / "astropy", save_maps=True)
    header = result.header
    assert type(header) is fits.Header and type(via_astropy.header) is fits.Header
    assert header is result.header  # made once, on first access
    assert header == via_astropy.header and len(header) == len(via_astropy.header)
    assert list(header.items()) == list(via_astropy.header.items())
    assert [c.comment for c in header.cards] == [c.comment for c in via_astropy.header.cards]
    for key, value in via_astropy.header.items():
        if key not in ("COMMENT", "HISTORY", ""):
            assert type(header[key]) is type(value), key
    written = fits.getheader(result.path)
    for key in ("NCOMBINE", "MEDCTYPE", "MEDSTACK", "EXPTIME"):
        assert header[key] == written[key]
    # every keyword, value and comment of the header astropy itself would build
    cards, history = products.provenance(result.plan)
    template = fits.getheader(scis[0]).tostring(endcard=False, padding=False)
    want = _astropy_output([template[i:i + 80] for i in range(0, len(template), 80)], cards,
                           history)
    on_disk = {k: v for k, v in _values(written).items() if k not in STRUCTURAL}
    assert on_disk == _values(header) == _values(want)
    assert repr(result).startswith("<MedianResult 48x40, minmed, 3 images")


@pytest.mark.parametrize("no_links", [False, True])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_products_are_committed_all_or_nothing(tmp_path, monkeypatch, k, no_links):
    """Three products, two with an earlier file (one of them a symbolic link): an interrupt
    at the k-th rename leaves every earlier file, link included, as it was and no temporary
    file, on a filesystem with hard links or without (the earlier files copied aside)."""
    from medstack.io.outputs import Products

    (tmp_path / "a.txt").write_bytes(b"earlier a")
    (tmp_path / "target.txt").write_bytes(b"earlier b")
    os.symlink("target.txt", tmp_path / "b.txt")
    before = {p.name: (p.is_symlink(), p.read_bytes()) for p in tmp_path.iterdir()}
    real_replace = os.replace
    calls: list[str] = []

    def replace(src, dst):
        calls.append(os.path.basename(dst))
        if len(calls) == k:
            raise KeyboardInterrupt
        real_replace(src, dst)

    if no_links:
        def link(*args, **kwargs):
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", link)
    products = Products(tmp_path / "v")
    for name in ("a.txt", "b.txt", "c.txt"):
        with products.file(tmp_path / name, "a test") as fh:
            fh.write(f"new {name}".encode())
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        products.commit()
    assert not products.committed
    assert {p.name: (p.is_symlink(), p.read_bytes()) for p in tmp_path.iterdir()} == before
    monkeypatch.setattr(os, "replace", real_replace)
    products = Products()
    for name in ("a.txt", "b.txt", "c.txt"):
        with products.file(tmp_path / name, "a test") as fh:
            fh.write(f"new {name}".encode())
    products.commit()
    assert products.committed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "c.txt",
                                                          "target.txt"]
    assert all((tmp_path / n).read_bytes() == f"new {n}".encode() for n in ("a.txt", "b.txt"))
    assert (tmp_path / "target.txt").read_bytes() == b"earlier b"  # the link was replaced


def test_a_product_that_cannot_be_put_back_is_named(tmp_path, monkeypatch):
    """A second interrupt while the first is being undone: the product it stopped from being
    put back is named (its earlier file kept beside it), every other one is put back."""
    from medstack.io.outputs import Products

    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_bytes(f"earlier {name}".encode())
    products = Products()
    for name in ("a.txt", "b.txt", "c.txt"):
        with products.file(tmp_path / name, "a test") as fh:
            fh.write(f"new {name}".encode())
    real_replace = os.replace
    calls: list[str] = []

    def replace(src, dst):
        calls.append(os.path.basename(dst))
        if len(calls) in (3, 4):  # the third rename, then the first product's restore
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        products.commit()
    assert calls == ["a.txt", "b.txt", "c.txt", "a.txt", "b.txt"]
    assert not products.committed and products.not_restored == [tmp_path / "a.txt"]
    assert [(tmp_path / n).read_bytes() for n in ("a.txt", "b.txt", "c.txt")] == [
        b"new a.txt", b"earlier b.txt", b"earlier c.txt"]
    kept = [p for p in tmp_path.iterdir() if p.name.endswith(".old.tmp")]
    assert len(kept) == 1 and kept[0].read_bytes() == b"earlier a.txt"
