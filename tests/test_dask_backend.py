"""The Dask backend: the thread executor's bits on a Dask cluster, a lost worker, a scheduler given by
address, and a clear error without Dask.

One LocalCluster (2 worker processes, bound to 127.0.0.1) is shared by the whole module: starting
one costs seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import uuid

import numpy as np
import pytest
from astropy.io import fits
from conftest import SHARED_DATA, random_stack, same_bits, write_stack

from medstack.api import median_image
from medstack.cli import main
from medstack.core.plan import prepare
from medstack.errors import InputError, MedstackError, ParameterError
from medstack.executors import dask as dask_backend
from medstack.io.inputs import open_inputs
from medstack.params import validate


def dask_run(plan, *, client, sections_per_band=None, path=None, **options):
    """The run skeleton on a DaskExecutor of ``client``."""
    from medstack.core.run import run
    from medstack.options import run_options

    executor = dask_backend.DaskExecutor(client=client, sections_per_band=sections_per_band)
    return run(plan, executor, run_options(options), path=path)


@pytest.fixture(scope="module")
def client():
    """A client of a 2-process LocalCluster on 127.0.0.1, shared by the module."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=":0")
    dask_client = distributed.Client(cluster, set_as_default=False)
    yield dask_client
    dask_client.close()
    cluster.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A small synthetic stack: 5 images of 90 x 70."""
    sci, wht = random_stack(np.random.default_rng(11), 5, 90, 70)
    return write_stack(tmp_path_factory.mktemp("dask-stack"), sci, wht)


# combine_bufsize 0.002 MiB → sections of 7 rows: 13+ sections, several bands, halos across
# band edges.
CASES = {
    "minmed": {"combine_type": "minmed", "combine_grow": 2, "combine_bufsize": 0.002},
    "median": {"combine_type": "median", "combine_nhigh": 1, "combine_bufsize": 0.002},
    "sum": {"combine_type": "sum", "combine_bufsize": 0.002},
}


def _files(directory):
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("name", CASES)
def test_synthetic_same_bits_as_local(client, stack, name):
    params = CASES[name]
    local = median_image(stack, save_maps=True, **params)
    calls = []
    result = median_image(stack, save_maps=True, client=client,
                          progress=lambda done, total: calls.append((done, total)), **params)
    assert same_bits(result.data, local.data)
    assert np.array_equal(result.ngood, local.ngood)
    if name == "minmed":
        assert np.array_equal(result.minchosen, local.minchosen)
    else:
        assert result.minchosen is None
    assert result.header.tostring() == local.header.tostring()
    total = len(result.plan.sections)
    assert total > 10
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert all(t == total for _, t in calls)
    assert len(calls) > 2  # one call per band, more than one band


def test_files_written_by_the_workers_are_the_local_files(client, stack, tmp_path, monkeypatch):
    """With no array kept, bands write their rows into the temporary files themselves."""
    monkeypatch.setattr(dask_backend, "RETURN_BYTES", 0)  # every band writes directly
    params = {**CASES["minmed"], "combine_grow": 1}
    (tmp_path / "local").mkdir()
    (tmp_path / "dask").mkdir()
    median_image(stack, tmp_path / "local" / "out", keep_data=False, save_maps=True, **params)
    result = median_image(stack, tmp_path / "dask" / "out", keep_data=False, save_maps=True,
                          client=client, **params)
    assert result.data is None
    names = ["out_med.fits", "out_med_minchosen.fits", "out_med_ngood.fits"]
    assert _files(tmp_path / "dask") == names  # no temporary file left
    assert result.path == tmp_path / "dask" / "out_med.fits"
    for name in names:
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def _hrc_cases():
    path = SHARED_DATA / "cases.json"
    if not path.exists():
        return []
    wanted = ("minmed_default", "median_nhigh1", "sum")
    return [c for c in json.loads(path.read_text())["cases"] if c["name"] in wanted]


@pytest.mark.parametrize("case", _hrc_cases(), ids=lambda c: c["name"])
def test_real_data_same_bits_as_local(client, hrc_data, case):
    keys = {"combine_type": "combine_type", "nsigma": "combine_nsigma", "grow": "combine_grow",
            "maskpt": "combine_maskpt", "nhigh": "combine_nhigh"}
    params = {keys[k]: v for k, v in case.items() if k in keys}
    local = median_image(hrc_data["sci"], **params)
    result = median_image(hrc_data["sci"], client=client, **params)
    assert same_bits(result.data, local.data)
    assert same_bits(result.data, fits.getdata(SHARED_DATA / case["expected"]))


def _run_and_kill_a_worker(client, plan, out):
    """Run ``plan`` into ``out`` (bands of one section, written by the workers) with every
    section held at a gate; once a band runs on each worker, SIGKILL the worker of the first,
    then open the gate. Return what happened."""
    import distributed

    def _gate(name):
        """In the workers (a nested function, so sent by value: workers cannot import this
        module): with a ``name``, every section first reports (worker, task) on the Dask queue
        ``name`` and then waits for the Dask event ``name``; with None, sections run freely."""
        import distributed as dd

        from medstack.executors import dask as engine

        original = getattr(engine, "_test_original_compute_section", engine.compute_section)
        engine._test_original_compute_section = original

        def held(*args, **kwargs):
            worker = dd.get_worker()
            dd.Queue(name).put((worker.address, worker.get_current_task()))
            dd.Event(name).wait()
            return original(*args, **kwargs)

        engine.compute_section = held if name else original

    def final():
        return out.read_bytes() if out.exists() else None

    name = f"medstack-test-gate-{uuid.uuid4().hex}"
    started, go = distributed.Queue(name, client=client), distributed.Event(name, client=client)
    before = final()
    pids = client.run(os.getpid)
    client.run(_gate, name)
    calls = []
    box = {}

    def target():
        try:
            box["result"] = dask_run(
                plan, path=out, keep_data=False, save_maps=True, client=client,
                sections_per_band=1, progress=lambda d, t: calls.append(d))
        except BaseException as err:
            box["error"] = err
    thread = threading.Thread(target=target)
    try:
        thread.start()
        running = [started.get(timeout=60), started.get(timeout=60)]
        assert {worker for worker, _ in running} == set(pids)  # one band on each worker
        victim, key = running[0]
        assert final() == before and calls == []  # running: the final name is untouched
        os.kill(pids[victim], signal.SIGKILL)
    finally:
        go.set()
        thread.join(60)
        client.run(_gate, None)
    assert not thread.is_alive()
    assert pids[victim] not in client.run(os.getpid).values()  # that worker did die
    return box, calls, key


def test_lost_worker_output_complete_and_identical(client, stack, tmp_path, monkeypatch):
    """Kill one worker process while bands run on it: Dask reruns them elsewhere; the files are
    those of the thread executor, and no file appears under the final name before the end."""
    monkeypatch.setattr(dask_backend, "RETURN_BYTES", 0)  # bands write into the temporary files
    params = validate(CASES["minmed"])
    (tmp_path / "local").mkdir()
    (tmp_path / "dask").mkdir()
    median_image(stack, tmp_path / "local" / "out", keep_data=False, save_maps=True,
                 **params.as_dict())
    plan = prepare(open_inputs(stack), params)
    out = tmp_path / "dask" / "out_med.fits"
    try:
        box, calls, killed_key = _run_and_kill_a_worker(client, plan, out)
    finally:
        client.wait_for_workers(2, timeout=60)  # its nanny restarts it for the other tests
    assert "error" not in box, box.get("error")
    assert box["result"].path == out
    assert calls[-1] == len(plan.sections)
    assert _files(tmp_path / "dask") == _files(tmp_path / "local")  # no temporary file left
    for name in _files(tmp_path / "local"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    # its band was run again elsewhere
    runs = sum(1 for event in client.story(killed_key) if event[2] == "processing")
    assert runs >= 2, runs


def test_workers_dying_again_and_again_is_a_clear_error(client, stack, tmp_path, monkeypatch):
    """With Dask's allowed failures at 0, one death is one too many: a one-line error, the
    temporary files removed, an earlier file of the final name untouched."""
    monkeypatch.setattr(dask_backend, "RETURN_BYTES", 0)
    scheduler = client.cluster.scheduler  # in this process
    monkeypatch.setattr(scheduler, "allowed_failures", 0)
    plan = prepare(open_inputs(stack), validate(CASES["minmed"]))
    out = tmp_path / "out_med.fits"
    out.write_bytes(b"earlier")
    try:
        box, _, _ = _run_and_kill_a_worker(client, plan, out)
    finally:
        client.wait_for_workers(2, timeout=60)
    error = box.get("error")
    assert isinstance(error, MedstackError), error
    assert str(error).startswith("Dask: workers kept dying while running medstack-band-")
    assert "\n" not in str(error)
    assert _files(tmp_path) == ["out_med.fits"] and out.read_bytes() == b"earlier"


def test_task_error_reaches_the_caller_and_leaves_no_file(client, tmp_path):
    sci, wht = random_stack(np.random.default_rng(3), 3, 40, 30)
    names = write_stack(tmp_path / "in", sci, wht)
    plan = prepare(open_inputs(names), validate(combine_type="median", combine_bufsize=0.001))
    os.remove(names[1])  # gone after planning: the workers cannot read it
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match=f"^{names[1]}: cannot read image data"):
        dask_run(plan, path=tmp_path / "out" / "x_med.fits", client=client)
    assert _files(tmp_path / "out") == []


def test_no_input_left_open_on_the_workers(client, stack):
    """Each band opens the inputs and closes them when it is done."""
    psutil = pytest.importorskip("psutil")
    plan = prepare(open_inputs(stack), validate(CASES["minmed"]))
    local = median_image(stack, **CASES["minmed"])
    result = dask_run(plan, client=client, sections_per_band=1)
    assert same_bits(result.data, local.data)
    assert len(plan.sections) > 10  # as many bands
    names = {os.path.realpath(n) for img in plan.images for n in (img.sci, img.wht)}
    open_files = client.run(lambda: [f.path for f in psutil.Process().open_files()])
    assert not names & {os.path.realpath(p) for paths in open_files.values() for p in paths}


def test_compressed_inputs_same_bits_with_a_warning(client, tmp_path, caplog):
    """gzip inputs are decompressed once per worker into a temporary file: same bits, and the
    log says what it costs."""
    sci, wht = random_stack(np.random.default_rng(7), 3, 40, 30)
    plain = write_stack(tmp_path, sci, wht)
    names = []
    for name in plain:
        for path in (name, name.replace("_single_sci", "_single_wht")):
            fits.writeto(path + ".gz", fits.getdata(path), fits.getheader(path))
        names.append(name + ".gz")
    local = median_image(plain, combine_type="minmed", combine_bufsize=0.001)
    with caplog.at_level("INFO", logger="medstack"):
        result = median_image(names, combine_type="minmed", combine_bufsize=0.001, client=client)
    assert same_bits(result.data, local.data)
    assert "6 compressed input file(s)" in caplog.text and "temporary file" in caplog.text


def test_workers_started_in_another_folder_read_relative_names(stack, tmp_path, monkeypatch,
                                                               capsys):
    """A running cluster whose `dask scheduler` and `dask worker` were started in another
    folder (as batch systems start them), and the command run in the data folder with relative
    names: the client sends absolute names; the files are those of the thread executor."""
    import shutil
    import subprocess

    import distributed

    dask_cli = shutil.which("dask", path=os.path.dirname(sys.executable))
    if dask_cli is None:
        pytest.skip("no dask command beside this interpreter")
    home, data = tmp_path / "home", tmp_path / "data"
    for folder in (home, data, data / "threads", data / "dask"):
        folder.mkdir()
    for name in stack:
        for path in (name, name.replace("_single_sci", "_single_wht")):
            shutil.copy(path, data)
    names = sorted(p.name for p in data.glob("*_single_sci.fits"))
    scheduler_file = home / "scheduler.json"
    commands = [[dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file)],
                [dask_cli, "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "2",
                 "--nthreads", "1", "--host", "127.0.0.1", "--dashboard-address", ":0"]]
    procs = []
    monkeypatch.setattr(dask_backend, "RETURN_BYTES", 0)  # the workers write the file
    try:
        with open(home / "dask.log", "w") as log:
            for command in commands:
                procs.append(subprocess.Popen(command, cwd=home, stdout=log, stderr=log,
                                              start_new_session=True))
        # ready: the scheduler file written (the client waits for it), the workers arrived
        with distributed.Client(scheduler_file=str(scheduler_file), timeout=60,
                                set_as_default=False) as watcher:
            watcher.wait_for_workers(2, timeout=60)
            address = watcher.scheduler.address
            assert set(watcher.run(os.getcwd).values()) == {str(home)}
        monkeypatch.chdir(data)
        argv = [*names, "--save-maps", "--combine-type", "minmed", "--combine-bufsize", "0.002"]
        assert main([*argv, "-o", "threads/out"]) == 0
        assert main([*argv, "-o", "dask/out", "--scheduler", address]) == 0
        assert "Errno" not in capsys.readouterr().err
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert _files(data / "dask") == _files(data / "threads") == [
        "out_med.fits", "out_med_minchosen.fits", "out_med_ngood.fits"]
    for name in _files(data / "threads"):
        assert (data / "dask" / name).read_bytes() == (data / "threads" / name).read_bytes()


def test_cli_scheduler_address(client, stack, tmp_path, capsys):
    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    local = median_image(stack, **CASES["median"])
    argv = [*stack, "-o", str(tmp_path / "out"), "--scheduler", address,
            "--combine-type", "median", "--combine-nhigh", "1", "--combine-bufsize", "0.002"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    assert _files(tmp_path) == ["out_med.fits"]
    with fits.open(tmp_path / "out_med.fits") as hdul:
        assert same_bits(hdul[0].data, local.data)
        assert hdul[0].header["MEDCTYPE"] == "median"


def test_cli_dask_local_starts_and_closes_its_cluster(stack, tmp_path):
    psutil = pytest.importorskip("psutil")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    local = median_image(stack, **CASES["sum"])
    argv = [*stack, "-o", str(tmp_path / "out"), "-q", "--scheduler", "dask-local",
            "--workers", "1", "--combine-type", "sum", "--combine-bufsize", "0.002"]
    assert main(argv) == 0
    assert same_bits(fits.getdata(tmp_path / "out_med.fits"), local.data)
    after = {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()
             and p.status() != psutil.STATUS_ZOMBIE}
    assert after <= before  # its worker process is gone


def test_missing_dask_is_a_clear_error(stack, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    for scheduler in ("dask-local", "tcp://127.0.0.1:8786"):
        with pytest.raises(ParameterError,
                           match=r'needs Dask.*pip install -e "\.\[dask\]" from a checkout'):
            median_image(stack, scheduler=scheduler)
    argv = [*stack, "-o", str(tmp_path / "out"), "--scheduler", "dask-local"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("medstack: error: scheduler: dask-local needs Dask")
    assert err.count("\n") == 1 and "pip install -e \".[dask]\" from a checkout" in err
    assert _files(tmp_path) == []
    # the thread executor never needs Dask
    assert median_image(stack, scheduler="threads", combine_type="sum").data.shape == (90, 70)


@pytest.mark.parametrize("scheduler, message", [
    ("dask-locl", "unknown value 'dask-locl'"),
    ("127.0.0.1:8786", "unknown value '127.0.0.1:8786'"),
])
def test_bad_scheduler_values(scheduler, message):
    with pytest.raises(ParameterError, match=message):
        dask_backend.check_scheduler(scheduler)


@pytest.mark.parametrize("address, message", [
    ("bogus://x", "scheduler: 'bogus://x': unknown address scheme 'bogus'"),
    ("tcp://127.0.0.1:notaport", "scheduler: 'tcp://127.0.0.1:notaport': "),
])
def test_malformed_scheduler_address(stack, tmp_path, capsys, address, message):
    """distributed's own word on the address, on one line naming the scheduler: exit 2, no
    file."""
    pytest.importorskip("distributed")
    assert main([*stack, "-o", str(tmp_path / "out"), "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"medstack: error: {message}")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _files(tmp_path) == []


def test_unreachable_scheduler_fails_within_the_connect_timeout(stack, tmp_path, capsys):
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [*stack, "-o", str(tmp_path / "out"), "--scheduler", f"tcp://127.0.0.1:{port}",
            "--connect-timeout", "1.5"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"medstack: error: scheduler tcp://127.0.0.1:{port}: cannot connect within "
                   "1.5 s (connect_timeout); is a Dask scheduler running there?\n")
    assert _files(tmp_path) == []
    with pytest.raises(ParameterError, match="connect_timeout: expected a number of seconds"):
        median_image(stack, scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=0)


def test_scheduler_and_client_together_is_an_error(stack):
    pytest.importorskip("distributed")
    with pytest.raises(ParameterError, match="give a scheduler .* or a client, not both"):
        median_image(stack, scheduler="threads", client=object())


def _plan(ny, nx, bufsize, combine_type="median"):
    params = validate(combine_type=combine_type, combine_bufsize=bufsize)
    from medstack.core.plan import StackPlan
    from medstack.core.sections import plan_sections, section_rows
    from medstack.kernels import CombineSpec

    rows = section_rows(ny, nx, params.budget_bytes, params.grow_px)
    return StackPlan(images=(), params=params, spec=CombineSpec.from_params(params),
                     scalars=None, shape=(ny, nx), section_rows=rows,
                     sections=tuple(plan_sections(ny, rows, params.grow_px)), needs_weights=True)


def test_bands_tile_the_sections(monkeypatch):
    plan = _plan(1000, 256, 0.01)  # sections of 10 rows: 100 sections
    assert len(plan.sections) == 100
    bands = dask_backend.plan_bands(plan, 2, row_bytes=256 * 4, direct_ok=False)
    assert len(bands) == 8  # 4 per thread: 13 sections each, the last 9
    assert [b.sections for b in bands][:2] == [(0, 13), (13, 26)] and bands[-1].sections == (91, 100)
    assert [b.out for b in bands][:2] == [(0, 130), (130, 260)] and bands[-1].out == (910, 1000)
    assert not any(b.direct for b in bands)
    # without a file, bands are cut to RETURN_BYTES of output: 40 rows = 4 sections
    monkeypatch.setattr(dask_backend, "RETURN_BYTES", 40 * 256 * 4)
    bands = dask_backend.plan_bands(plan, 2, row_bytes=256 * 4, direct_ok=False)
    assert len(bands) == 25 and bands[0].out == (0, 40) and not any(b.direct for b in bands)
    # with a file, bands above RETURN_BYTES (100 rows here) write it themselves
    monkeypatch.setattr(dask_backend, "RETURN_BYTES", 100 * 256 * 4)
    bands = dask_backend.plan_bands(plan, 2, row_bytes=256 * 4, direct_ok=True)
    assert len(bands) == 8 and all(b.direct for b in bands[:-1])  # 130 rows
    assert not bands[-1].direct  # 90 rows: returned
    bands = dask_backend.plan_bands(plan, 2, row_bytes=256 * 4, direct_ok=True,
                                    sections_per_band=1)
    assert len(bands) == 100 and bands[99].out == (990, 1000) and not bands[0].direct


def test_per_image_table_and_coverage_as_the_local_engine(client, stack, tmp_path, caplog):
    """-v's per-image table (masked fractions counted by the workers) and the count of pixels
    without a good input are those of the thread executor."""
    import logging

    def table(**kwargs):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="medstack"):
            result = median_image(stack, combine_bufsize=0.002, **kwargs)
        message = next(r.getMessage() for r in caplog.records
                       if r.getMessage().startswith("per-image values:"))
        return message, result.no_good

    local, local_no_good = table()
    on_dask, dask_no_good = table(client=client, output=str(tmp_path / "t"))
    assert on_dask == local and "%" in local
    assert dask_no_good == local_no_good


def test_few_good_pixels_warning_on_dask(client, tmp_path, caplog):
    sci = np.ones((3, 30, 40), dtype=np.float32)
    wht = np.zeros((3, 30, 40), dtype=np.float32)
    wht[:, :2, :5] = 100.0
    names = write_stack(tmp_path, sci, wht)
    with caplog.at_level("WARNING", logger="medstack"):
        result = median_image(names, str(tmp_path / "few"), client=client,
                              combine_type="median", keep_data=False)
    assert result.no_good == 1200 - 10
    assert any("only 10 of 1200 output pixels" in r.getMessage() for r in caplog.records)


def test_no_private_attribute_of_multiprocessing_in_the_package():
    """The processes of a Dask run are Dask's: medstack touches no internals of
    multiprocessing (a fork server, a resource tracker) to manage them."""
    import re
    from pathlib import Path

    import medstack

    private = re.compile(r"multiprocessing(\.\w+)*\._\w|_forkserver|_resource_tracker")
    found = [f"{path}:{n}" for path in Path(medstack.__file__).parent.rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if private.search(line)]
    assert found == []
