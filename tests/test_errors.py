"""Bad input answered clearly with nothing lost; tolerated input warned about and right.

Every bad input goes through ``cli.main(argv)``: exit status 2, exactly one stderr line
``medstack: error: ...`` naming the file (or the parameter and its allowed values), no traceback,
no new file (no output, no ``.<name>.*.tmp``), and the earlier ``visit_med.fits`` left byte for
byte as it was. The tolerated inputs are checked against the reference kernel run on the
equivalent in-memory arrays, with the warning naming the file.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import random_stack, same_bits, write_stack

from medstack import median_image
from medstack.cli import main
from medstack.errors import InputError, OutputError, ParameterError
from medstack.kernels import CombineSpec, ImageScalars, combine_section
from medstack.params import COMBINE_TYPES, validate

NY, NX = 16, 12


@dataclass
class Setup:
    """Inputs in ``tmp/in``, an earlier product ``tmp/out/visit_med.fits``."""

    tmp: Path
    names: list[str]
    sci: np.ndarray
    wht: np.ndarray
    root: Path
    earlier: bytes

    @property
    def indir(self) -> Path:
        return self.tmp / "in"

    @property
    def outdir(self) -> Path:
        return self.root.parent

    def sci_name(self, i: int) -> Path:
        return self.indir / f"img{i:03d}_single_sci.fits"

    def wht_name(self, i: int) -> Path:
        return self.indir / f"img{i:03d}_single_wht.fits"

    def argv(self, *extra: str, inputs: list[str] | None = None) -> list[str]:
        return [*(self.names if inputs is None else inputs), "-o", str(self.root), *extra]

    def snapshot(self) -> dict[str, bytes]:
        """Every file under tmp, by relative name, with its bytes."""
        return {str(p.relative_to(self.tmp)): p.read_bytes()
                for p in sorted(self.tmp.rglob("*")) if p.is_file()}


@pytest.fixture
def setup(tmp_path):
    sci, wht = random_stack(np.random.default_rng(3), 3, NY, NX)
    names = write_stack(tmp_path / "in", sci, wht)
    (tmp_path / "out").mkdir()
    root = tmp_path / "out" / "visit"
    earlier = median_image(names, root, combine_type="median").path.read_bytes()
    return Setup(tmp_path, names, sci, wht, root, earlier)


def fails(setup: Setup, capsys, argv: list[str], *fragments: str) -> str:
    """Run the CLI, expect the clean failure, return the error line."""
    before = setup.snapshot()
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    line = lines[0]
    assert line.startswith("medstack: error: "), line
    assert "Traceback" not in captured.err and captured.out == ""
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    after = setup.snapshot()
    assert after == before  # nothing created, nothing changed, no stray .tmp
    assert (setup.outdir / "visit_med.fits").read_bytes() == setup.earlier
    return line


# ---------------------------------------------------------------------------------------------
# bad input files


def test_missing_science_file(setup, capsys):
    missing = str(setup.indir / "nothere_single_sci.fits")
    fails(setup, capsys, setup.argv(inputs=[*setup.names, missing]),
          f"{missing}: file not found")


def test_missing_exposure_single(setup, capsys):
    """An exposure name whose single does not exist names it and the single it looked for
    (the same message through every door)."""
    fails(setup, capsys, setup.argv(inputs=[*setup.names, str(setup.indir / "j8x_flt.fits")]),
          "j8x_flt.fits: its singly drizzled image ", "j8x_single_sci.fits does not exist")


def test_missing_weight_file(setup, capsys):
    os.remove(setup.wht_name(1))
    fails(setup, capsys, setup.argv(), f"{setup.wht_name(1)}: weight file not found",
          f"(for {setup.sci_name(1)})")


@pytest.mark.parametrize("which", ["sci", "wht"])
def test_empty_file(setup, capsys, which):
    path = setup.sci_name(2) if which == "sci" else setup.wht_name(2)
    path.write_bytes(b"")
    fails(setup, capsys, setup.argv(), f"{path}: empty file")


def test_not_a_fits_file(setup, capsys):
    setup.sci_name(1).write_text("RA DEC FLUX\n10.1 -72.0 5.5\n" * 200)
    fails(setup, capsys, setup.argv(), f"{setup.sci_name(1)}: not a FITS file")


@pytest.mark.parametrize("which", ["sci", "wht"])
def test_truncated_data(setup, capsys, which):
    path = setup.sci_name(0) if which == "sci" else setup.wht_name(0)
    data = path.read_bytes()
    path.write_bytes(data[: 2880 + 100])  # whole header, 100 bytes of 768 of data
    line = fails(setup, capsys, setup.argv(), f"{path}: truncated FITS file", "16x12")
    assert "WARNING" not in line


def test_truncated_header(setup, capsys):
    path = setup.sci_name(1)
    path.write_bytes(path.read_bytes()[:1000])
    fails(setup, capsys, setup.argv(), f"{path}: not a readable FITS file")


@pytest.mark.parametrize("cut", [1000, 2880 + 100])
def test_damaged_file_in_a_real_process(setup, cut):
    """Outside pytest nothing captures astropy's own warnings: they would reach stderr as
    extra ``WARNING: ...`` lines. A real process shows only the one error line."""
    path = setup.sci_name(1)
    path.write_bytes(path.read_bytes()[:cut])
    before = setup.snapshot()
    proc = subprocess.run([sys.executable, "-m", "medstack.cli", *setup.argv()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"medstack: error: {path}: ")
    assert setup.snapshot() == before


@pytest.mark.parametrize("layout", ["header-only", "table-in-ext1", "empty-ext1"])
def test_no_image_data(setup, capsys, layout):
    path = setup.sci_name(1)
    hdus = [fits.PrimaryHDU()]
    if layout == "table-in-ext1":
        hdus.append(fits.BinTableHDU.from_columns([fits.Column("x", "E", array=np.zeros(3))]))
    elif layout == "empty-ext1":
        hdus.append(fits.ImageHDU())
    fits.HDUList(hdus).writeto(path, overwrite=True)
    fails(setup, capsys, setup.argv(),
          f"{path}: no image data in the primary HDU or extension 1")


def test_science_shapes_differ(setup, capsys):
    sci, wht = random_stack(np.random.default_rng(9), 1, NY + 1, NX)
    odd = write_stack(setup.indir, sci, wht, prefix="odd")
    fails(setup, capsys, setup.argv(inputs=[*setup.names, *odd]),
          f"{odd[0]}: shape 17x12 differs from {setup.names[0]} 16x12")


def test_weight_shape_differs_from_its_science(setup, capsys):
    fits.PrimaryHDU(np.ones((NY, NX + 2), dtype=">f4")).writeto(setup.wht_name(1), overwrite=True)
    fails(setup, capsys, setup.argv(),
          f"{setup.wht_name(1)}: weight shape 16x14 differs from science "
          f"{setup.sci_name(1)} 16x12")


@pytest.mark.parametrize("shape, dims", [((2, NY, NX), "3-D"), ((NX,), "1-D")])
def test_data_not_2d(setup, capsys, shape, dims):
    header = fits.getheader(setup.sci_name(2))
    fits.PrimaryHDU(np.ones(shape, dtype=">f4"), header=header).writeto(
        setup.sci_name(2), overwrite=True)
    fails(setup, capsys, setup.argv(), f"{setup.sci_name(2)}: image data is {dims}",
          "expected 2-D")


@pytest.mark.parametrize("exptime, message", [(None, "EXPTIME missing"), (0.0, "EXPTIME = 0")])
@pytest.mark.parametrize("ctype", ["minmed", "iminmed"])
def test_exptime_missing_or_zero_for_minmed(setup, capsys, exptime, message, ctype):
    with fits.open(setup.sci_name(1), mode="update") as hdul:
        if exptime is None:
            del hdul[0].header["EXPTIME"]
        else:
            hdul[0].header["EXPTIME"] = exptime
    fails(setup, capsys, setup.argv("--combine-type", ctype),
          f"{setup.sci_name(1)}: {message}", "minmed needs")
    # the types that do not use the exposure time run
    assert main(setup.argv("--combine-type", "median")) == 0


# ---------------------------------------------------------------------------------------------
# bad parameters


def test_unknown_combine_type_lists_the_choices(setup, capsys):
    line = fails(setup, capsys, setup.argv("--combine-type", "medain"),
                 "combine_type", "'medain'")
    assert line.endswith("choose one of: " + ", ".join(COMBINE_TYPES))


@pytest.mark.parametrize("value", ["abc", "-1", "4 -3", "4 3 2", "nan", ""])
def test_bad_combine_nsigma(setup, capsys, value):
    fails(setup, capsys, setup.argv(f"--combine-nsigma={value}"),
          "combine_nsigma: expected one or two non-negative numbers such as '4 3'", repr(value))


@pytest.mark.parametrize("ctype", ["median", "imedian", "mean", "imean", "average"])
@pytest.mark.parametrize("nlow, nhigh", [(3, 0), (0, 3), (2, 1), (5, 5)])
def test_nlow_nhigh_reject_every_image(setup, capsys, ctype, nlow, nhigh):
    fails(setup, capsys,
          setup.argv("--combine-type", ctype, "--combine-nlow", str(nlow),
                     "--combine-nhigh", str(nhigh)),
          f"combine_nlow + combine_nhigh = {nlow + nhigh} rejects every one of the 3 input "
          "images; it must be less than 3")


@pytest.mark.parametrize("option, value, message", [
    ("--combine-maskpt", "-0.1", "combine_maskpt: must be >= 0, got '-0.1'"),
    ("--combine-maskpt", "lots", "combine_maskpt: expected a number, got 'lots'"),
    ("--combine-grow", "-1", "combine_grow: must be >= 0, got '-1'"),
    ("--combine-grow", "1.5", "combine_grow: expected an integer, got '1.5'"),
    ("--combine-bufsize", "0", "combine_bufsize: must be > 0, got '0'"),
    ("--combine-bufsize", "-2", "combine_bufsize: must be > 0, got '-2'"),
    ("--combine-nlow", "-1", "combine_nlow: must be >= 0, got '-1'"),
    ("--combine-lthresh", "low", "combine_lthresh: expected a number or None, got 'low'"),
    ("--fillval", "zero", "fillval: expected a number, got 'zero'"),
])
def test_out_of_range_parameters(setup, capsys, option, value, message):
    line = fails(setup, capsys, setup.argv(f"{option}={value}"))
    assert line == f"medstack: error: {message}"


def test_zero_workers(setup, capsys):
    fails(setup, capsys, setup.argv("--workers", "0"), "workers: must be >= 1")


# ---------------------------------------------------------------------------------------------
# output problems


def test_output_directory_missing(setup, capsys):
    root = setup.tmp / "nowhere" / "visit"
    fails(setup, capsys, setup.argv()[:-1] + [str(root)],
          f"{root}_med.fits: output directory {root.parent} does not exist")


def test_output_directory_is_a_file(setup, capsys):
    plain = setup.outdir / "notes.txt"
    plain.write_text("not a directory\n")
    root = plain / "visit"
    fails(setup, capsys, setup.argv()[:-1] + [str(root)], f"{plain} is not a directory")


def test_output_directory_not_writable(setup, capsys, monkeypatch):
    """The tests run as root, for whom a chmod 0o555 directory is still writable, so the
    kernel's answer is simulated: os.access reports the directory as not writable."""
    real_access = os.access

    def access(path, mode, **kw):
        if Path(path) == setup.outdir and mode & os.W_OK:
            return False
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    fails(setup, capsys, setup.argv(),
          f"{setup.root}_med.fits: output directory {setup.outdir} is not writable")


def test_temporary_file_refused(setup, capsys, monkeypatch):
    """os.access can say yes where creating a file still fails (read-only mount, ACLs):
    simulated with the EROFS that creating it would raise."""
    real_open = os.open

    def refuse_to_create(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_to_create)
    fails(setup, capsys, setup.argv(), f"{setup.root}_med.fits: cannot create a temporary file",
          "Read-only file system")


@pytest.mark.parametrize("target", ["sci", "wht"])
def test_output_would_overwrite_an_input(setup, capsys, target):
    victim = setup.sci_name(1) if target == "sci" else setup.wht_name(1)
    fails(setup, capsys, setup.argv()[:-1] + [str(victim)],
          f"{victim}: output would overwrite input {victim}")


def test_output_would_overwrite_an_input_through_a_symlink(setup, capsys):
    link = setup.outdir / "link_med.fits"
    link.symlink_to(setup.sci_name(0))
    fails(setup, capsys, setup.argv()[:-1] + [str(setup.outdir / "link")],
          "output would overwrite input", str(setup.sci_name(0)))


def test_map_would_overwrite_an_input(setup, capsys):
    # weights may be named freely (API weights= or --table): a map must not replace one
    victim = setup.outdir / "visit_med_ngood.fits"
    victim.write_bytes(setup.wht_name(1).read_bytes())
    table = setup.tmp / "in" / "table.csv"
    rows = [f"{s},{w}" for s, w in zip(setup.names, [setup.wht_name(0), victim,
                                                       setup.wht_name(2)])]
    table.write_text("sci,wht\n" + "\n".join(rows) + "\n")
    fails(setup, capsys, ["--table", str(table), "-o", str(setup.root), "--save-maps"],
          f"{victim}: output would overwrite input {victim}")


def test_png_directory_checked_before_the_run(setup, capsys):
    png = setup.tmp / "nowhere" / "q.png"
    fails(setup, capsys, setup.argv("--png", str(png)),
          f"{png}: output directory {png.parent} does not exist")


def test_disk_full_when_reserving(setup, capsys, monkeypatch):
    def fallocate(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    fails(setup, capsys, setup.argv("--save-maps"),
          f"{setup.root}_med", "no space left on device while writing")


@pytest.mark.parametrize("failing_write", [2, 5])
def test_disk_full_while_writing(setup, capsys, monkeypatch, failing_write):
    """Space reserved (a filesystem without fallocate), then a row write fails mid-run."""
    real_pwrite = os.pwrite
    calls = []

    def fallocate(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    def pwrite(fd, data, offset):
        calls.append(offset)
        if len(calls) >= failing_write:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    monkeypatch.setattr(os, "pwrite", pwrite)
    one_row = NX * 4 / 2**20
    fails(setup, capsys, setup.argv("--combine-bufsize", str(3 * one_row), "--workers", "1"),
          f"{setup.root}_med.fits: no space left on device while writing")
    assert len(calls) == failing_write


def test_api_raises_the_typed_errors(setup):
    with pytest.raises(InputError, match="file not found"):
        median_image([*setup.names, str(setup.indir / "x_single_sci.fits")])
    with pytest.raises(ParameterError, match="combine_type"):
        median_image(setup.names, combine_type="medain")
    with pytest.raises(OutputError, match="would overwrite input"):
        median_image(setup.names, setup.sci_name(0))


# ---------------------------------------------------------------------------------------------
# tolerated input: a warning naming the file, and the right result


def reference(sci, wht, *, maskpt=0.7, **params):
    """The reference kernel on whole in-memory arrays, thresholds computed here by hand."""
    p = validate(params, combine_maskpt=maskpt)
    thresholds = None
    if p.median_newmasks:
        thresholds = []
        for w in wht:
            flat = w.ravel()
            keep = flat[(flat >= np.float32(1e-8)) & np.isfinite(flat)].astype(np.float64)
            mean = np.float32(np.cumsum(keep)[-1] / keep.size) if keep.size else None
            thresholds.append(np.inf if mean is None else float(mean) * maskpt)
        thresholds = np.array(thresholds)
    n = len(sci)
    scalars = ImageScalars.of([100.0] * n, [50.0] * n, [4.0] * n)
    return combine_section(np.asarray(sci, np.float32), np.asarray(wht, np.float32),
                           CombineSpec.from_params(p), thresholds=thresholds,
                           scalars=scalars if p.kind == "minmed" else None, kernel="reference")


def warned(caplog, *fragments):
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for fragment in fragments:
        assert fragment in text, (fragment, text)


@pytest.mark.parametrize("ctype", ["median", "minmed", "imean", "sum"])
def test_nonfinite_science_is_masked_with_a_warning(tmp_path, caplog, ctype):  # Q8
    sci, wht = random_stack(np.random.default_rng(4), 4, NY, NX)
    sci[1, 3, 4] = np.nan
    sci[1, 9, 0] = np.inf
    sci[3, 0, 0] = -np.inf
    names = write_stack(tmp_path, sci, wht)
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image(names, combine_type=ctype)
    warned(caplog, f"{names[1]}: 2 NaN/inf science pixels, treated as masked",
           f"{names[3]}: 1 NaN/inf science pixels")
    ref = reference(sci, wht, combine_type=ctype)
    assert same_bits(out.data, ref.median)
    assert np.isfinite(out.data).all()


def test_nan_weights_with_a_warning(tmp_path, caplog):  # Q16
    sci, wht = random_stack(np.random.default_rng(5), 4, NY, NX)
    wht[2, 5, 5:8] = np.nan
    names = write_stack(tmp_path, sci, wht)
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image(names, combine_type="minmed")
    warned(caplog, f"{names[2].replace('_sci', '_wht')}: 3 NaN/inf weights, treated as bad "
           "pixels")
    assert same_bits(out.data, reference(sci, wht, combine_type="minmed").median)
    # masking still works for that image: a cosmic ray under a weight hole is left out
    assert same_bits(median_image(names, combine_type="median").data,
                     reference(sci, wht, combine_type="median").median)


def test_all_zero_weight_image_with_a_warning(tmp_path, caplog):  # Q17
    sci, wht = random_stack(np.random.default_rng(6), 4, NY, NX)
    wht[0] = 0.0
    sci[0] = 1e5  # would dominate every pixel if it were used
    names = write_stack(tmp_path, sci, wht)
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image(names, combine_type="median", save_maps=True)
    warned(caplog, f"{names[0].replace('_sci', '_wht')}: no weight >= 1e-8; "
           "the whole image is masked")
    assert same_bits(out.data, reference(sci, wht, combine_type="median").median)
    assert out.ngood.max() <= 3 and out.data.max() < 1e5


def test_integer_data_is_converted_with_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(7)
    sci = rng.integers(-50, 3000, (3, NY, NX)).astype(np.float32)
    wht = rng.integers(0, 120, (3, NY, NX)).astype(np.float32)
    names = write_stack(tmp_path, sci, wht)
    header = fits.getheader(names[1])
    fits.PrimaryHDU(sci[1].astype(np.int16), header=header).writeto(names[1], overwrite=True)
    wname = names[2].replace("_sci", "_wht")
    fits.PrimaryHDU(wht[2].astype(np.int32)).writeto(wname, overwrite=True)
    scaled = fits.PrimaryHDU(sci[0].astype(np.int16), header=fits.getheader(names[0]))
    scaled.scale("int16", bzero=1000)  # BZERO-scaled integers too
    scaled.writeto(names[0], overwrite=True)
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image(names, combine_type="minmed")
    warned(caplog, f"{names[0]}: integer data converted to float32",
           f"{names[1]}: integer data converted to float32",
           f"{wname}: integer data converted to float32")
    assert same_bits(out.data, reference(sci, wht, combine_type="minmed").median)


def test_same_file_twice_is_used_once(tmp_path, caplog):
    sci, wht = random_stack(np.random.default_rng(8), 3, NY, NX)
    names = write_stack(tmp_path, sci, wht)
    exposure = names[2].replace("_single_sci", "_flt")
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image([names[0], names[1], names[0], names[2], exposure],
                           combine_type="median")
    warned(caplog, f"{names[0]}: given more than once; used once",
           f"{exposure}: same science file as {names[2]}; used once")
    assert out.plan.n_images == 3
    assert same_bits(out.data, reference(sci, wht, combine_type="median").median)


def test_per_image_values_follow_the_inputs_as_given(tmp_path, caplog):
    # exptime/sky/readnoise lists may have one entry per input as given, repeats included:
    # the repeat's entry is dropped with it.
    sci, wht = random_stack(np.random.default_rng(9), 3, NY, NX)
    names = write_stack(tmp_path, sci, wht)
    exptime, sky, rn = [100.0, 200.0, 300.0], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    expected = median_image(names, combine_type="minmed", exptime=exptime, sky=sky,
                            readnoise=rn).data
    order = [0, 1, 0, 2]
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image([names[i] for i in order], combine_type="minmed",
                           exptime=[exptime[i] for i in order], sky=[sky[i] for i in order],
                           readnoise=[rn[i] for i in order])
    assert f"{names[0]}: given more than once; used once" in caplog.text
    assert out.plan.n_images == 3
    assert same_bits(out.data, expected)
    # one entry per distinct input is accepted too
    out = median_image([names[i] for i in order], combine_type="minmed", exptime=exptime,
                       sky=sky, readnoise=rn)
    assert same_bits(out.data, expected)
    with pytest.raises(ParameterError, match=r"^exptime: input 3 repeats input 1 with another "
                       r"value \(150\.0, not 100\.0\)$"):
        median_image([names[i] for i in order], exptime=[100.0, 200.0, 150.0, 300.0])
    with pytest.raises(ParameterError, match=r"^sky: 2 values given for 4 input images$"):
        median_image([names[i] for i in order], sky=[1.0, 2.0])


def test_tolerated_input_through_the_cli(tmp_path, capsys):
    sci, wht = random_stack(np.random.default_rng(10), 3, NY, NX)
    sci[0, 2, 2] = np.nan
    wht[1, 4, 4] = np.nan
    names = write_stack(tmp_path, sci, wht)
    assert main([*names, names[1], "-o", str(tmp_path / "v"), "--combine-type", "median"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert f"medstack: WARNING: {names[1]}: given more than once; used once" in err
    assert f"medstack: WARNING: {names[0]}: 1 NaN/inf science pixels, treated as masked" in err
    assert (f"medstack: WARNING: {names[1].replace('_sci', '_wht')}: 1 NaN/inf weights, "
            "treated as bad pixels (left out of the mean weight)") in err
    assert same_bits(fits.getdata(tmp_path / "v_med.fits"),
                     reference(sci, wht, combine_type="median").median)
    assert main([*names, "-q", "-o", str(tmp_path / "q"), "--combine-type", "median"]) == 0
    assert capsys.readouterr().err == ""  # --quiet: warnings too are silenced


def test_cli_leaves_the_callers_logging_as_it_was(setup, capsys):
    logger = logging.getLogger("medstack")
    before = (list(logger.handlers), logger.level, logger.propagate)
    assert main(setup.argv("-v")) == 0
    assert (list(logger.handlers), logger.level, logger.propagate) == before


# ---------------------------------------------------------------------------------------------
# issue 12: hostile names, products that must never be destroyed


def test_hard_linked_duplicate_is_used_once(tmp_path, caplog):
    """A hard link is the same file under another name: compared by (device, inode)."""
    sci, wht = random_stack(np.random.default_rng(21), 3, NY, NX)
    names = write_stack(tmp_path, sci, wht)
    link = tmp_path / "copy_single_sci.fits"
    os.link(names[0], link)
    os.link(names[0].replace("_sci", "_wht"), tmp_path / "copy_single_wht.fits")
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image([*names, str(link)], combine_type="median")
    warned(caplog, f"{link}: same science file as {names[0]}; used once")
    assert out.plan.n_images == 3
    assert same_bits(out.data, reference(sci, wht, combine_type="median").median)


def test_impossible_threshold_pair_is_refused(setup, capsys):
    fails(setup, capsys, setup.argv("--combine-type", "median", "--combine-lthresh", "20",
                                    "--combine-hthresh", "5"),
          "combine_lthresh = 20 is not below combine_hthresh = 5")
    with pytest.raises(ParameterError, match="combine_lthresh = 3 is not below"):
        validate(combine_lthresh=3, combine_hthresh=3)


def test_maskpt_as_a_percentage_warns_and_says_nothing_is_good(setup, caplog):
    with caplog.at_level(logging.WARNING, logger="medstack"):
        out = median_image(setup.names, combine_type="median", combine_maskpt=70)
    warned(caplog, "combine_maskpt = 70 is a fraction of each image's mean weight, not a "
           "percentage", "did you mean 0.7?",
           "no output pixel has a good input: every pixel is fillval = 0")
    assert not out.data.any()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medstack"):
        median_image(setup.names, combine_type="median")
    assert "good input" not in caplog.text and "fraction" not in caplog.text


@pytest.mark.parametrize("option, target, message", [
    ("--png", "median", "the quick-look PNG would overwrite the median"),
    ("--png", "wht", "output would overwrite input"),
    ("--png", "sci", "output would overwrite input"),
    ("--write-config", "sci", "output would overwrite input"),
    ("--write-config", "wht-hardlink", "output would overwrite input"),
    ("--write-config", "png", "the configuration file would overwrite the quick-look PNG"),
    ("--png", "map", "the quick-look PNG would overwrite the count map"),
])
def test_no_product_overwrites_an_input_or_another_product(setup, capsys, option, target,
                                                           message):
    other = []
    if target == "median":
        victim = setup.outdir / "visit_med.fits"
    elif target == "sci":
        victim = setup.sci_name(0)
    elif target == "wht":
        victim = setup.wht_name(2)
    elif target == "wht-hardlink":
        victim = setup.outdir / "linked.cfg"
        os.link(setup.wht_name(1), victim)
    elif target == "png":
        victim = setup.outdir / "q.png"
        other = ["--png", str(victim)]
    else:
        victim = setup.outdir / "visit_med_ngood.fits"
        other = ["--save-maps"]
    fails(setup, capsys, setup.argv(*other, option, str(victim)), str(victim), message)


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
@pytest.mark.parametrize("option", ["--png", "--write-config"])
def test_special_file_outputs_are_refused_not_replaced(setup, capsys, kind, option):
    """A FIFO, or a device node made like /dev/null (1, 3): refused before any work, the node
    left a node (never replaced by a regular file)."""
    import stat

    node = setup.outdir / f"node.{kind}"
    if kind == "fifo":
        os.mkfifo(node)
    else:
        try:
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")
    before = os.stat(node)
    # (the snapshot helper reads regular files only, so the node does not block it)
    fails(setup, capsys, setup.argv(option, str(node)), f"{node}: is a special file")
    after = os.stat(node)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    with pytest.raises(OutputError, match="is a special file"):
        from medstack.extras.quicklook import save_quicklook
        save_quicklook(node, setup.sci[0])


@pytest.mark.parametrize("stop", ["disk full", "ctrl-c"])
def test_png_failure_leaves_the_earlier_median(setup, capsys, monkeypatch, stop):
    """The PNG is made before the median is committed: a failure there leaves the earlier
    median (and maps) as they were, and nothing new."""
    from matplotlib.figure import Figure

    def savefig(self, *args, **kwargs):
        if stop == "ctrl-c":
            raise KeyboardInterrupt
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", savefig)
    png = setup.outdir / "q.png"
    argv = setup.argv("--png", str(png), "--save-maps")
    if stop == "disk full":
        fails(setup, capsys, argv, f"{png}: cannot write the quick-look PNG")
        return
    before = setup.snapshot()
    assert main(argv) == 130
    assert capsys.readouterr().err == "medstack: interrupted; no output written\n"
    assert setup.snapshot() == before


PRODUCTS = ["visit_med.fits", "visit_med_ngood.fits", "visit_med_minchosen.fits", "q.png",
            "p.cfg"]


def _every_product(setup: Setup, *extra: str) -> list[str]:
    """The command writing all five products of a run into ``out``."""
    return setup.argv("--save-maps", "--png", str(setup.outdir / "q.png"), "--write-config",
                      str(setup.outdir / "p.cfg"), *extra)


def _fail_on_call(monkeypatch, name: str, k: int, error: BaseException,
                  after: bool = False) -> list[str]:
    """``os.<name>`` raising ``error`` on its k-th call that names a file in an ``out``
    folder (the commit's links and renames), instead of doing it or, with ``after``, once
    it is done; returns the names it was called with."""
    real = getattr(os, name)
    calls: list[str] = []

    def fake(src, dst, *args, **kwargs):
        if Path(dst).parent.name == "out":
            calls.append(Path(dst).name)
            if len(calls) == k:
                if after:
                    real(src, dst, *args, **kwargs)
                raise error
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, name, fake)
    return calls


@pytest.mark.parametrize("step, earlier", [(step, earlier) for step in (
    "created", "sync", "link", "linked", "rename") for earlier in (True, False)
    if (step, earlier) != ("linked", False)])  # (no earlier file: nothing linked)
@pytest.mark.parametrize("k", range(1, len(PRODUCTS) + 1))
def test_an_interrupt_at_any_step_of_the_commit_changes_nothing(setup, capsys, monkeypatch,
                                                                 step, k, earlier):
    """The five products are renamed into place together: a Ctrl-C just after a temporary
    file is created, while they are synced under their temporary names, before or just after
    an earlier file is linked aside or at any of the renames puts every earlier file back
    (or removes the new ones where there was none), leaves no temporary file and says so."""
    if earlier:  # an earlier run's five products, made with other parameters
        assert main(_every_product(setup, "--combine-nsigma", "6 5", "-q")) == 0
        assert sorted(p.name for p in setup.outdir.iterdir()) == sorted(PRODUCTS)
    else:
        (setup.outdir / "visit_med.fits").unlink()
    before = setup.snapshot()
    if step == "sync":  # each product synced to disk under its temporary name
        real_fsync, calls = os.fsync, []

        def fsync(fd):
            calls.append(fd)
            if len(calls) == k:
                raise KeyboardInterrupt
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    elif step == "created":  # the file made, its descriptor not yet returned to the caller
        real_open, calls = os.open, []

        def open_(path, flags, *args, **kwargs):
            fd = real_open(path, flags, *args, **kwargs)
            if Path(path).parent.name == "out" and flags & os.O_CREAT:
                calls.append(Path(path).name)
                if len(calls) == k:
                    os.close(fd)
                    raise KeyboardInterrupt
            return fd

        monkeypatch.setattr(os, "open", open_)
    else:
        calls = _fail_on_call(monkeypatch, {"link": "link", "linked": "link",
                                            "rename": "replace"}[step], k,
                              KeyboardInterrupt(), after=step == "linked")
    if step == "link" and not earlier:
        k = 0  # nothing to link aside: the renames alone
    assert main(_every_product(setup)) == 130
    assert capsys.readouterr().err == "medstack: interrupted; no output written\n"
    assert setup.snapshot() == before
    assert len(calls) >= k
    if step == "rename":  # the median is renamed last
        assert ("visit_med.fits" in calls[:k]) == (k == len(PRODUCTS)), calls


@pytest.mark.parametrize("k", [1, len(PRODUCTS)])
def test_a_rename_that_fails_changes_nothing(setup, capsys, monkeypatch, k):
    _fail_on_call(monkeypatch, "replace", k, OSError(errno.EACCES, "Permission denied"))
    line = fails(setup, capsys, _every_product(setup), "cannot rename the finished file "
                 "(Permission denied)")
    named = Path(line.split(": ")[2])
    assert named.parent == setup.outdir and named.name in PRODUCTS
    assert (named.name == "visit_med.fits") == (k == len(PRODUCTS))  # the median goes last


def test_an_interrupt_after_the_commit_says_every_product_was_written(setup, capsys,
                                                                       monkeypatch):
    import medstack.core.run as run_module

    assert main(_every_product(setup, "--combine-nsigma", "6 5", "-q")) == 0
    earlier = setup.snapshot()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "check_coverage", interrupted)
    assert main(_every_product(setup)) == 130
    names = [setup.outdir / name for name in PRODUCTS]
    assert capsys.readouterr().err == ("medstack: interrupted; every output written: "
                                       f"{', '.join(map(str, names))}\n")
    after = setup.snapshot()
    assert all(after[f"out/{name}"] != earlier[f"out/{name}"] for name in PRODUCTS)
    assert sorted(after) == sorted(earlier)  # nothing else, no temporary file
    monkeypatch.undo()
    expected = median_image(setup.names, keep_maps=True)
    assert same_bits(fits.getdata(names[0]), expected.data)
    assert np.array_equal(fits.getdata(names[2]), expected.minchosen)
    from medstack.config import read_config

    assert read_config(names[4]).params.combine_nsigma == validate().combine_nsigma


@pytest.mark.parametrize("name", ["visit.fit", "VISIT.FITS", "visit_med.fits"])
def test_map_names_are_distinct_whatever_the_extension(setup, name):
    out = setup.outdir / name
    assert main([*setup.names, "-o", str(out), "--save-maps"]) == 0
    stem, ext = name.rsplit(".", 1)
    ngood = setup.outdir / f"{stem}_ngood.{ext}"
    minchosen = setup.outdir / f"{stem}_minchosen.{ext}"
    result = median_image(setup.names, keep_maps=True)
    assert same_bits(fits.getdata(out), result.data)
    assert np.array_equal(fits.getdata(ngood), result.ngood)
    assert np.array_equal(fits.getdata(minchosen), result.minchosen)


def test_output_rootname_that_is_a_directory_is_refused(setup, capsys):
    fails(setup, capsys, setup.argv()[:-1] + [f"{setup.outdir}{os.sep}"],
          "the output rootname names a directory", f"{setup.outdir}{os.sep}visit")
    with pytest.raises(OutputError, match="names a directory"):
        median_image(setup.names, f"{setup.outdir}{os.sep}")


def test_a_long_legal_name_is_not_refused(setup, capsys):
    root = setup.outdir / ("v" * 241)  # v...v_med.fits: 250 characters, legal
    assert len(f"{root.name}_med.fits") == 250
    png = setup.outdir / ("p" * 246 + ".png")
    assert main([*setup.names, "-o", str(root), "--png", str(png)]) == 0
    assert same_bits(fits.getdata(f"{root}_med.fits"), median_image(setup.names).data)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(setup.outdir.glob(".*tmp"))
    # its maps' names would be too long: refused before any work, naming the map
    (setup.outdir / f"{root.name}_med.fits").unlink()
    fails(setup, capsys, [*setup.names, "-o", str(root), "--save-maps"],
          f"{root}_med_ngood.fits: file name too long (256 bytes")


# ---------------------------------------------------------------------------------------------
# issue 12: names


def _copy_stack(setup: Setup, i: int, root: str) -> str:
    sci = setup.indir / f"{root}_single_sci.fits"
    sci.write_bytes(setup.sci_name(i).read_bytes())
    (setup.indir / f"{root}_single_wht.fits").write_bytes(setup.wht_name(i).read_bytes())
    return str(sci)


@pytest.mark.parametrize("root", ["déjà_vu", "img[1]", "a,b", "star*"])
def test_hostile_names_are_files(setup, capsys, root):
    """Non-ASCII, glob characters and commas in an existing file's name: that file."""
    odd = _copy_stack(setup, 0, root)
    names = [odd, *setup.names[1:]]
    out = setup.outdir / "odd"
    assert main([*names, "-o", str(out), "--combine-type", "median"]) == 0
    assert capsys.readouterr().err == ""
    data = fits.getdata(f"{out}_med.fits")
    header = fits.getheader(f"{out}_med.fits")
    assert same_bits(data, reference(setup.sci, setup.wht, combine_type="median").median)
    assert header["NCOMBINE"] == 3
    history = " ".join(str(h) for h in header["HISTORY"])
    assert os.path.basename(odd).encode("ascii", "backslashreplace").decode() in history


def test_binary_list_file(setup, capsys):
    listfile = setup.indir / "inputs.lst"
    listfile.write_bytes(bytes(range(256)) * 4)
    fails(setup, capsys, setup.argv(inputs=[f"@{listfile}"]),
          f"{listfile}: not a text list file")


def test_empty_list_file_is_named(setup, capsys):
    listfile = setup.indir / "inputs.lst"
    listfile.write_text("# nothing yet\n\n")
    fails(setup, capsys, setup.argv(inputs=[f"@{listfile}"]),
          f"{listfile}: the list file names no input file")


@pytest.mark.parametrize("argument, value, message", [
    ("input", 5, "input: expected a file name"),
    ("output", 123, "output: expected a rootname"),
    ("workers", "abc", "workers: expected a whole number"),
    ("workers", 2.5, "workers: expected a whole number"),
    ("progress", 5, "progress: expected a callable"),
    ("kernel", "bogus", "kernel: unknown value 'bogus'; choose one of: auto, fast, reference"),
    ("weights", 5, "weights: expected a list of weight file names"),
    ("weights", [1, 2, 3], "weights: expected a list of weight file names"),
    ("before_commit", 5, "before_commit: expected a callable"),
    ("connect_timeout", "x", "connect_timeout: expected a number of seconds > 0"),
    ("connect_timeout", 0, "connect_timeout: expected a number of seconds > 0"),
])
def test_api_arguments_raise_parameter_error(setup, argument, value, message):
    kwargs = {"input": setup.names, argument: value}
    before = setup.snapshot()
    with pytest.raises(ParameterError, match="^" + message.replace("(", r"\(")):
        median_image(**kwargs)
    assert setup.snapshot() == before


def test_inputs_after_options(setup):
    out = setup.outdir / "mixed"
    argv = [setup.names[0], "-o", str(out), "--combine-type", "median", *setup.names[1:]]
    assert main(argv) == 0
    assert fits.getheader(f"{out}_med.fits")["NCOMBINE"] == 3
    assert same_bits(fits.getdata(f"{out}_med.fits"),
                     reference(setup.sci, setup.wht, combine_type="median").median)


def test_blank_card_of_an_integer_input_is_not_copied(tmp_path, recwarn):
    rng = np.random.default_rng(22)
    sci = rng.integers(-50, 3000, (3, NY, NX)).astype(np.float32)
    wht = rng.integers(1, 120, (3, NY, NX)).astype(np.float32)
    names = write_stack(tmp_path, sci, wht)
    header = fits.getheader(names[0])
    header["BLANK"] = -32768
    fits.PrimaryHDU(sci[0].astype(np.int16), header=header).writeto(names[0], overwrite=True)
    out = median_image(names, tmp_path / "v", combine_type="median")
    assert "BLANK" not in out.header
    with fits.open(out.path) as hdul:
        assert "BLANK" not in hdul[0].header
        assert same_bits(hdul[0].data, reference(sci, wht, combine_type="median").median)
    assert not [w for w in recwarn if "BLANK" in str(w.message)]


# ---------------------------------------------------------------------------------------------
# issue 12: one line means one line


def test_a_warning_before_an_error_leaves_one_line(setup, capsys):
    """A repeated input (a warning) and then a missing weight (the error): just the error."""
    os.remove(setup.wht_name(1))
    fails(setup, capsys, setup.argv(inputs=[*setup.names, setup.names[0]]),
          f"{setup.wht_name(1)}: weight file not found")


def test_warnings_of_a_successful_run_still_show(setup, capsys):
    assert main(setup.argv("--combine-type", "median", inputs=[*setup.names,
                                                               setup.names[2]])) == 0
    assert capsys.readouterr().err == (
        f"medstack: WARNING: {setup.names[2]}: given more than once; used once\n")


def test_malformed_header_card_is_one_warning_naming_the_file(setup):
    """astropy would print four VerifyWarning lines of its own, in its own format, from a real
    process: medstack prints one line naming the file and the card."""
    path = setup.sci_name(0)
    raw = bytearray(path.read_bytes())
    at = raw.find(b"BUNIT   =")
    raw[at:at + 80] = b"BUNIT   = 'ELECTRONS/S  / no closing quote".ljust(80)
    path.write_bytes(bytes(raw))
    proc = subprocess.run([sys.executable, "-m", "medstack.cli", *setup.argv()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"medstack: WARNING: {path}: header card BUNIT is not FITS "
                               "standard; copied as fixed: BUNIT = ")
    assert fits.getheader(setup.outdir / "visit_med.fits")["NCOMBINE"] == 3


@pytest.mark.parametrize("card", [b"DETECTOR= 'WFC     / no closing quote", b"EXPTIME = 1.0.0"])
def test_malformed_card_medstack_reads_is_one_error_naming_the_file(setup, capsys, card):
    """A malformed card that medstack reads (not only copies): one line naming the file and
    the card, exit 2, nothing written."""
    path = setup.sci_name(1)
    raw = bytearray(path.read_bytes())
    key = card.split(b"=")[0]
    at = raw.find(key)
    if at < 0:  # no such card yet: take the place of one that is there
        at = raw.find(b"BUNIT   =")
    raw[at:at + 80] = card.ljust(80)
    path.write_bytes(bytes(raw))
    name = card.split(b"=")[0].strip().decode()
    fails(setup, capsys, setup.argv(), f"{path}: a header card medstack reads is malformed",
          f"({name})")


def test_library_warnings_become_one_medstack_line(setup, capsys, monkeypatch):
    import warnings

    import medstack.api as engine

    real = engine.prepare

    def prepare(*args, **kwargs):
        warnings.warn("something odd\nover two lines", RuntimeWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "prepare", prepare)
    assert main(setup.argv()) == 0
    assert capsys.readouterr().err == (
        "medstack: WARNING: RuntimeWarning: something odd over two lines\n")


def test_a_product_that_cannot_be_put_back_is_named_by_the_command(setup, capsys,
                                                                   monkeypatch):
    """A second interrupt while the renames are undone: the message names the product left
    new (whose earlier file could not be put back); every other earlier file is as it was."""
    assert main(_every_product(setup, "--combine-nsigma", "6 5", "-q")) == 0
    before = setup.snapshot()
    real, calls = os.replace, []

    def replace(src, dst):
        if Path(dst).parent.name == "out":
            calls.append(Path(dst).name)
            if len(calls) in (len(PRODUCTS), len(PRODUCTS) + 1):  # the median's, then
                raise KeyboardInterrupt  # the first undo
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert main(_every_product(setup)) == 130
    first = calls[len(PRODUCTS)]
    assert capsys.readouterr().err == (f"medstack: interrupted; only {setup.outdir / first} "
                                       "written (the run's other products were not)\n")
    after = setup.snapshot()
    changed = sorted(name for name in before if after.get(name) != before[name])
    assert changed == [f"out/{first}"]
    assert [n for n in after if n not in before and not n.endswith(".old.tmp")] == []
