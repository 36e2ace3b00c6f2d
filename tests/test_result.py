"""What a run returns: a MedianResult whose repr is one short line (the REPL stays readable)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from conftest import random_stack, write_stack

from medstack import createMedian, median_image


def _stack(tmp_path):
    sci, wht = random_stack(np.random.default_rng(4), 5, 36, 28)
    return write_stack(tmp_path, sci, wht)


def test_repr_is_one_short_line(tmp_path):
    names = _stack(tmp_path)
    result = median_image(names, tmp_path / "r", combine_type="median")
    text = repr(result)
    assert "\n" not in text and len(text) < 160
    assert text.startswith("<MedianResult 36x28, median, 5 images, path=")
    assert repr(str(tmp_path / "r_med.fits")) in text and text.endswith(" s>")
    # the header and the arrays are still there, as attributes
    assert isinstance(result.header, fits.Header) and len(result.header) > 20
    assert result.data.shape == (36, 28) and result.plan.n_images == 5


def test_repr_without_file_or_data(tmp_path):
    names = _stack(tmp_path)
    in_memory = repr(median_image(names))
    assert in_memory.startswith("<MedianResult 36x28, minmed, 5 images, no file, ")
    written = repr(median_image(names, tmp_path / "k", keep_data=False))
    assert ", data not kept, " in written and len(written) < 160


def test_createmedian_result_is_short_in_the_repl(tmp_path, monkeypatch):
    """>>> createMedian.median('*flt.fits') shows one line, not the header and the plan."""
    _stack(tmp_path)
    for name in ("img000", "img001", "img002", "img003", "img004"):
        (tmp_path / f"{name}_flt.fits").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    result = createMedian.median("img00*_flt.fits", combine_type="median")
    assert len(repr(result).splitlines()) == 1 and len(repr(result)) < 160


def test_seconds_leave_out_the_callers_before_commit(tmp_path, monkeypatch):
    """``before_commit`` is the caller's own work (the command saves its PNG there): its time
    is not the run's."""
    from types import SimpleNamespace

    from medstack.core import run as run_module

    sci, wht = random_stack(np.random.default_rng(2), 3, 40, 30)
    names = write_stack(tmp_path, sci, wht)
    clock = [1000.0]  # the run's clock: each reading 1 s later; the hook takes 500 s
    called = []

    def perf_counter():
        clock[0] += 1.0
        return clock[0]

    def slow(result):
        called.append(result.path)
        clock[0] += 500.0

    monkeypatch.setattr(run_module, "time", SimpleNamespace(perf_counter=perf_counter))
    result = median_image(names, tmp_path / "slow", before_commit=slow)
    assert len(called) == 1
    readings = clock[0] - 1000.0 - 500.0  # one second each
    # from the first reading to the last, less the hook's span (its 500 s and one reading)
    assert result.seconds == (readings - 1.0) - 1.0
    assert (tmp_path / "slow_med.fits").exists()
