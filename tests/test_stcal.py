"""medstack.stcal against stcal 1.20.0: its API, errors, weight threshold and install().

These tests need stcal, jwst and romancal (``pip install ".[pipelines]"``, which ``make test``
installs); they skip without them, except where ``MEDSTACK_REQUIRE_PIPELINES=1`` (CI) makes
that an error.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

if os.environ.get("MEDSTACK_REQUIRE_PIPELINES") == "1":
    import jwst  # noqa: F401  (CI: these tests must run, not skip)
    import romancal  # noqa: F401
    import stcal  # noqa: F401
stcal_median = pytest.importorskip("stcal.outlier_detection.median")
stcal_utils = pytest.importorskip("stcal.outlier_detection.utils")

import medstack.stcal as ms  # noqa: E402

#: stcal's own objects, bound before any test installs medstack's.
STCAL = {"MedianComputer": stcal_median.MedianComputer, "nanmedian3D": stcal_median.nanmedian3D,
         "compute_weight_threshold": stcal_utils.compute_weight_threshold}
OURS = {"MedianComputer": ms.MedianComputer, "nanmedian3D": ms.nanmedian3D,
        "compute_weight_threshold": ms.compute_weight_threshold}


@pytest.fixture
def restore():
    """install() state is process-wide: every test leaves it uninstalled."""
    ms.uninstall()
    yield
    ms.uninstall()


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


# ------------------------------------------------------------------------------------------
# compute_weight_threshold


def _weights():
    rng = np.random.default_rng(5)
    w = rng.gamma(4.0, 0.5, (300, 200)).astype(np.float32)
    w[rng.random(w.shape) < 0.2] = 0
    edge = w.copy()
    edge[:3] = np.nan
    edge[3, :5] = [np.inf, -np.inf, 1e30, 1e-30, -5.0]
    cube = rng.normal(10, 2, (4, 50, 60))
    cube[1, 10:20] = 0
    tied = np.ones((40, 40), np.float32)
    tied[0, 0] = 1e6
    return {"random": w, "edges": edge, "float64 cube": cube, "ties and outlier": tied,
            "all zero": np.zeros((8, 8), np.float32), "all nan": np.full((8, 8), np.nan),
            "one value": np.array([[0.0, 3.0]]), "int": rng.integers(0, 9, (30, 30))}


@pytest.mark.parametrize("name", sorted(_weights()))
@pytest.mark.parametrize("maskpt", [0.7, 0.3, 1.0])
def test_weight_threshold_bit_identical(name, maskpt):
    weight = _weights()[name]
    theirs = np.float64(STCAL["compute_weight_threshold"](weight.copy(), maskpt))
    ours = np.float64(ms.compute_weight_threshold(weight.copy(), maskpt))
    assert ours.view(np.uint64) == theirs.view(np.uint64), (ours, theirs)
    assert type(ours) is type(theirs)


# ------------------------------------------------------------------------------------------
# MedianComputer: behaviour and errors as stcal's


def _frames(n=5, shape=(6, 7), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.normal(0, 1, (n, *shape)).astype(dtype)
    frames[rng.random(frames.shape) < 0.3] = np.nan
    return frames


@pytest.mark.parametrize("in_memory", [True, False])
def test_same_median_and_attributes(tmp_path, in_memory):
    frames = _frames()
    results = []
    for cls in (STCAL["MedianComputer"], ms.MedianComputer):
        mc = cls(frames.shape, in_memory, buffer_size=None, dtype="float32", tempdir=str(tmp_path))
        assert (mc.full_shape, mc.in_memory, mc.buffer_size, mc.dtype) == (
            frames.shape, in_memory, 0, "float32")
        for i, f in enumerate(frames):
            mc.append(f, i)
        results.append(mc.evaluate())
    assert results[1].dtype == results[0].dtype
    assert np.array_equal(_bits(results[1]), _bits(results[0]))
    assert list(tmp_path.iterdir()) == []


def test_in_memory_needs_idx():
    for cls in (STCAL["MedianComputer"], ms.MedianComputer):
        mc = cls((2, 3, 4), True)
        with pytest.raises(ValueError, match="Index must be provided"):
            mc.append(np.zeros((3, 4), np.float32))


def test_in_memory_takes_what_numpy_assigns():
    """stcal's cube casts another dtype and broadcasts a row: the same numbers come out."""
    row = np.arange(4, dtype=np.float64) + 0.1
    results = []
    for cls in (STCAL["MedianComputer"], ms.MedianComputer):
        mc = cls((3, 3, 4), True)
        mc.append(row, 0)
        mc.append(np.full((3, 4), 7.3), 1)
        mc.append(np.ones((3, 4), np.int16), 2)
        results.append(mc.evaluate())
    assert np.array_equal(_bits(results[1]), _bits(results[0]))


@pytest.mark.parametrize("cls", ["stcal", "medstack"])
def test_wrong_shape_or_dtype_raise_as_stcal(tmp_path, cls):
    mcls = STCAL["MedianComputer"] if cls == "stcal" else ms.MedianComputer
    mc = mcls((2, 3, 4), True)
    with pytest.raises(ValueError):
        mc.append(np.zeros((4, 3), np.float32), 0)
    mc = mcls((2, 3, 4), False, tempdir=str(tmp_path))
    with pytest.raises(ValueError, match="shape"):
        mc.append(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        mc.append(np.zeros((3, 4), np.float64))
    with pytest.raises(ValueError, match="three-dimensional"):
        mcls((3, 4), False, tempdir=str(tmp_path))
    del mc
    gc.collect()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cls", ["stcal", "medstack"])
def test_too_many_frames_raise_index_error(tmp_path, cls):
    mcls = STCAL["MedianComputer"] if cls == "stcal" else ms.MedianComputer
    frame = np.zeros((4, 3), np.float32)
    mc = mcls((2, 4, 3), True)
    with pytest.raises(IndexError):
        mc.append(frame, 2)
    mc = mcls((2, 4, 3), False, tempdir=str(tmp_path))  # stcal: 2 sections of 2 rows
    mc.append(frame)
    mc.append(frame)
    with pytest.raises(IndexError, match="Too many calls to add_image"):
        mc.append(frame)
    assert np.array_equal(mc.evaluate(), frame)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cls", ["stcal", "medstack"])
def test_missing_or_bad_tempdir_raise_as_stcal(tmp_path, cls):
    mcls = STCAL["MedianComputer"] if cls == "stcal" else ms.MedianComputer
    with pytest.raises(FileNotFoundError):
        mcls((2, 3, 4), False, tempdir=str(tmp_path / "missing"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        mcls((2, 3, 4), False, tempdir=str(tmp_path / "file"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


_FULL_DISK = """
import json, resource, signal, sys, numpy as np
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (50000, 50000))   # bytes per file: a full disk
import stcal.outlier_detection.median as sm, medstack.stcal as ms
out = {}
for name, cls in (("stcal", sm.MedianComputer), ("medstack", ms.MedianComputer)):
    mc = cls((8, 256, 256), False, tempdir=sys.argv[1] + "/" + name)
    try:
        for i in range(8):
            mc.append(np.full((256, 256), i, np.float32))
        mc.evaluate()
        out[name] = None
    except Exception as err:
        out[name] = [type(err).__name__, isinstance(err, OSError)]
    del mc
print(json.dumps(out))
"""


def test_full_temp_folder_raises_oserror_and_leaves_nothing(tmp_path):
    """A write that fails (a per-file size limit stands in for a full disk): OSError, as
    stcal's ``tofile``, and no file left in ``tempdir``."""
    for name in ("stcal", "medstack"):
        (tmp_path / name).mkdir()
    run = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path)], capture_output=True,
                         text=True, check=True)
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["stcal"] is not None and out["stcal"][1]
    assert out["medstack"] is not None and out["medstack"][1]
    assert list((tmp_path / "medstack").iterdir()) == []


# ------------------------------------------------------------------------------------------
# install(), uninstall(), installed()

_TARGETS = {
    "stcal.outlier_detection.median": ("MedianComputer", "nanmedian3D"),
    "stcal.outlier_detection.utils": ("compute_weight_threshold",),
    "jwst.outlier_detection.utils": ("MedianComputer", "nanmedian3D", "compute_weight_threshold"),
    "jwst.outlier_detection.tso": ("nanmedian3D", "compute_weight_threshold"),
    "romancal.outlier_detection.outlier_detection": ("MedianComputer", "compute_weight_threshold"),
}


def _state(want: str) -> None:
    for module, names in _TARGETS.items():
        mod = sys.modules[module]
        for name in names:
            expected = (OURS if want == "ours" else STCAL)[name]
            assert getattr(mod, name) is expected, (module, name, want)


def test_install_after_import_and_uninstall_restores(restore):
    import importlib

    for module in _TARGETS:
        importlib.import_module(module)
    _state("stcal")
    assert not ms.installed()
    ms.install()
    ms.install()  # idempotent
    assert ms.installed()
    _state("ours")
    ms.uninstall()
    assert not ms.installed()
    _state("stcal")
    ms.uninstall()
    _state("stcal")


_BEFORE_IMPORT = """
import sys, importlib
import medstack.stcal as ms
assert not [m for m in sys.modules if m.split(".")[0] in ("stcal", "jwst", "romancal")]
ms.install()
targets = {targets!r}
for module in reversed(list(targets)):   # jwst and romancal first: they import stcal's
    importlib.import_module(module)
ours = dict(MedianComputer=ms.MedianComputer, nanmedian3D=ms.nanmedian3D,
            compute_weight_threshold=ms.compute_weight_threshold)
for module, names in targets.items():
    for name in names:
        assert getattr(sys.modules[module], name) is ours[name], (module, name)
ms.uninstall()
import stcal.outlier_detection.median as sm, stcal.outlier_detection.utils as su
home = dict(MedianComputer=sm.MedianComputer, nanmedian3D=sm.nanmedian3D,
            compute_weight_threshold=su.compute_weight_threshold)
assert home["MedianComputer"].__module__ == "stcal.outlier_detection.median"
assert home["compute_weight_threshold"].__module__ == "stcal.outlier_detection.utils"
for module, names in targets.items():
    for name in names:
        assert getattr(sys.modules[module], name) is home[name], (module, name)
print("ok")
"""


def test_install_before_import_and_uninstall_restores():
    code = _BEFORE_IMPORT.format(targets=_TARGETS)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "ok"


def test_importing_medstack_imports_no_pipeline():
    code = textwrap.dedent("""
        import sys
        import medstack, medstack.stcal
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("stcal", "jwst", "romancal")))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_installed_names_reach_the_callers(restore):
    """jwst's coron path calls ``nanmedian3D`` through its utils: the installed one answers,
    with the same bits."""
    from types import SimpleNamespace

    import jwst.outlier_detection.utils as ju

    frames = _frames(n=6, shape=(5, 8))
    wht = np.random.default_rng(1).uniform(0, 2, frames.shape)
    cube = SimpleNamespace(data=frames, wht=wht)  # what create_cube_median reads
    expected = ju.create_cube_median(cube, 0.7)
    ms.install()
    assert ju.nanmedian3D is ms.nanmedian3D
    got = ju.create_cube_median(cube, 0.7)
    assert np.array_equal(_bits(got), _bits(expected))


# ------------------------------------------------------------------------------------------
# documented deviations (docs/deviations.md)


def test_fewer_frames_than_full_shape(tmp_path):
    """Fewer appends than ``full_shape[0]``: the median of the frames appended, in memory as
    stcal gives on disk (stcal in memory medians uninitialised memory there)."""
    frames = _frames(n=6)
    theirs = STCAL["MedianComputer"]((9, *frames.shape[1:]), False, tempdir=str(tmp_path))
    for f in frames:
        theirs.append(f)
    expected = theirs.evaluate()
    assert np.array_equal(_bits(expected), _bits(STCAL["nanmedian3D"](frames.copy())))
    for in_memory in (True, False):
        ours = ms.MedianComputer((9, *frames.shape[1:]), in_memory, tempdir=str(tmp_path))
        for i, f in enumerate(frames):
            ours.append(f, i)
        assert np.array_equal(_bits(ours.evaluate()), _bits(expected))
    none = ms.MedianComputer((3, 2, 2), True)
    assert np.isnan(none.evaluate()).all()


def test_idx_twice_is_an_error():
    """stcal's cube silently replaces the frame at an ``idx`` given twice; medstack refuses."""
    frame = np.ones((3, 4), np.float32)
    theirs = STCAL["MedianComputer"]((2, 3, 4), True)
    theirs.append(frame, 0)
    theirs.append(frame * 2, 0)
    ours = ms.MedianComputer((2, 3, 4), True)
    ours.append(frame, 0)
    with pytest.raises(ValueError, match="idx 0"):
        ours.append(frame * 2, -2)
    ours.append(frame * 3, 1)
    assert np.array_equal(ours.evaluate(), frame * 2)


def test_dtypes_the_frames_door_does_not_take_follow_stcal_through_numpy():
    """A float16 stack (stcal accepts any dtype) goes through numpy's nanmedian row by row, as
    stcal's does: the same bits, in memory and through nanmedian3D."""
    rng = np.random.default_rng(16)
    cube = rng.normal(0, 100, (7, 9, 11)).astype(np.float16)
    cube[rng.random(cube.shape) < 0.3] = np.nan
    cube[:, 0, 0] = np.nan  # an all-NaN pixel
    results = []
    for computer in (STCAL["MedianComputer"], ms.MedianComputer):
        median = computer(cube.shape, True, dtype="float16")
        for i, frame in enumerate(cube):
            median.append(frame, i)
        results.append(median.evaluate())
    assert results[0].dtype == results[1].dtype == np.float16
    assert np.array_equal(results[0].view(np.uint16), results[1].view(np.uint16))
    ours = ms.nanmedian3D(cube.copy())
    assert np.array_equal(ours.view(np.uint16), STCAL["nanmedian3D"](cube.copy()).view(np.uint16))
