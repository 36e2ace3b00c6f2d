"""The compiled kernels: built from ``_fast.c`` by the installation or by ``medstack-compile``,
loaded without compiling anything, and bit-identical to the reference kernels."""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_stack


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_installation_built_the_library():
    from medstack.kernels import _build, fast_unavailable
    from medstack.kernels._library import PROTOTYPES

    assert fast_unavailable() is None
    path = _build.library_path()
    assert path is not None
    lib = ctypes.CDLL(str(path))
    for name in PROTOTYPES:
        assert getattr(lib, name)  # every kernel the module calls is exported


def _c_prototypes() -> dict[str, str]:
    """Every function ``_fast.c`` exports (``int medstack_...(...) {``), also those a macro
    such as ``FOOTPRINT_KERNEL(T, SFX)`` defines per instance: its parameter list."""
    from medstack.kernels import _build

    text = _build.SOURCE.read_text()
    for macro, params, body in re.findall(r"^#define (\w+)\(([^)]*)\)((?:.*\\\n)+.*)", text,
                                          flags=re.MULTILINE):
        for args in re.findall(rf"^{macro}\(([^)]*)\)", text, flags=re.MULTILINE):
            expanded = body.replace("\\\n", "\n")
            for param, arg in zip(params.split(","), args.split(",")):
                expanded = re.sub(rf"\b{param.strip()}\b", arg.strip(), expanded)
            text += expanded.replace("##", "")
    found = re.findall(r"^(?:KERNEL )?int (medstack_\w+)\(([^)]*)\)\s*\{", text,
                       flags=re.MULTILINE)
    return {name: " ".join(params.split()) for name, params in found}


def test_each_kernel_is_declared_as_the_c_source_declares_it():
    """The Python declaration of every kernel (from which its ctypes argument types and each
    call's order are built) has the C prototype's names, types, const and order."""
    from medstack.kernels._library import PROTOTYPES, parse_parameters

    in_c = _c_prototypes()
    assert len(in_c) >= 11 and set(in_c) == set(PROTOTYPES)
    for name, params in in_c.items():
        assert parse_parameters(params) == parse_parameters(PROTOTYPES[name]), name
    # what the comparison catches: two arguments of one type swapped, a const dropped
    swapped = in_c["medstack_sum"].replace("i64 p_lo, i64 p_hi", "i64 p_hi, i64 p_lo")
    assert parse_parameters(swapped) != parse_parameters(PROTOTYPES["medstack_sum"])
    writable = in_c["medstack_sum"].replace("const uint8_t *ss", "uint8_t *ss")
    assert parse_parameters(writable) != parse_parameters(PROTOTYPES["medstack_sum"])
    with pytest.raises(ValueError, match="unsupported C parameter: 'long n'"):
        parse_parameters("const float *v, long n")


def test_a_kernel_call_names_every_argument_and_checks_every_array():
    from medstack.kernels import fast

    stack = fast._planes(np.array([[[1.0, np.nan, np.inf]]], np.float32))
    args = dict(sp=stack.ptrs, ss=stack.swaps, n=1, p_lo=0, p_hi=3)
    counts = np.zeros(1, np.int64)
    fast._call("medstack_count_nonfinite", **args, counts=counts)
    assert counts.tolist() == [2]
    with pytest.raises(TypeError, match="medstack_count_nonfinite: missing argument 'counts'"):
        fast._call("medstack_count_nonfinite", **args)
    with pytest.raises(TypeError, match=r"unexpected arguments \['count'\]"):
        fast._call("medstack_count_nonfinite", **args, counts=counts, count=counts)
    with pytest.raises(TypeError, match="counts: a int32 array; expected a C-contiguous, "
                                        "writable int64 array"):
        fast._call("medstack_count_nonfinite", **args, counts=np.zeros(1, np.int32))
    counts.flags.writeable = False
    with pytest.raises(TypeError, match="counts: a read-only int64 array"):
        fast._call("medstack_count_nonfinite", **args, counts=counts)
    with pytest.raises(TypeError, match="n is a int, not an array"):
        fast._call("medstack_count_nonfinite", **{**args, "n": counts}, counts=counts)


def test_a_library_built_by_build_gives_the_reference_bits(tmp_path, monkeypatch):
    from medstack.kernels import CombineSpec, ImageScalars, _build, combine_section

    path = _build.build(tmp_path)
    assert path.parent == tmp_path and path.name.startswith("_fast.")
    assert not [p for p in tmp_path.iterdir() if p != path]  # no temporary left behind
    import medstack.kernels

    monkeypatch.delitem(sys.modules, "medstack.kernels.fast", raising=False)
    monkeypatch.delattr(medstack.kernels, "fast", raising=False)
    monkeypatch.setattr(_build, "library_path", lambda: path)
    from medstack.kernels import fast

    assert fast._lib._name == str(path)
    sci, wht = random_stack(np.random.default_rng(9), 5, 33, 29)
    scalars = ImageScalars.of([100.0] * 5, [1.0] * 5, [4.0] * 5)
    for kind in ("minmed", "median", "mean", "sum"):
        spec = CombineSpec(kind=kind)
        thresholds = None if kind == "sum" else np.full(5, 0.3)
        got = [combine_section(sci, wht, spec, thresholds=thresholds, scalars=scalars,
                               kernel=k) for k in ("fast", "reference")]
        assert got[0].median.tobytes() == got[1].median.tobytes(), kind
        assert np.array_equal(got[0].ngood, got[1].ngood), kind


def test_a_library_built_from_another_source_is_refused(tmp_path, monkeypatch):
    """A library whose recorded source digest is not that of _fast.c (an old build after the
    source changed, whose functions could take other arguments) is not loaded."""
    import medstack.kernels
    from medstack.kernels import _build, choose_kernel, fast_unavailable

    stale = _build.build(tmp_path, extra=['-DMEDSTACK_SOURCE_SHA256="0123"', "-w"])
    monkeypatch.delitem(sys.modules, "medstack.kernels.fast", raising=False)
    monkeypatch.delattr(medstack.kernels, "fast", raising=False)
    monkeypatch.setattr(_build, "library_path", lambda: stale)
    why = fast_unavailable()
    assert why == (f"{stale}: built from another version of _fast.c; run medstack-compile "
                   "--force to rebuild it")
    assert choose_kernel("auto").name == "reference"
    assert ctypes.CDLL(str(stale)).medstack_source_sha256  # it does load as a library


def test_compile_checks_the_library_that_is_there():
    from medstack.kernels import _build

    before = _digest(_build.library_path())
    done = subprocess.run([sys.executable, "-m", "medstack.extras.compile"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == (f"medstack kernels: {_build.library_path()} (present); 8 "
                                   "combine runs and median and minmed of 2-17 images checked: "
                                   "the same bits as the reference kernels")
    assert done.stderr == ""
    assert _digest(_build.library_path()) == before  # not rebuilt


@pytest.mark.parametrize("cc", ["false", "medstack-no-such-compiler"])
def test_a_failed_build_says_so_and_keeps_the_library(cc):
    from medstack.kernels import _build

    path = _build.library_path()
    before = _digest(path)
    done = subprocess.run([sys.executable, "-m", "medstack.extras.compile", "--force"],
                          env={**os.environ, "CC": cc}, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stdout == ""
    line = done.stderr.strip()
    assert "\n" not in line
    if cc == "false":
        assert line == "medstack-compile: the C compiler failed (false): exit status 1"
    else:
        assert line.startswith("medstack-compile: cannot build the kernels: ")
        assert cc in line
    assert _build.library_path() == path and _digest(path) == before
    assert not list(path.parent.glob("._fast-*"))  # no temporary left behind


def _runtime(name: str) -> str | None:
    """The compiler's sanitizer runtime library ``name`` (e.g. libasan.so), or None."""
    from medstack.kernels import _build

    try:
        found = subprocess.run([*_build.compiler(), f"-print-file-name={name}"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return found if os.path.isabs(found) and os.path.exists(found) else None


#: Runs pytest with the kernels loaded from the library named by argv[1].
_WITH_LIBRARY = (
    "import sys\n"
    "from pathlib import Path\n"
    "from medstack.kernels import _build\n"
    "_build.library_path = lambda: Path(sys.argv[1])\n"
    "from medstack.kernels import fast\n"
    "assert fast._lib._name == sys.argv[1], fast._lib._name\n"
    "import pytest\n"
    "sys.exit(pytest.main(sys.argv[2:]))\n"
)


def test_the_kernels_are_memory_safe(tmp_path):
    """The kernel and property tests pass against a build of the library with
    AddressSanitizer and UndefinedBehaviorSanitizer, which stop at the first out-of-bounds
    access, use of freed memory or undefined operation."""
    from pathlib import Path

    from medstack.kernels import _build

    runtimes = [_runtime("libasan.so"), _runtime("libubsan.so")]
    if None in runtimes:
        pytest.skip("the C compiler has no AddressSanitizer/UBSan runtime")
    try:
        library = _build.build(tmp_path, extra=["-fsanitize=address,undefined",
                                                "-fno-sanitize-recover=all", "-g"])
    except subprocess.CalledProcessError as err:
        pytest.skip(f"no sanitizer build: {err.stderr.strip()[:200]}")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "LD_PRELOAD": ":".join(runtimes),
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    done = subprocess.run([sys.executable, "-c", _WITH_LIBRARY, str(library), "-q", "-x",
                           "-p", "no:cacheprovider", "tests/test_fast.py", "tests/test_kernels.py",
                           "tests/test_properties.py", "--deselect",
                           "tests/test_kernels.py::test_the_library_is_found_beside_its_source"],
                          cwd=root, env=env, capture_output=True, text=True)
    tail = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, tail
    assert " passed" in done.stdout and "ERROR: AddressSanitizer" not in tail


def test_the_kernel_flags_undo_pythons_own():
    """setuptools compiles the library with Python's build flags first, then the kernels'
    (kernels/_build.CFLAGS): every one of Python's that changes the kernels' code (-fwrapv
    kept gcc from vectorising them, 2-2.5x slower) is undone by a later one."""
    import sysconfig

    from medstack.kernels import _build

    undo = {"-fwrapv": "-fno-wrapv", "-fno-strict-aliasing": "-fstrict-aliasing",
            "-ffast-math": "-fno-fast-math", "-ffp-contract=fast": "-ffp-contract=off",
            "-ftrapping-math": "-fno-trapping-math", "-fmath-errno": "-fno-math-errno"}
    assert "-O3" in _build.CFLAGS
    for flag, counter in undo.items():
        assert counter in _build.CFLAGS, flag
    python = (sysconfig.get_config_var("CFLAGS") or "").split()
    for flag in python:
        if flag in undo:
            assert undo[flag] in _build.CFLAGS, flag
