"""drizzlepac .cfg files, dicts and ConfigObj objects; --config, --write-config and --table."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from configobj import ConfigObj
from conftest import random_stack, same_bits, write_stack

from medstack import median_image
from medstack.cli import build_parser, main
from medstack.config import (
    STEP4,
    config_text,
    output_root,
    read_config,
    read_table,
    write_config,
)
from medstack.errors import InputError, ParameterError
from medstack.io.inputs import expand_inputs
from medstack.params import PARAMETERS, MedianParams, spec, validate


def astrodrizzle_cfg(step4: dict | None = None, **top) -> str:
    """A whole AstroDrizzle .cfg in drizzlepac's layout; ``step4`` replaces STEP 4 values
    (a value of None drops the key), ``top`` the top-level ones."""
    values = {
        "median": "True", "median_newmasks": "True", "combine_maskpt": "0.3",
        "combine_type": '"minmed"', "combine_nsigma": "4 3", "combine_nlow": "0",
        "combine_nhigh": "0", "combine_lthresh": "None", "combine_hthresh": "None",
        "combine_grow": "1", "combine_bufsize": "None",
    }
    for key, value in (step4 or {}).items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    head = {"input": '"*flt.fits"', "output": '""', "num_cores": "None", **top}
    step4_text = "\n".join(f"{k} = {v}" for k, v in values.items())
    return textwrap.dedent("""\
        _task_name_ = astrodrizzle
        input = {input}
        output = {output}
        runfile = "astrodrizzle.log"
        wcskey = ""
        proc_unit = native
        coeffs = True
        context = True
        group = ""
        build = False
        crbit = 4096
        stepsize = 10
        resetbits = "4096"
        num_cores = {num_cores}
        in_memory = False
        rules_file = ""

        [STATE OF INPUT FILES]
        restore = False
        preserve = True
        overwrite = False
        clean = False

        [STEP 1: STATIC MASK]
        static = True
        static_sig = 4.0

        [STEP 2: SKY SUBTRACTION]
        skysub = True
        skymethod = "localmin"
        skystat = "median"
        skywidth = 0.1
        skylower = None
        skyupper = None
        skyclip = 5
        skylsigma = 4.0
        skyusigma = 4.0
        skymask_cat = ""
        use_static = True
        sky_bits = "0"
        skyfile = ""
        skyuser = ""

        [STEP 3: DRIZZLE SEPARATE IMAGES]
        driz_separate = True
        driz_sep_kernel = turbo
        driz_sep_wt_scl = exptime
        driz_sep_pixfrac = 1.0
        driz_sep_fillval = None
        driz_sep_bits = "0"
        driz_sep_compress = False

        [STEP 3a: CUSTOM WCS FOR SEPARATE OUTPUTS]
        driz_sep_wcs = False
        driz_sep_refimage = ""
        driz_sep_rot = None
        driz_sep_scale = None
        driz_sep_outnx = None
        driz_sep_outny = None

        [STEP 4: CREATE MEDIAN IMAGE]
        {step4}

        [STEP 5: BLOT BACK THE MEDIAN IMAGE]
        blot = True
        blot_interp = poly5
        blot_sinscl = 1.0
        blot_addsky = True
        blot_skyval = 0.0

        [STEP 6: REMOVE COSMIC RAYS WITH DERIV, DRIZ_CR]
        driz_cr = True
        driz_cr_corr = False
        driz_cr_snr = 3.5 3.0
        driz_cr_grow = 1
        driz_cr_ctegrow = 0
        driz_cr_scale = 1.2 0.7

        [STEP 7: DRIZZLE FINAL COMBINED IMAGE]
        driz_combine = True
        final_wht_type = EXP
        final_kernel = square
        final_wt_scl = exptime
        final_pixfrac = 1.0
        final_fillval = None
        final_maskval = None
        final_bits = "0"
        final_units = cps

        [STEP 7a: CUSTOM WCS FOR FINAL OUTPUT]
        final_wcs = False
        final_refimage = ""
        final_rot = None
        final_scale = None

        [INSTRUMENT PARAMETERS]
        gain = ""
        gnkeyword = ""
        rdnoise = ""
        rnkeyword = ""
        exptime = ""
        expkeyword = ""

        [_RULES_]
        """).replace("{step4}", step4_text).format(**head)


TASK_CFG = textwrap.dedent("""\
    _task_name_ = createMedian
    input = ""

    [STEP 4: CREATE MEDIAN IMAGE]
    median = True
    median_newmasks = True
    combine_type = "median"
    combine_nsigma = 4 3
    combine_nhigh = 1
    combine_lthresh = None

    [_RULES_]
    """)


@pytest.fixture()
def stack(tmp_path):
    sci, wht = random_stack(np.random.default_rng(7), 4, 24, 18)
    return write_stack(tmp_path, sci, wht)


# ------------------------------------------------------------------------------------------
# reading


def test_astrodrizzle_cfg_reads_step4_only(tmp_path):
    path = tmp_path / "astrodrizzle.cfg"
    path.write_text(astrodrizzle_cfg(
        {"combine_type": "imedian", "combine_nsigma": "3.5 2", "combine_nhigh": "1",
         "combine_lthresh": "-2.5", "median_newmasks": "False", "combine_bufsize": "0.25"},
        input='"a_flt.fits, b_flt.fits"', output="visit1", num_cores="3"))
    settings = read_config(path)
    assert settings.task == "astrodrizzle"
    assert settings.input == f"{tmp_path / 'a_flt.fits'}, {tmp_path / 'b_flt.fits'}"
    assert settings.output == str(tmp_path / "visit1")  # names relative to the file
    assert settings.num_cores == 3
    p = settings.params
    assert (p.combine_type, p.combine_nsigma, p.combine_nhigh) == ("imedian", (3.5, 2.0), 1)
    assert (p.combine_lthresh, p.combine_hthresh, p.median_newmasks) == (-2.5, None, False)
    assert (p.combine_maskpt, p.combine_bufsize, p.combine_grow) == (0.3, 0.25, 1)


def test_missing_keys_take_the_defaults_of_the_files_task(tmp_path):
    ad = tmp_path / "ad.cfg"
    ad.write_text(astrodrizzle_cfg({"combine_maskpt": None}))
    assert read_config(ad).params.combine_maskpt == 0.3  # astrodrizzle.cfgspc default
    task = tmp_path / "task.cfg"
    task.write_text(TASK_CFG)
    settings = read_config(task)
    assert settings.task == "createMedian" and settings.input is None
    p = settings.params
    assert (p.combine_maskpt, p.combine_type, p.combine_nhigh) == (0.7, "median", 1)
    assert p.combine_grow == 1 and p.combine_lthresh is None
    # drizzlepac ships its createMedian.cfg with the _task_name_ line commented out
    task.write_text(TASK_CFG.replace("_task_name_", "#_task_name_"))
    settings = read_config(task)
    assert settings.task is None and settings.params == p


def test_dict_configobj_flat_and_defaults():
    nested = ConfigObj(astrodrizzle_cfg({"combine_type": "sum"}).splitlines(),
                       interpolation=False)
    assert read_config(nested).params.combine_type == "sum"
    assert read_config({"combine_type": "mean", "combine_nlow": 1}).params == validate(
        combine_type="mean", combine_nlow=1)
    typed = {"_task_name_": "createMedian", "input": "x_flt.fits",
             STEP4: {"_section_": "", "median": False, "combine_nsigma": "5",
                     "combine_bufsize": None}}
    settings = read_config(typed)
    assert settings.input == "x_flt.fits"
    assert (settings.params.median, settings.params.combine_nsigma) == (False, (5.0, 5.0))
    assert read_config(None).params == MedianParams()
    assert read_config("defaults").params == MedianParams()


def test_drizzlepac_only_keys_are_accepted_and_ignored(caplog):
    caplog.set_level(logging.INFO, logger="medstack")
    settings = read_config({"proc_unit": "native", "driz_sep_compress": True,
                            "combine_type": "median"})
    assert settings.params == validate(combine_type="median")
    assert "proc_unit = native accepted and ignored" in caplog.text
    with pytest.raises(ParameterError, match=r"proc_unit: unknown value 'cps'; choose one of: "
                                             r"native, electrons"):
        read_config({"proc_unit": "cps"})


def test_unknown_keys_list_the_valid_names(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text(astrodrizzle_cfg({"combine_typo": "median"}))
    with pytest.raises(ParameterError) as err:
        read_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: [{STEP4}] unknown parameter 'combine_typo'; valid names:")
    assert all(p.name in message for p in PARAMETERS)
    with pytest.raises(ParameterError, match=r"configObj: unknown parameter 'nsigma'; valid "
                                             r"names: median, .*input, output, num_cores"):
        read_config({"nsigma": "4 3"})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("combine_type", "middle", "combine_type: unknown value 'middle'; choose one of: minmed, "
                               "iminmed, median, imedian, mean, imean, average, iaverage, sum"),
    ("combine_nsigma", "4 3 2", "combine_nsigma: expected one or two non-negative numbers"),
    ("combine_maskpt", "-0.1", "combine_maskpt: must be >= 0"),
    ("combine_nlow", "1.5", "combine_nlow: expected an integer"),
    ("combine_nhigh", "many", "combine_nhigh: expected an integer"),
    ("combine_lthresh", "low", "combine_lthresh: expected a number or None"),
    ("combine_hthresh", "inf", "combine_hthresh: expected a finite number"),
    ("combine_grow", "-1", "combine_grow: must be >= 0"),
    ("combine_bufsize", "0", "combine_bufsize: must be > 0"),
    ("median", "maybe", "median: expected True or False"),
    ("median_newmasks", "2", "median_newmasks: expected True or False"),
    ("fillval", "zero", "fillval: expected a number"),
])
def test_invalid_values_in_a_cfg_name_file_and_parameter(tmp_path, key, value, message):
    path = tmp_path / "bad.cfg"
    path.write_text(astrodrizzle_cfg({key: value}))
    with pytest.raises(ParameterError) as err:
        read_config(path)
    assert str(err.value).startswith(f"{path}: {message}")


def test_unreadable_sources(tmp_path):
    with pytest.raises(InputError, match=r"nope.cfg: configuration file not found"):
        read_config(tmp_path / "nope.cfg")
    broken = tmp_path / "broken.cfg"
    broken.write_text("[STEP 4: CREATE MEDIAN IMAGE\nmedian = True\n")
    with pytest.raises(ParameterError, match=r"broken.cfg: not a valid .cfg file"):
        read_config(broken)
    with pytest.raises(ParameterError, match=r"configObj: expected None, a .cfg file name, a "
                                             r"dict or a ConfigObj, got int"):
        read_config(3)


def test_per_image_and_num_cores_values():
    settings = read_config(None).merged({"exptime": [10, "None", 30.5], "sky": "1 2 3",
                                         "num_cores": 0})
    assert settings.exptime == (10.0, None, 30.5)
    assert settings.sky == (1.0, 2.0, 3.0)
    assert settings.num_cores == 1
    for key, value, message in [
        ("exptime", [1, 0], "exptime: exposure times must be > 0, got 0"),
        ("readnoise", [-1], "readnoise: read noise must be >= 0"),
        ("sky", ["a"], "sky: expected numbers, got 'a'"),
        ("sky", 5, "sky: expected a list with one value per image"),
        ("num_cores", "two", "num_cores: expected an integer or None"),
    ]:
        with pytest.raises(ParameterError, match="inputDict: " + message):
            read_config(None).merged({key: value})


def test_output_root_follows_astrodrizzle():
    assert output_root("final") == "final"
    assert output_root("final_drz.fits") == "final"
    assert output_root("dir/final_drc.fits") == os.path.join("dir", "final")
    assert output_root("final.fits") == "final"
    assert output_root("") is None and output_root(None) is None


# ------------------------------------------------------------------------------------------
# writing


@pytest.mark.parametrize("values", [
    {},
    {"combine_type": "median", "combine_nhigh": 1, "combine_lthresh": -2.5},
    {"combine_type": "iminmed", "combine_nsigma": "3.5", "combine_grow": 2},
    {"combine_type": "imean", "median_newmasks": False, "combine_bufsize": 0.125,
     "combine_maskpt": 0.3},
    {"combine_type": "sum", "median": False, "fillval": "nan"},
])
def test_write_config_round_trips(tmp_path, values):
    params = validate(values)
    path = write_config(tmp_path / "out.cfg", params, input=["a_flt.fits", "b_flt.fits"])
    back = read_config(path)
    assert back.input == f"{os.path.abspath('a_flt.fits')}, {os.path.abspath('b_flt.fits')}"
    assert back.params.as_dict().keys() == params.as_dict().keys()
    for key, value in params.as_dict().items():
        got = back.params.as_dict()[key]
        assert got == value or (np.isnan(got) and np.isnan(value)), key
    raw = ConfigObj(str(path), interpolation=False)  # plain configobj reads it too
    assert raw["_task_name_"] in ("createMedian", "astrodrizzle")
    assert raw[STEP4]["combine_nsigma"] == " ".join(f"{n:g}" for n in params.combine_nsigma)


def test_write_config_layouts_and_aliases(tmp_path):
    text = config_text(validate(combine_type="median"))
    assert "_task_name_ = createMedian" in text and "output" not in text.split("[")[0]
    nhigh = spec("combine_nhigh")
    assert "\n# " + " ".join(nhigh.help.split()[:6]) in text  # each value's help above it
    text = config_text(validate(combine_type="average"), output="visit1")
    assert "_task_name_ = astrodrizzle" in text
    assert f"output = {os.path.abspath('visit1')}" in text  # no folder given: absolute names
    assert "output = visit1" in config_text(validate(), output="visit1", folder=".")
    assert "combine_type = mean\n" in text  # drizzlepac's spec has no 'average'
    assert "fillval" not in text
    assert "fillval = nan" in config_text(validate(fillval="nan"))
    with pytest.raises(ParameterError, match="createMedian layout cannot hold"):
        config_text(validate(combine_type="imean"), task="createMedian")
    path = tmp_path / "p.cfg"
    path.write_text("old contents\n")
    write_config(path, validate(combine_grow=3))
    assert read_config(path).params.combine_grow == 3
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_written_cfg_matches_drizzlepac_spec_when_importable(tmp_path):
    pytest.importorskip("drizzlepac")
    from stsci.tools import teal

    defaults = teal.load("createMedian", defaults=True)[STEP4]
    ours = {p.name: p.default for p in PARAMETERS if p.drizzlepac}
    assert set(ours) == {k for k in defaults if not k.startswith("_")}
    for name, default in ours.items():
        expected = defaults[name]
        assert validate({name: expected}) == validate({name: default}), name
    for values in ({}, {"combine_type": "imedian", "combine_nhigh": 1}):
        path = write_config(tmp_path / "x.cfg", validate(values), input="a_flt.fits")
        loaded = teal.load(str(path))
        assert validate({k: v for k, v in loaded[STEP4].items() if not k.startswith("_")}) \
            == validate(values)


# a Python with drizzlepac: this one when it has it (make test installs the extra)
DRIZZLEPAC_PYTHON = os.environ.get("MEDSTACK_DRIZZLEPAC_PYTHON") or (
    sys.executable if importlib.util.find_spec("drizzlepac") is not None else None)


@pytest.mark.skipif(not DRIZZLEPAC_PYTHON, reason="drizzlepac not installed (or set "
                    "MEDSTACK_DRIZZLEPAC_PYTHON to a Python with drizzlepac) to check written "
                    ".cfg files with drizzlepac's loader")
def test_drizzlepac_loads_written_cfg(tmp_path):
    cases = [{}, {"combine_type": "median", "combine_nhigh": 1, "combine_lthresh": -2.5},
             {"combine_type": "iminmed", "combine_nsigma": "3"}, {"median": False}]
    paths = [write_config(tmp_path / f"c{i}.cfg", validate(v), input="a_flt.fits, b_flt.fits",
                          output="final" if i % 2 else None) for i, v in enumerate(cases)]
    script = textwrap.dedent("""\
        import json, sys
        from stsci.tools import teal
        import drizzlepac  # noqa: F401 - registers its .cfgspc files
        out = []
        for path in sys.argv[1:]:
            c = teal.load(path)
            out.append({k: v for k, v in c["STEP 4: CREATE MEDIAN IMAGE"].items()
                        if not k.startswith("_")})
        print(json.dumps(out))
        """)
    run = subprocess.run([DRIZZLEPAC_PYTHON, "-c", script, *map(str, paths)],
                         capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)},
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    import json

    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    for values, got in zip(cases, loaded):
        assert validate(got) == validate(values)


# ------------------------------------------------------------------------------------------
# per-image tables


def test_read_table_csv_and_ecsv(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("sci,exptime,sky,readnoise\na_single_sci.fits,100,5.5,\n"
                   "sub/b_flt.fits,,6,4.5\n")
    table = read_table(csv)
    assert table.sci == (str(tmp_path / "a_single_sci.fits"), str(tmp_path / "sub/b_flt.fits"))
    assert table.wht is None
    assert table.exptime == (100.0, None) and table.sky == (5.5, 6.0)
    assert table.readnoise == (None, 4.5)
    ecsv = tmp_path / "t.ecsv"
    Table({"sci": ["a_single_sci.fits"], "wht": ["w.fits"], "sky": [1.25]}).write(ecsv)
    table = read_table(ecsv)
    assert table.wht == (str(tmp_path / "w.fits"),) and table.sky == (1.25,)
    assert table.exptime is None


def test_per_image_values_are_checked_only_where_minmed_uses_them(tmp_path):
    from medstack.config import per_image_values

    odd = [0, -1, "nan", None]
    assert per_image_values("exptime", odd, "median")[:2] == (0.0, -1.0)
    assert per_image_values("readnoise", [-2], "sum") == (-2.0,)
    with pytest.raises(ParameterError, match="exptime: exposure times must be > 0, got 0$"):
        per_image_values("exptime", odd, "minmed")
    with pytest.raises(ParameterError, match="readnoise: read noise must be >= 0, got -2"):
        per_image_values("readnoise", [-2])  # minmed unless told
    with pytest.raises(ParameterError, match="sky: expected numbers, got 'x'"):
        per_image_values("sky", ["x"], "median")  # not a number: refused for any type
    # the type a .cfg file names decides, whichever source holds the lists
    cfg = read_config({"combine_type": "median", "exptime": [0, 1]})
    assert cfg.exptime == (0.0, 1.0)
    assert cfg.merged({"readnoise": [-1, 0]}).readnoise == (-1.0, 0.0)
    with pytest.raises(ParameterError, match="configObj: exptime: exposure times must be > 0"):
        cfg.merged({"combine_type": "iminmed"})  # names where the list at fault came from
    table = tmp_path / "t.csv"
    table.write_text("sci,exptime\na.fits,0\n")
    assert read_table(table, "mean").exptime == (0.0,)


@pytest.mark.parametrize(("text", "message"), [
    ("sci,gain\na.fits,2\n", "unknown column 'gain'; valid columns: sci, wht, exptime, sky, "
                             "readnoise"),
    ("wht,sky\na.fits,2\n", "no 'sci' column"),
    ("sci,exptime\na.fits,0\n", "column exptime: exposure times must be > 0"),
    ("sci,sky\na.fits,lots\n", "column sky: expected numbers, got 'lots'"),
    ("sci\na.fits\na.fits\n", "row 2: .*a.fits appears more than once"),
])
def test_read_table_errors(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ParameterError, match=message):
        read_table(path)


# ------------------------------------------------------------------------------------------
# the command line


def test_cli_options_win_over_config(stack, tmp_path):
    cfg = tmp_path / "ad.cfg"
    cfg.write_text(astrodrizzle_cfg({"combine_type": "median", "combine_nhigh": "1"},
                                    input='"' + ", ".join(stack) + '"',
                                    output=str(tmp_path / "fromcfg")))
    assert main(["--config", str(cfg), "-q"]) == 0  # input and output from the file
    expected = median_image(stack, combine_type="median", combine_nhigh=1,
                            combine_maskpt=0.3).data
    assert same_bits(fits.getdata(tmp_path / "fromcfg_med.fits"), expected)
    assert main(["--config", str(cfg), *stack, "--combine-type", "mean", "-o",
                 str(tmp_path / "cli"), "-q"]) == 0
    expected = median_image(stack, combine_type="mean", combine_nhigh=1,
                            combine_maskpt=0.3).data
    assert same_bits(fits.getdata(tmp_path / "cli_med.fits"), expected)


def test_cli_write_config_round_trips(stack, tmp_path):
    cfg = tmp_path / "saved.cfg"
    argv = ["--combine-type", "imedian", "--combine-nhigh", "1", "--no-median-newmasks",
            "--combine-bufsize", "0.01"]
    assert main([*argv, "--write-config", str(cfg), "-q"]) == 0  # no INPUT: only writes
    assert not list(tmp_path.glob("*_med.fits"))
    assert read_config(cfg).params == validate(combine_type="imedian", combine_nhigh=1,
                                               median_newmasks=False, combine_bufsize=0.01)
    assert main([*stack, "--config", str(cfg), "-o", str(tmp_path / "a"), "-q"]) == 0
    assert main([*stack, *argv, "-o", str(tmp_path / "b"), "-q"]) == 0
    assert same_bits(fits.getdata(tmp_path / "a_med.fits"), fits.getdata(tmp_path / "b_med.fits"))
    # with INPUT it writes the file (input and output included) and runs
    assert main([*stack, "--combine-type", "sum", "--write-config", str(cfg), "-o",
                 str(tmp_path / "c"), "-q"]) == 0
    back = read_config(cfg)
    assert back.params.combine_type == "sum" and back.output == str(tmp_path / "c")
    assert back.input == ", ".join(stack)
    assert (tmp_path / "c_med.fits").exists()


def test_cli_config_errors_and_median_off(stack, tmp_path, capsys):
    bad = tmp_path / "bad.cfg"
    bad.write_text(astrodrizzle_cfg({"combine_type": "middle"}))
    assert main([*stack, "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"medstack: error: {bad}: combine_type: unknown value 'middle'")
    off = tmp_path / "off.cfg"
    off.write_text(astrodrizzle_cfg({"median": "False"}))
    assert main([*stack, "--config", str(off), "-o", str(tmp_path / "off")]) == 0
    assert "the median step is off" in capsys.readouterr().err
    assert not list(tmp_path.glob("*_med.fits"))


def test_cli_table_overrides_headers(stack, tmp_path):
    n = len(stack)
    table = tmp_path / "images.csv"
    rows = [f"{os.path.basename(s)},{50 + 10 * i},{1000.0 * (i + 1)},{2.5}"
            for i, s in enumerate(stack)]
    table.write_text("sci,exptime,sky,readnoise\n" + "\n".join(rows) + "\n")
    assert main(["--table", str(table), "-o", str(tmp_path / "t"), "-q"]) == 0
    exptime = [50.0 + 10 * i for i in range(n)]
    sky = [1000.0 * (i + 1) for i in range(n)]
    expected = median_image(stack, exptime=exptime, sky=sky, readnoise=[2.5] * n).data
    got = fits.getdata(tmp_path / "t_med.fits")
    assert same_bits(got, expected)
    assert not same_bits(got, median_image(stack).data)  # the headers were overridden
    assert main(["--table", str(table), *stack]) == 2


def test_cli_help_has_config_options_and_parameter_text(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--config FILE.cfg", "--write-config FILE", "--table FILE"):
        assert option in text
    for p in PARAMETERS:
        if p.name != "median":
            assert " ".join(p.help.split()) in text
    assert build_parser().parse_args(["--config", "x.cfg"]).config == "x.cfg"


def test_module_runs_as_a_script_with_config(stack, tmp_path):
    cfg = write_config(tmp_path / "x.cfg", validate(combine_type="median"),
                       input=", ".join(stack))
    run = subprocess.run([sys.executable, "-m", "medstack.cli", "--config", str(cfg), "-o",
                          str(tmp_path / "m"), "-q"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert same_bits(fits.getdata(tmp_path / "m_med.fits"),
                     median_image(stack, combine_type="median").data)


# ------------------------------------------------------------------------------------------
# one rule for relative names: relative to the file that names them


def _chdir_elsewhere(monkeypatch, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)


def test_cfg_names_are_relative_to_the_cfg(stack, tmp_path, monkeypatch):
    """input (names, globs, @lists) and output in a .cfg are found beside the .cfg, whatever
    the current directory; absolute names stay as they are."""
    folder = Path(stack[0]).parent
    (folder / "two.lst").write_text("img000_single_sci.fits\nimg001_single_sci.fits\n")
    _chdir_elsewhere(monkeypatch, tmp_path)
    for given, expected in [
        ("img000_single_sci.fits, img001_single_sci.fits", stack[:2]),
        ("img00[01]_single_sci.fits", stack[:2]),
        ("@two.lst", stack[:2]),
        (f"{stack[0]}, img001_single_sci.fits", stack[:2]),
    ]:
        cfg = folder / "task.cfg"
        cfg.write_text(astrodrizzle_cfg({"combine_type": "median"}, input=f'"{given}"',
                                        output="sub/visit"))
        settings = read_config(str(cfg))
        assert expand_inputs(settings.input) == expected, given
        assert settings.output == str(folder / "sub" / "visit")
    assert main(["--config", str(folder / "task.cfg"), "-o", str(tmp_path / "r"), "-q"]) == 0
    assert same_bits(fits.getdata(tmp_path / "r_med.fits"),
                     median_image(stack[:2], combine_type="median", combine_maskpt=0.3).data)


def test_table_names_are_relative_to_the_table(stack, tmp_path, monkeypatch):
    folder = Path(stack[0]).parent
    table = folder / "t.csv"
    table.write_text("sci,wht\nimg000_single_sci.fits,\nimg001_single_sci.fits,"
                     "img001_single_wht.fits\n")
    _chdir_elsewhere(monkeypatch, tmp_path)
    read = read_table(str(table))
    assert read.sci == (stack[0], stack[1])
    assert read.wht == (None, stack[1].replace("_sci", "_wht"))


def test_written_cfg_is_read_back_from_anywhere(stack, tmp_path, monkeypatch):
    """write_config writes names relative to its own folder (inside it) or absolute (outside),
    so the file finds the same inputs from any current directory."""
    folder = Path(stack[0]).parent
    monkeypatch.chdir(folder)
    inside = write_config(folder / "in.cfg", validate(), input="img000_single_sci.fits, "
                          "img001_single_sci.fits")
    assert 'input = "img000_single_sci.fits, img001_single_sci.fits"' in inside.read_text()
    (tmp_path / "cfgs").mkdir()
    outside = write_config(tmp_path / "cfgs" / "out.cfg", validate(), input=stack[:2])
    assert f'input = "{stack[0]}, {stack[1]}"' in outside.read_text()
    _chdir_elsewhere(monkeypatch, tmp_path)
    for cfg in (inside, outside):
        assert expand_inputs(read_config(str(cfg)).input) == stack[:2]
