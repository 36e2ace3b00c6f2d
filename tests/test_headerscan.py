"""The quick primary-header scan: the same layout, offsets and values as astropy's, or None."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import random_stack, write_stack

import medstack.io.inputs as inputs
from medstack.io.fitsheader import OutputHeader
from medstack.io.headerscan import card_value, scan_header
from medstack.io.inputs import SCALAR_KEYWORDS, open_input

SYNTHETIC = Path(__file__).parent / "data" / "synthetic"


def astropy_view(path: Path) -> tuple[tuple[int, int], int, fits.Header]:
    with fits.open(path) as hdul:
        header = hdul[0].header
        return (header["NAXIS2"], header["NAXIS1"]), hdul.fileinfo(0)["datLoc"], header.copy()


def unzipped(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name.removesuffix(".gz")
    out.write_bytes(gzip.decompress((SYNTHETIC / name).read_bytes()))
    return out


@pytest.mark.parametrize("name", sorted(p.name for p in SYNTHETIC.glob("*.fits.gz"))[:12])
def test_agrees_with_astropy_on_every_card(tmp_path, name):
    """drizzlepac's own outputs (headers copied from real singles): every valued card."""
    path = unzipped(tmp_path, name)
    shape, offset, header = astropy_view(path)
    keys = [k for k in header if k not in ("COMMENT", "HISTORY", "")]
    keys = [k for k in keys if header.count(k) == 1 and not k.startswith("HIERARCH")]
    scan = scan_header(str(path), keys)
    assert scan is not None
    assert scan.shape == shape and scan.data_offset == offset
    for key in keys:
        got, want = scan.header.get(key), header[key]
        assert type(got) is type(want) and got == want, key


def test_agrees_with_astropy_on_the_real_singles(hrc_data):
    """Real ACS/HRC singles: every valued card, and the same input either way."""
    for sci in hrc_data["sci"]:
        for path in (sci, sci.replace("_single_sci", "_single_wht")):
            shape, offset, header = astropy_view(Path(path))
            keys = [k for k in header if k not in ("COMMENT", "HISTORY", "")
                    and header.count(k) == 1]
            scan = scan_header(path, keys)
            assert scan is not None and scan.shape == shape and scan.data_offset == offset
            for key in keys:
                got, want = scan.header.get(key), header[key]
                assert type(got) is type(want) and got == want, (path, key)


def test_agrees_with_astropy_on_written_values(tmp_path):
    path = tmp_path / "x_single_sci.fits"
    cards = {"EXPTIME": 507.0, "NEGINT": -42, "BIG": 1.5e300, "TINY": -2.5e-30, "FLAG": True,
             "NOFLAG": False, "QUOTE": "it's", "LONGSTR": "A" * 40, "TRAIL": "abc   ",
             "LEAD": "  x", "EMPTY": "", "MDRIZSKY": 57.831527709960938}
    hdu = fits.PrimaryHDU(np.zeros((5, 7), np.float32))
    for key, value in cards.items():
        hdu.header[key] = (value, "a comment / with a slash")
    hdu.header["DEXP"] = 1.0
    hdu.writeto(path)
    raw = path.read_bytes()
    at = raw.find(b"DEXP    =")
    path.write_bytes(raw[:at] + b"DEXP    =               1.25D3".ljust(80) + raw[at + 80:])
    shape, offset, header = astropy_view(path)
    scan = scan_header(str(path), [*cards, "DEXP"])
    assert scan.shape == (5, 7) == shape and scan.data_offset == offset
    for key in [*cards, "DEXP"]:
        assert scan.header.get(key) == header[key] and type(scan.header.get(key)) is type(
            header[key]), key
    assert scan.header.get("DEXP") == 1250.0
    assert scan.header.get("ABSENT", "d") == "d" and "EXPTIME" in scan.header


def write_raw(path: Path, cards: list[str], data: bytes = b"\0" * 2880) -> Path:
    text = "".join(c.ljust(80) for c in [*cards, "END"])
    text = text.ljust(-(-len(text) // 2880) * 2880)
    path.write_bytes(text.encode("latin-1") + data)
    return path


PLAIN = ["SIMPLE  =                    T", "BITPIX  =                  -32",
         "NAXIS   =                    2", "NAXIS1  =                    4",
         "NAXIS2  =                    3"]


@pytest.mark.parametrize("change", [
    "naxis3", "duplicate", "lower", "continue", "no-end", "end-text", "non-ascii", "not-simple",
])
def test_anything_unusual_is_left_to_astropy(tmp_path, change):
    cards = [*PLAIN, "EXPTIME =                 10.0"]
    if change == "naxis3":
        cards[2] = "NAXIS   =                    3"
        cards.insert(5, "NAXIS3  =                    1")
    elif change == "duplicate":
        cards.append("EXPTIME =                 20.0")
    elif change == "lower":
        cards[-1] = "exptime =                 10.0"
    elif change == "continue":
        cards[-1] = "DETECTOR= 'WF&'"
        cards.append("CONTINUE  'C'")
    elif change == "not-simple":
        cards[0] = "SIMPLE  =                    F"
    elif change == "non-ascii":
        cards.append("COMMENT caf\xe9")
    path = tmp_path / "odd.fits"
    write_raw(path, cards)
    if change == "no-end":
        raw = path.read_bytes()
        path.write_bytes(raw.replace(b"END" + b" " * 77, b" " * 80))
    elif change == "end-text":
        raw = path.read_bytes()
        path.write_bytes(raw.replace(b"END" + b" " * 77, b"END     junk".ljust(80)))
    assert scan_header(str(path), ["EXPTIME", "DETECTOR"]) is None


def test_data_in_an_extension_is_left_to_astropy(tmp_path):
    path = tmp_path / "ext_single_sci.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 4), np.float32))]).writeto(path)
    assert scan_header(str(path)) is None


def test_image_extensions_and_their_offsets_as_astropy_reads_them(tmp_path):
    """An image in an extension after the primary's data (and a table's): the same data
    offset and cards as astropy's; any extension but an image is left to astropy."""
    path = tmp_path / "ext.fits"
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.arange(5.0))])
    fits.HDUList([fits.PrimaryHDU(np.zeros((3, 5), np.int16)), table,
                  fits.ImageHDU(np.ones((4, 6), np.float32), name="SCI")]).writeto(path)
    with fits.open(path) as hdul:
        offset, header = hdul.fileinfo(2)["datLoc"], hdul[2].header
    scan = scan_header(str(path), ["EXTNAME"], hdu=2)
    assert scan is not None and scan.shape == (4, 6) and scan.data_offset == offset
    assert scan.header["EXTNAME"] == "SCI" and len(scan.cards) == len(header)
    assert scan_header(str(path), hdu=1) is None  # a table
    assert scan_header(str(path), hdu=3) is None  # no such HDU
    assert scan_header(str(path)).shape == (3, 5)


@pytest.mark.parametrize("card", ["EXPTIME = 1.0.0", "DETECTOR= 'WFC     / no closing quote"])
def test_a_malformed_card_raises_astropys_error_when_read(card):
    card = card.ljust(80)
    with pytest.raises(fits.VerifyError):
        fits.Card.fromstring(card).value  # noqa: B018 - what astropy does
    with pytest.raises(fits.VerifyError):
        card_value(card)


def test_open_input_is_the_same_either_way(tmp_path, monkeypatch):
    sci, wht = random_stack(np.random.default_rng(3), 2, 9, 11)
    scis = write_stack(tmp_path, sci, wht, exptime=321.5, sky=12.25, readnoise=(3.5, 4.5))
    quick = open_input(str(scis[1]))
    assert quick.sci_offset is not None and quick.wht_offset is not None
    monkeypatch.setattr(inputs, "scan_header", lambda *a, **k: None)
    slow = open_input(str(scis[1]))
    assert quick == slow
    assert (quick.sci_offset, quick.wht_offset) == (slow.sci_offset, slow.wht_offset)
    assert (quick.exptime, quick.sky, quick.readnoise) == (slow.exptime, slow.sky, slow.readnoise)


def test_the_scalar_cards_are_the_ones_read():
    read: list[str] = []

    class Spy(fits.Header):
        def get(self, key, default=None):
            read.append(key)
            return super().get(key, default)

    inputs.scalars_from_header(Spy({"EXPTIME": 1.0, "MDRIZSKY": 2.0, "CCDAMP": "ABCD"}))
    inputs.scalars_from_header(Spy({"EXPTIME": 1.0}))
    assert set(read) <= set(SCALAR_KEYWORDS)


def header_cards(path: str) -> list[str] | None:
    """Every raw card of the primary header, where :func:`scan_header` reads it."""
    scan = scan_header(path)
    return None if scan is None else list(scan.cards)


def _astropy_images(path: Path) -> list[str]:
    """The 80-character cards astropy reads from the primary header, as they lie in the file
    (astropy's own parse: its card count, the offset of its data)."""
    with fits.open(path) as hdul:
        count, start = len(hdul[0].header), hdul.fileinfo(0)["datLoc"]
    text = path.read_bytes()[:start].decode("ascii")
    return [text[i:i + 80] for i in range(0, 80 * count, 80)]


@pytest.mark.parametrize("name", sorted(p.name for p in SYNTHETIC.glob("*.fits.gz"))[:6])
def test_header_cards_are_astropys_cards(tmp_path, name):
    path = unzipped(tmp_path, name)
    cards = header_cards(str(path))
    assert cards and cards == _astropy_images(path)
    assert all(len(card) == 80 for card in cards)


def test_header_cards_of_the_real_singles(hrc_data):
    for sci in hrc_data["sci"]:
        cards = header_cards(sci)
        assert cards is not None and len(cards) > 100 and cards == _astropy_images(Path(sci))


@pytest.mark.parametrize("change", [
    "continue", "no-end", "end-text", "end-equals", "non-ascii", "not-simple", "gzip",
])
def test_templates_leave_anything_unusual_to_astropy(tmp_path, change):
    cards = [*PLAIN, "EXPTIME =                 10.0", "COMMENT   plain"]
    if change == "continue":
        cards += ["LONGSTR = 'abc&'", "CONTINUE  'def'"]
    elif change == "not-simple":
        cards[0] = "SIMPLE  =                    F"
    elif change == "non-ascii":
        cards.append("COMMENT caf\xe9")
    path = write_raw(tmp_path / "odd.fits", cards)
    scanned = header_cards(str(path))
    assert scanned is not None or change in ("non-ascii", "not-simple")
    if change == "continue":  # read, but not copied: astropy reads and writes long strings
        assert scanned[-1].startswith("CONTINUE") and OutputHeader.from_cards(scanned) is None
        return
    raw = path.read_bytes()
    end = b"END" + b" " * 77
    if change == "no-end":
        path.write_bytes(raw.replace(end, b" " * 80))
    elif change == "end-text":
        path.write_bytes(raw.replace(end, b"END     junk".ljust(80)))
    elif change == "end-equals":  # astropy: the end of the header, with a warning
        path.write_bytes(raw.replace(end, b"END= 1".ljust(80)))
        assert scan_header(str(path)) is None
    elif change == "gzip":
        path.write_bytes(gzip.compress(raw))
    assert header_cards(str(path)) is None


def test_header_cards_stop_at_the_end_card(tmp_path):
    path = write_raw(tmp_path / "x.fits", [*PLAIN, "OBJECT  = 'x'", "", "COMMENT   last"])
    raw = path.read_bytes()
    at = raw.index(b"END" + b" " * 77) + 80  # cards after END in the same block are not read
    path.write_bytes(raw[:at] + b"AFTER   =                    1".ljust(80) + raw[at + 80:])
    cards = header_cards(str(path))
    assert cards == [c.ljust(80) for c in [*PLAIN, "OBJECT  = 'x'", "", "COMMENT   last"]]
    assert cards == _astropy_images(path)
