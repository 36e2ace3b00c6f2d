"""The run options are declared once (medstack.options.RUN_OPTIONS): the API's keywords, the
command line's "running" flags and their help, the docs and RunOptions all come from it."""

from __future__ import annotations

import inspect

import pytest

from medstack.api import median_image
from medstack.cli import build_parser
from medstack.errors import ParameterError
from medstack.options import KERNEL_NAMES, RUN_OPTIONS, RunOptions, run_options

PER_IMAGE = ("weights", "exptime", "sky", "readnoise")


def test_median_image_keywords_are_the_spec():
    sig = inspect.signature(median_image)
    keywords = [p for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY
                and p.name not in PER_IMAGE]
    assert [p.name for p in keywords] == [o.name for o in RUN_OPTIONS]
    for p, o in zip(keywords, RUN_OPTIONS):
        assert p.default == o.default, o.name


def test_median_image_docstring_documents_every_option_from_the_spec():
    doc = median_image.__doc__
    for o in RUN_OPTIONS:
        assert f"    {o.name} : {o.doc_type}\n" in doc, o.name
    assert "%(" not in doc


def test_the_command_line_flags_come_from_the_spec():
    actions = {a.dest: a for a in build_parser()._actions}
    for o in RUN_OPTIONS:
        if o.option is None:
            assert o.name not in actions or o.name == "progress", o.name
            continue
        action = actions[o.name]
        assert action.option_strings == [o.option]
        if o.hidden:
            assert action.help == "==SUPPRESS=="
        else:
            assert action.help.startswith(o.help[:40].replace("`workers`", "--workers"))
        if o.kind != "bool":
            assert action.default == o.default
            assert action.choices == o.choices


def test_kernel_names_are_the_kernels():
    from medstack.kernels import KERNELS

    assert KERNEL_NAMES == ("auto", *KERNELS)


def test_defaults_and_sizes():
    o = run_options()
    assert o == RunOptions()
    assert (o.workers, o.kernel, o.keep_data, o.max_memory, o.connect_timeout) == (
        None, "auto", True, None, 10.0)
    assert run_options(max_memory="2GiB").max_memory == 2 * 1024**3
    assert run_options(max_memory=1000).max_memory == 1000
    assert run_options({"workers": 3}, workers=2).workers == 2  # keywords win
    assert not o.wants_maps
    assert run_options(save_maps=True).wants_maps
    assert not run_options(save_maps=True, keep_data=False).wants_maps


@pytest.mark.parametrize("given, fragment", [
    ({"workers": 0}, "workers: must be >= 1, got 0"),
    ({"workers": 1.5}, "workers: expected a whole number >= 1 or None, got float 1.5"),
    ({"workers": True}, "workers: expected a whole number >= 1 or None"),
    ({"kernel": "gpu"}, "kernel: unknown value 'gpu'; choose one of: auto, fast, reference"),
    ({"progress": 3}, "progress: expected a callable progress(done, total) or None, got int 3"),
    ({"before_commit": "x"}, "before_commit: expected a callable before_commit(result)"),
    ({"connect_timeout": 0}, "connect_timeout: expected a number of seconds > 0, got 0"),
    ({"connect_timeout": "5"}, "connect_timeout: expected a number of seconds > 0, got '5'"),
    ({"max_memory": "lots"}, "max_memory:"),
    ({"save_maps": "yes"}, "save_maps: expected True or False, got str 'yes'"),
    ({"scheduler": 5}, "scheduler: expected a str or None, got int 5"),
    ({"bufsize": 1}, "unknown run option 'bufsize'; valid: save_maps, keep_data"),
])
def test_bad_values_name_the_option(given, fragment):
    with pytest.raises(ParameterError) as err:
        run_options(given)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_replace_checks_again():
    o = run_options(workers=2)
    assert o.replace(keep_data=False).keep_data is False
    assert o.replace(keep_data=False).workers == 2
    with pytest.raises(ParameterError, match="workers: must be >= 1"):
        o.replace(workers=0)


def test_median_image_checks_options_before_opening_anything(tmp_path):
    missing = str(tmp_path / "nothing_single_sci.fits")
    with pytest.raises(ParameterError, match="kernel: unknown value"):
        median_image(missing, kernel="gpu")
    with pytest.raises(ParameterError, match="max_memory"):
        median_image(missing, max_memory="-1")
