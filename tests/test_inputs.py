"""Input discovery, name mapping, header scalars and the row reader."""

from __future__ import annotations

import gzip
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import random_stack, resident_kib, write_stack

from medstack.errors import InputError
from medstack.io.inputs import (
    expand_inputs,
    open_input,
    open_inputs,
    scalars_from_header,
    single_names,
)
from medstack.io.readers import ImageReader


def test_single_and_exposure_names_map():
    assert single_names("d/j8bt06naq_single_sci.fits") == (
        "d/j8bt06naq_single_sci.fits", "d/j8bt06naq_single_wht.fits")
    for suffix in ("flt", "flc", "c0m"):
        assert single_names(f"d/j8bt06naq_{suffix}.fits")[0] == "d/j8bt06naq_single_sci.fits"
    with pytest.raises(InputError, match="notes.txt: not a singly drizzled science file"):
        single_names("notes.txt")


def test_globs_lists_and_duplicates(tmp_path, caplog):
    for name in ("b_single_sci.fits", "a_single_sci.fits"):
        (tmp_path / name).touch()
    listfile = tmp_path / "in.lst"
    listfile.write_text("# inputs\nb_single_sci.fits  extra-column\n\na_single_sci.fits\n")
    assert expand_inputs(str(tmp_path / "*_sci.fits")) == [
        str(tmp_path / "a_single_sci.fits"), str(tmp_path / "b_single_sci.fits")]
    assert expand_inputs("@" + str(listfile)) == [
        str(tmp_path / "b_single_sci.fits"), str(tmp_path / "a_single_sci.fits")]
    same = str(tmp_path / "a_single_sci.fits")
    assert expand_inputs([same, same]) == [same]
    assert "given more than once" in caplog.text
    with pytest.raises(InputError, match="no file matches"):
        expand_inputs(str(tmp_path / "*.nothing"))
    with pytest.raises(InputError, match="missing.lst: cannot read list file"):
        expand_inputs("@" + str(tmp_path / "missing.lst"))


def test_scalars_from_header_rules():
    h = fits.Header({"EXPTIME": 60.0, "MDRIZSKY": 230.52132, "CCDAMP": "C",
                     "READNSEA": 0.0, "READNSEC": 4.71})
    exptime, sky, rn = scalars_from_header(h)
    assert (exptime, sky, rn) == (60.0, 230.5213165283203, 4.71)  # float32 sky, as drizzlepac
    h = fits.Header({"EXPTIME": 10.0, "CCDAMP": "ABCD", "READNSEA": 3.0, "READNSEB": 4.0,
                     "READNSEC": 3.0, "READNSED": 4.0})
    assert scalars_from_header(h)[2] == math.sqrt((9 + 16 + 9 + 16) / 4)
    h = fits.Header({"READNSEA": 3.0, "READNSEB": 0.0, "READNSEC": 5.0})
    assert scalars_from_header(h)[2] == math.sqrt((9 + 25) / 2)
    assert scalars_from_header(fits.Header({"READNSE": 7.0}))[2] == 7.0
    h = fits.Header({"INSTRUME": "WFC3", "DETECTOR": "IR", "EXPTIME": 100.0, "MDRIZSKY": 1.5})
    assert scalars_from_header(h)[1] == 150.0  # IR sky is per second
    assert scalars_from_header(fits.Header()) == (None, None, None)


def test_open_input_extension_one_and_explicit_scalars(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    hdr = fits.Header({"EXPTIME": 5.0})
    fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(data)]).writeto(
        tmp_path / "x_single_sci.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data)]).writeto(tmp_path / "x_single_wht.fits")
    img = open_input(str(tmp_path / "x_single_sci.fits"), sky=3.0)
    assert (img.sci_hdu, img.wht_hdu, img.shape, img.exptime, img.sky) == (1, 1, (3, 4), 5.0, 3.0)
    reader = ImageReader(img.sci, img.sci_hdu)
    assert reader.read(1, 3).tolist() == data[1:3].tolist()
    reader.close()


def test_reader_memmaps_and_handles_gzip_and_integers(tmp_path):
    sci, wht = random_stack(np.random.default_rng(0), 1, 20, 7)
    name = write_stack(tmp_path, sci, wht)[0]
    reader = ImageReader(name, 0)
    assert isinstance(reader._array, np.memmap)
    out = np.empty((5, 7), dtype=np.float32)
    assert reader.read(3, 8, out=out) is out
    assert np.array_equal(out, sci[0, 3:8]) and out.dtype.isnative
    with open(name, "rb") as fin, gzip.open(tmp_path / "z.fits.gz", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    assert np.array_equal(ImageReader(str(tmp_path / "z.fits.gz"), 0).read(0, 20), sci[0])
    fits.PrimaryHDU(np.arange(6, dtype=np.int16).reshape(2, 3)).writeto(tmp_path / "i.fits")
    ints = ImageReader(str(tmp_path / "i.fits"), 0)
    assert ints.integer and ints.read(0, 2).dtype == np.float32


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_mapped_reader_drops_the_pages_it_has_read(tmp_path):
    # float64 data are mapped by ImageReader (RawReader takes only float32): after a read,
    # the file's pages leave the process, so the resident size does not grow with the image
    data = np.random.default_rng(6).normal(size=(256, 1024))  # 8 KiB rows, 2 MiB
    path = tmp_path / "f64_single_sci.fits"
    fits.PrimaryHDU(data).writeto(path)
    reader = ImageReader(str(path), 0)
    try:
        assert not reader.in_memory
        for y0 in range(0, 256, 32):
            rows = reader.read(y0, y0 + 32)
            assert np.array_equal(rows, data[y0:y0 + 32].astype(np.float32))
            assert resident_kib(path) == 0
    finally:
        reader.close()
    gz = tmp_path / "f64.fits.gz"
    with open(path, "rb") as fin, gzip.open(gz, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    assert ImageReader(str(gz), 0).in_memory


def test_open_inputs_checks_per_image_lists(tmp_path):
    sci, wht = random_stack(np.random.default_rng(0), 2, 5, 5)
    names = write_stack(tmp_path, sci, wht)
    images = open_inputs(names, exptime=[None, 7.0])
    assert [im.exptime for im in images] == [100.0, 7.0]
    with pytest.raises(Exception, match="exptime: 1 values given for 2 input images"):
        open_inputs(names, exptime=[1.0])


@pytest.mark.parametrize("ext", [0, 1])
def test_data_offset_and_truncation_of_either_hdu(tmp_path, ext):
    """The truncation check takes the data offset from the HDU itself (cheap), the same as
    the HDUList's fileinfo, for data in the primary HDU or in extension 1."""
    from medstack.io.inputs import _data_offset

    data = np.arange(12 * 16, dtype=np.float32).reshape(12, 16)
    header = fits.Header([(f"KEY{i}", i) for i in range(40)])  # a header of two blocks
    if ext == 0:
        hdul = fits.HDUList([fits.PrimaryHDU(data, header)])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(header=header), fits.ImageHDU(data)])
    sci = tmp_path / "a_single_sci.fits"
    hdul.writeto(sci)
    hdul.writeto(tmp_path / "a_single_wht.fits")
    with fits.open(sci) as opened:
        assert _data_offset(opened, ext) == opened.fileinfo(ext)["datLoc"]
        need = opened.fileinfo(ext)["datLoc"] + data.nbytes
    assert open_input(str(sci)).shape == (12, 16)
    with open(sci, "r+b") as fh:
        fh.truncate(need - 4)
    with pytest.raises(InputError, match=f"truncated FITS file .* needs {need}"):
        open_input(str(sci))


def _compress_stack(names, directory: Path, **kw) -> list[str]:
    """The singles rewritten as drizzlepac's driz_sep_compress does: an empty primary HDU
    (with the header cards) and a CompImageHDU in extension 1."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for sci in names:
        for name in (sci, sci.replace("_sci", "_wht")):
            with fits.open(name) as hdul:
                data, header = hdul[0].data, hdul[0].header
                fits.HDUList([fits.PrimaryHDU(header=fits.Header(
                    [c for c in header.cards if c.keyword not in ("SIMPLE", "BITPIX", "NAXIS",
                                                                  "NAXIS1", "NAXIS2", "EXTEND")])),
                              fits.CompImageHDU(data, **kw)]).writeto(
                    directory / Path(name).name)
        out.append(str(directory / Path(sci).name))
    return out


@pytest.mark.parametrize("compression", ["GZIP_1", "GZIP_2"])
@pytest.mark.parametrize("ctype", ["minmed", "median", "imean", "sum"])
def test_tile_compressed_singles_are_read_right_section_by_section(tmp_path, compression,
                                                                   ctype, monkeypatch):
    """Lossless tile compression: the same bits as the uncompressed stack, read in sections
    of a few rows (astropy's CompImageHDU.section, never the whole image: .data is not used)."""
    from medstack import median_image

    sci, wht = random_stack(np.random.default_rng(5), 4, 24, 11)
    sci[1, 4, 4] = np.nan
    plain = write_stack(tmp_path / "plain", sci, wht)
    packed = _compress_stack(plain, tmp_path / "packed", compression_type=compression,
                             quantize_level=0)
    with fits.open(packed[0]) as hdul:
        assert isinstance(hdul[1], fits.CompImageHDU)
    rows = 3 * 11 * 4 / 2**20  # sections of 3 rows
    expected = median_image(plain, combine_type=ctype, combine_bufsize=rows, save_maps=True,
                            keep_maps=True)
    monkeypatch.setattr(fits.CompImageHDU, "data", property(lambda self: 1 / 0))
    got = median_image(packed, tmp_path / "out", combine_type=ctype, combine_bufsize=rows,
                       save_maps=True, keep_maps=True)
    assert len(got.plan.sections) > 4
    assert np.array_equal(got.data.view(np.uint32), expected.data.view(np.uint32))
    assert np.array_equal(got.ngood, expected.ngood)
    assert got.plan.images[0].exptime == 100.0 and got.plan.images[0].sci_hdu == 1


def test_lossy_tile_compression_reads_what_astropy_decodes(tmp_path):
    """RICE on floats quantizes: the median is that of the decoded values (as drizzlepac
    reads them), not the raw bytes of the compressed table."""
    from medstack import median_image

    sci, wht = random_stack(np.random.default_rng(6), 3, 16, 12)
    plain = write_stack(tmp_path / "plain", sci, wht)
    packed = _compress_stack(plain, tmp_path / "packed", compression_type="RICE_1",
                             quantize_level=0)
    decoded = []
    for name in packed:
        for n in (name, name.replace("_sci", "_wht")):
            with fits.open(n) as hdul:
                decoded.append(np.array(hdul[1].data, dtype=np.float32))
    dsci, dwht = np.array(decoded[0::2]), np.array(decoded[1::2])
    same = median_image(write_stack(tmp_path / "decoded", dsci, dwht), combine_type="median")
    got = median_image(packed, combine_type="median")
    assert np.array_equal(got.data.view(np.uint32), same.data.view(np.uint32))
    assert np.isfinite(got.data).all()


@pytest.mark.parametrize("kind", ["gzip", "bzip2"])
def test_compressed_single_is_streamed_to_a_temporary_file(tmp_path, caplog, kind):
    """A .fits.gz is decompressed once, in small blocks, into a temporary file beside the
    output, which is mapped like any other input (not held whole in memory) and removed at
    once; the log says what it cost."""
    import bz2
    import logging
    import tracemalloc

    from medstack import median_image
    from medstack.io.readers import RawReader, open_reader

    sci, wht = random_stack(np.random.default_rng(8), 3, 1024, 256)  # 1 MiB per image
    plain = write_stack(tmp_path / "plain", sci, wht)
    opener = gzip.open if kind == "gzip" else bz2.open
    names = []
    for name in plain:
        for path in (name, name.replace("_sci", "_wht")):
            with open(path, "rb") as fin, opener(path + ".gz", "wb") as fout:
                shutil.copyfileobj(fin, fout)
        names.append(name + ".gz")
    scratch = tmp_path / "out"
    scratch.mkdir()
    tracemalloc.start()
    try:
        reader = open_reader(names[0], 0, scratch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(reader, RawReader) and reader.path == names[0]
    assert peak < 512 * 1024  # bounded: under half the image, whatever its size
    assert np.array_equal(reader.read(100, 140), sci[0, 100:140])
    assert list(scratch.iterdir()) == []  # already unlinked: nothing left behind, even on a crash
    reader.close()
    expected = median_image(plain, combine_type="minmed")
    with caplog.at_level(logging.INFO, logger="medstack"):
        got = median_image(names, scratch / "v", combine_type="minmed")
    assert np.array_equal(got.data.view(np.uint32), expected.data.view(np.uint32))
    assert f"{names[0]}: compressed; decompressed once into a temporary file in {scratch}" \
        in caplog.text
    assert sorted(p.name for p in scratch.iterdir()) == ["v_med.fits"]


def test_damaged_gzip_single_is_named(tmp_path):
    from medstack.io.readers import open_reader

    sci, wht = random_stack(np.random.default_rng(9), 1, 64, 32)
    name = write_stack(tmp_path, sci, wht)[0]
    data = gzip.compress(Path(name).read_bytes())
    (tmp_path / "bad.fits.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="bad.fits.gz: damaged compressed file"):
        open_reader(str(tmp_path / "bad.fits.gz"), 0, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_prefetch_advises_only_rows_not_in_the_page_cache(tmp_path, monkeypatch):
    """Read-ahead for cold files (POSIX_FADV_WILLNEED) is asked only where the rows are not
    already cached: for cached rows the advice would walk every page for nothing."""
    import os

    from medstack.io.readers import RawReader, open_reader

    sci, wht = random_stack(np.random.default_rng(5), 1, 256, 1024)
    name = write_stack(tmp_path, sci, wht)[0]
    reader = open_reader(name, 0)
    assert isinstance(reader, RawReader)
    advised: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def spy(fd, offset, length, advice):
        if advice == os.POSIX_FADV_WILLNEED:
            advised.append((offset, length))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    reader.read(0, 256)  # now in the page cache
    reader.prefetch(0, 256)
    assert advised == []
    with open(name, "rb") as fh:  # written back, then dropped from the cache
        os.fsync(fh.fileno())
        real(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    if reader._cached(reader._offset + 100 * 4096):  # pragma: no cover - e.g. tmpfs
        pytest.skip("this filesystem keeps the file cached")
    reader.prefetch(100, 200)
    assert advised == [(reader._offset + 100 * 4096, 100 * 4096)]
    reader.close()
