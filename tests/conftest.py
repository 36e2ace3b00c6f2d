"""Shared test helpers: small stacks written to disk, and the real-data folder.

The real ACS/HRC stack with drizzlepac's own medians (``cases.json``, the singles and the
``*_expected.fits.gz``) is looked for in the folder named by the environment variable
``MEDSTACK_TEST_DATA``, else in ``../shared/data/hrc-47tuc`` beside the repository. Without it
the tests that need it are skipped; the header and the last lines of the pytest report say
which folder was used and how many real-data tests ran.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
#: The environment variable naming the real-data folder.
DATA_ENV = "MEDSTACK_TEST_DATA"
_DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hrc-47tuc"
_GIVEN = os.environ.get(DATA_ENV, "").strip()
SHARED_DATA = Path(_GIVEN).expanduser().resolve() if _GIVEN else _DEFAULT_DATA
#: Whether the real data are there (``cases.json`` in :data:`SHARED_DATA`).
REAL_DATA = (SHARED_DATA / "cases.json").is_file()
SYNTHETIC = Path(__file__).parent / "data" / "synthetic"
_REAL_RUNS: dict[str, int] = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "real_data: needs the real ACS/HRC data (hrc_data)")
    if _GIVEN and not REAL_DATA:
        raise pytest.UsageError(f"{DATA_ENV}={_GIVEN}: no cases.json there (the folder of the "
                                "real ACS/HRC data: cases.json, singles, expected medians)")


def pytest_report_header(config):
    if REAL_DATA:
        return f"real ACS/HRC data: {SHARED_DATA}"
    return (f"real ACS/HRC data: not found at {SHARED_DATA}; its tests will be skipped "
            f"(set {DATA_ENV} to the folder)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "hrc_data" in getattr(item, "fixturenames", ()):
            item.add_marker("real_data")


def pytest_runtest_logreport(report):
    if "real_data" not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _REAL_RUNS[report.outcome] = _REAL_RUNS.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter):
    ran = _REAL_RUNS.get("passed", 0) + _REAL_RUNS.get("failed", 0)
    skipped = _REAL_RUNS.get("skipped", 0)
    if ran:
        line = (f"real ACS/HRC data ({SHARED_DATA}): {ran} test{'s' if ran != 1 else ''} ran, "
                f"{_REAL_RUNS.get('passed', 0)} passed, {_REAL_RUNS.get('failed', 0)} failed")
    elif skipped:
        line = (f"real ACS/HRC data: not found, {skipped} test{'s' if skipped != 1 else ''} "
                f"skipped (set {DATA_ENV})")
    else:
        return
    terminalreporter.write_line(line)


def write_stack(directory: Path, sci, wht, *, exptime=100.0, sky=50.0, readnoise=(4.0,),
                prefix="img", header_extra=None) -> list[str]:
    """Write science/weight singles (big-endian float32, primary HDU); return science names."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    n = len(sci)
    exptimes = np.broadcast_to(np.asarray(exptime, dtype=float), (n,))
    skies = np.broadcast_to(np.asarray(sky, dtype=float), (n,))
    for i, (s, w) in enumerate(zip(sci, wht)):
        root = directory / f"{prefix}{i:03d}"
        header = fits.Header()
        header["INSTRUME"] = "ACS"
        header["DETECTOR"] = "WFC"
        header["BUNIT"] = "ELECTRONS/S"
        if exptimes[i] is not None and np.isfinite(exptimes[i]):
            header["EXPTIME"] = float(exptimes[i])
        header["MDRIZSKY"] = float(np.float32(skies[i]))
        amps = "ABCD"[: len(readnoise)]
        header["CCDAMP"] = amps
        for a, r in zip(amps, readnoise):
            header[f"READNSE{a}"] = float(r)
        for key, value in (header_extra or {}).items():
            header[key] = value
        fits.PrimaryHDU(np.asarray(s, dtype=">f4"), header=header).writeto(
            f"{root}_single_sci.fits", overwrite=True)
        fits.PrimaryHDU(np.asarray(w, dtype=">f4")).writeto(
            f"{root}_single_wht.fits", overwrite=True)
        names.append(f"{root}_single_sci.fits")
    return names


def random_stack(rng: np.random.Generator, n: int, ny: int, nx: int, *, exptime=100.0):
    """A small realistic stack: sky-subtracted noise, stars, cosmic rays, weight holes."""
    yy, xx = np.mgrid[0:ny, 0:nx]
    truth = np.zeros((ny, nx))
    for _ in range(max(1, ny * nx // 400)):
        y0, x0 = rng.uniform(0, ny), rng.uniform(0, nx)
        truth += rng.uniform(5, 300) * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / 3.0)
    sci = truth + rng.normal(0, 1.0, (n, ny, nx))
    hits = rng.random((n, ny, nx)) < 0.02
    sci[hits] += rng.uniform(50, 2000, hits.sum())
    wht = np.full((n, ny, nx), exptime) * rng.uniform(0.8, 1.0, (n, ny, nx))
    wht[rng.random((n, ny, nx)) < 0.05] = 0.0
    for i in range(n):
        wht[i, :, : rng.integers(0, 4)] = 0.0  # zero-weight edge
    return sci.astype(np.float32), wht.astype(np.float32)


def gunzip_to(src: Path, dst_dir: Path) -> Path:
    """Decompress ``src`` (a .fits.gz) into ``dst_dir``; return the .fits path."""
    dst = dst_dir / src.name.removesuffix(".gz")
    if not dst.exists():
        with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    return dst


@pytest.fixture(scope="session")
def hrc_data(tmp_path_factory):
    """The shared real ACS/HRC stack, gunzipped once per session; skip when absent."""
    if not REAL_DATA:
        pytest.skip(f"real ACS/HRC data not found at {SHARED_DATA} (set {DATA_ENV})")
    cases = json.loads((SHARED_DATA / "cases.json").read_text())
    folder = tmp_path_factory.mktemp("hrc")
    scis = []
    for image in cases["images"]:
        scis.append(str(gunzip_to(SHARED_DATA / image["sci"], folder)))
        gunzip_to(SHARED_DATA / image["wht"], folder)
    return {"dir": folder, "sci": scis, "cases": cases}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality of two float32 arrays (NaN-safe, sign of zero counts)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def resident_kib(path) -> int:
    """KiB of ``path`` mapped and resident in this process (from /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:
                inside = len(parts) > 5 and parts[5] == str(path)
            elif inside and parts[0] == "Rss:":
                total += int(parts[1])
    return total
