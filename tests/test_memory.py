"""The memory model and the plan that keeps a run within ``max_memory``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medstack.core.memory import (
    WEIGHT_CHUNK_BYTES,
    plan_memory,
    section_bytes,
    weight_chunk_rows,
    weight_pass_bytes,
)
from medstack.core.sections import section_rows
from medstack.errors import ParameterError

MiB = 1 << 20


@pytest.mark.parametrize("shape,bufsize,grow", [((4096, 4096), 1, 1), ((1000, 333), 0.01, 2),
                                                ((50, 4096), 16, 0), ((7, 100), 0.0001, 5)])
def test_without_a_budget_the_rows_are_drizzlepacs(shape, bufsize, grow):
    plan = plan_memory(10, shape, workers=2, grow=grow, bufsize_bytes=int(bufsize * MiB))
    assert plan.section_rows == section_rows(*shape, int(bufsize * MiB), grow)
    assert (plan.workers, plan.in_flight) == (2, 3)


def test_a_budget_gives_the_most_rows_that_fit():
    n, shape = 120, (1024, 1024)
    plan = plan_memory(n, shape, workers=2, max_memory_bytes=48 * MiB)
    assert plan.peak_bytes <= 48 * MiB
    one_more = plan.in_flight * section_bytes(n, plan.section_rows + 1, shape[1])
    assert one_more > 48 * MiB
    assert plan.section_rows == (48 * MiB) // (3 * section_bytes(n, 1, 1024))  # 15 rows


def test_the_per_input_cap_still_holds_under_a_budget():
    plan = plan_memory(4, (4096, 4096), workers=2, bufsize_bytes=MiB, max_memory_bytes=2 << 30)
    assert plan.section_rows == 64  # 1 MiB of float32 rows at nx = 4096


def test_fewer_sections_in_flight_before_giving_up():
    n, nx = 1500, 1024
    one_row = section_bytes(n, 1, nx)
    plan = plan_memory(n, (1024, nx), workers=4, grow=1, max_memory_bytes=4 * one_row)
    assert (plan.in_flight, plan.workers, plan.section_rows) == (1, 1, 4)
    assert plan.peak_bytes <= 4 * one_row


def test_a_budget_too_small_names_the_minimum():
    n, nx = 100, 1000
    need = 3 * section_bytes(n, 1, nx)  # one section of 2·grow + 1 = 3 rows
    with pytest.raises(ParameterError, match=rf"max_memory: 1 MiB is too small for 100 inputs "
                                             rf"of 500x1000; it needs at least "
                                             rf"{need / MiB:.4g} MiB"):
        plan_memory(n, (500, nx), workers=2, grow=1, max_memory_bytes=MiB)
    assert plan_memory(n, (500, nx), workers=2, grow=1, max_memory_bytes=need).section_rows == 3
    with pytest.raises(ParameterError, match="too small"):  # the kept median does not fit
        plan_memory(2, (4096, 4096), workers=1, max_memory_bytes=32 * MiB, keep_data=True)


def test_the_weight_pass_is_never_the_peak():
    for rows in (1, 7, 64, 128, 4096):
        assert weight_pass_bytes(50, 4096, rows) <= section_bytes(50, rows, 4096)
    assert weight_chunk_rows(1024, 4096) * 4 * 1024 == WEIGHT_CHUNK_BYTES


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 2000), ny=st.integers(1, 5000), nx=st.integers(1, 5000),
       grow=st.integers(0, 5), workers=st.integers(1, 16), mib=st.integers(1, 4096),
       keep=st.booleans())
def test_every_plan_is_within_its_budget(n, ny, nx, grow, workers, mib, keep):
    try:
        plan = plan_memory(n, (ny, nx), workers=workers, grow=grow,
                           max_memory_bytes=mib * MiB, keep_data=keep)
    except ParameterError:
        return
    assert plan.peak_bytes <= mib * MiB
    assert min(ny, 2 * grow + 1) <= plan.section_rows <= ny
    assert 1 <= plan.workers <= workers and plan.in_flight <= workers + 1


RUN = """
import glob, json, sys
from medstack import median_image

def status(key):  # kB, from /proc/self/status
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

median_image(sorted(glob.glob(sys.argv[1] + "/tiny/*_single_sci.fits")), keep_data=False,
             combine_type=sys.argv[3], kernel="fast")  # imports and kernels loaded: the baseline
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # the peak (VmHWM) starts again from here
base = status("VmRSS")
names = sorted(glob.glob(sys.argv[1] + "/stack/*_single_sci.fits"))
budget = None if sys.argv[2] == "-" else sys.argv[2]
result = median_image(names, sys.argv[1] + "/out", keep_data=False, workers=2,
                      combine_type=sys.argv[3], max_memory=budget)
print(json.dumps([status("VmHWM") - base, result.plan.memory.peak_bytes]))
"""


@pytest.fixture(scope="module")
def big_stack(tmp_path_factory):
    import numpy as np
    from conftest import write_stack

    folder = tmp_path_factory.mktemp("memory")
    rng = np.random.default_rng(0)
    write_stack(folder / "tiny", rng.normal(10, 3, (3, 16, 16)).astype(np.float32),
                rng.uniform(50, 100, (3, 16, 16)).astype(np.float32))
    write_stack(folder / "stack", rng.normal(10, 3, (24, 512, 512)).astype(np.float32),
                rng.uniform(50, 100, (24, 512, 512)).astype(np.float32))
    return folder


@pytest.mark.parametrize("kind,budget", [("median", "-"), ("minmed", "-"), ("minmed", "8MiB")])
def test_a_runs_measured_peak_is_within_the_model(big_stack, kind, budget):
    """Peak resident memory of a run over its baseline (interpreter, libraries, kernels),
    measured, against the model's peak for its plan (and against --max-memory)."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", RUN, str(big_stack), budget, kind],
                          capture_output=True, text=True, check=True)
    growth, model = json.loads(done.stdout.strip().splitlines()[-1])
    slack = 4 * MiB  # allocator and interpreter noise
    assert growth <= model + slack, (growth / MiB, model / MiB)
    if budget != "-":
        assert model <= 8 * MiB and growth <= 8 * MiB + slack
    else:
        assert growth > 16 * MiB  # the unbudgeted run does hold more: the bound bites


def test_a_budget_never_changes_the_result(tmp_path):
    import numpy as np
    from conftest import random_stack, same_bits, write_stack

    from medstack import median_image

    sci, wht = random_stack(np.random.default_rng(9), 7, 60, 41)
    names = write_stack(tmp_path, sci, wht)
    for kind in ("minmed", "imedian", "mean", "sum"):
        whole = median_image(names, combine_type=kind, combine_grow=2)
        for budget in ("40KiB", "100KiB", 200 * 1024):
            small = median_image(names, combine_type=kind, combine_grow=2, max_memory=budget)
            assert small.plan.section_rows < whole.plan.section_rows
            assert same_bits(small.data, whole.data), (kind, budget)


def test_sizes_are_read_with_their_units():
    from medstack.options import parse_size

    assert parse_size("2GiB") == 2 << 30 == parse_size("2G") == parse_size("2 gib")
    assert parse_size("512MB") == 512 * 10**6 and parse_size(4096) == 4096
    assert parse_size(None) is None and parse_size("none") is None
    for bad in ("2XB", "-1M", "GiB", 0, True):
        with pytest.raises(ParameterError, match="max_memory: expected a size such as 2GiB"):
            parse_size(bad)
