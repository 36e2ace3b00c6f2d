"""The real-data tests: where the data are looked for, and a report line that says they ran."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import DATA_ENV, REAL_DATA, ROOT, SHARED_DATA


def _pytest(tmp_path, env_value, *args):
    env = {**os.environ, DATA_ENV: env_value}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--rootdir", str(ROOT), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True)


def test_a_wrong_data_folder_is_an_error_not_a_skip(tmp_path):
    missing = tmp_path / "no-such-folder"
    run = _pytest(tmp_path, str(missing), str(ROOT / "tests" / "test_masks.py"))
    assert run.returncode == 4  # pytest's usage error
    assert f"{DATA_ENV}={missing}: no cases.json there" in run.stderr


@pytest.mark.skipif(not REAL_DATA, reason=f"real ACS/HRC data not found (set {DATA_ENV})")
def test_the_report_says_the_real_data_tests_ran(tmp_path):
    """With MEDSTACK_TEST_DATA set, from any directory, the real-data tests run, and the
    report's header and last lines say so."""
    run = _pytest(tmp_path, str(SHARED_DATA), str(ROOT / "tests" / "test_parity.py"),
                  "-k", "header_is_first_input")
    assert run.returncode == 0, run.stdout[-2000:]
    assert f"real ACS/HRC data: {SHARED_DATA.resolve()}" in run.stdout
    assert (f"real ACS/HRC data ({SHARED_DATA.resolve()}): 1 test ran, 1 passed, 0 failed"
            in run.stdout)


def test_default_maskpt_differs_from_astrodrizzle_where_the_docs_say(hrc_data):
    """The figure the docs give (once, in docs/guide.md): with the task default
    combine_maskpt = 0.7, that many pixels differ from AstroDrizzle's product (made with 0.3);
    with 0.3, none."""
    import re

    import numpy as np
    from astropy.io import fits
    from conftest import same_bits

    from medstack import median_image

    astrodrizzle = fits.getdata(SHARED_DATA / "astrodrizzle_e2e_med.fits.gz")
    default = median_image(hrc_data["sci"]).data
    differ = np.count_nonzero(default.view(np.uint32)
                              != astrodrizzle.astype(np.float32).view(np.uint32))
    guide = " ".join((ROOT / "docs" / "guide.md").read_text(encoding="utf-8").split())
    documented = re.search(r"\((\d+) of ([\d ]+) pixels on the ACS/HRC test stack", guide)
    assert documented is not None, "docs/guide.md gives no figure"
    assert (differ, astrodrizzle.size) == (int(documented[1]),
                                           int(documented[2].replace(" ", "")))
    assert same_bits(median_image(hrc_data["sci"], combine_maskpt=0.3).data, astrodrizzle)
