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
            text = o.cli_help or o.help
            assert action.help.startswith(text[:40].replace("`workers`", "--workers"))
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


def test_flags_take_what_python_takes_as_true_or_false_but_not_text():
    assert run_options(save_maps=1).save_maps is True
    assert run_options(keep_data=0, keep_maps=None).keep_data is False
    import numpy as np

    assert run_options(quicklook=np.bool_(True)).quicklook is True
    with pytest.raises(ParameterError, match="keep_data: expected True or False, got str"):
        run_options(keep_data="False")  # would be true


def test_a_scheduler_may_be_path_like():
    from pathlib import PurePosixPath

    assert run_options(scheduler=PurePosixPath("dask-local")).scheduler == "dask-local"


def test_run_options_fields_are_the_declaration():
    """The written-out fields (what mypy sees) have the names and defaults RUN_OPTIONS
    declares, in its order, and a type that holds what each kind's check returns."""
    import collections.abc
    import typing
    from dataclasses import fields

    hints = typing.get_type_hints(RunOptions)
    types = {"workers": int | None, "str": str | None, "seconds": float, "size": int | None,
             "bool": bool, "choice": str, "object": typing.Any}
    assert [f.name for f in fields(RunOptions)] == [o.name for o in RUN_OPTIONS]
    for f, o in zip(fields(RunOptions), RUN_OPTIONS):
        assert f.default == o.default, o.name
        if o.kind == "callable":
            call, none = typing.get_args(hints[f.name])
            assert typing.get_origin(call) is collections.abc.Callable and none is type(None)
        else:
            assert hints[f.name] == types[o.kind], o.name


def test_run_options_check_themselves_when_made():
    assert RunOptions(max_memory="1KiB", workers=2).max_memory == 1024
    with pytest.raises(ParameterError, match="kernel: unknown value 'gpu'"):
        RunOptions(kernel="gpu")
    with pytest.raises(ParameterError, match="connect_timeout: expected a number of seconds"):
        RunOptions(connect_timeout=float("inf"))


def test_make_executor_and_run_take_options(tmp_path):
    import numpy as np
    from conftest import random_stack, same_bits, write_stack

    from medstack.api import make_executor
    from medstack.core.plan import prepare
    from medstack.core.run import run
    from medstack.io.inputs import open_inputs
    from medstack.params import validate

    sci, wht = random_stack(np.random.default_rng(2), 3, 20, 17)
    plan = prepare(open_inputs(write_stack(tmp_path, sci, wht)), validate())
    reference = run(plan, make_executor(run_options(workers=2)), run_options(kernel="reference"))
    by_default = run(plan, make_executor())
    assert same_bits(reference.data, by_default.data)


def test_docstring_keeps_names_as_they_are_spelled():
    """Each entry starts with its help text: a sentence with a capital, but a name
    (progress(done, total), before_commit(result)) as it is spelled."""
    doc = " ".join(median_image.__doc__.split())
    for o in RUN_OPTIONS:
        first = o.help.split(" ", 1)[0]
        name = "(" in first or "_" in first
        start = " ".join(o.help.split()[:4])
        assert f"{o.name} : {o.doc_type} {start if name else start[0].upper() + start[1:]}" in doc
