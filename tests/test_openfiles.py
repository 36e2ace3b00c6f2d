"""Thousands of inputs under a low open-file limit: the limit is raised when it can be, and
otherwise files are opened only while read; the result never depends on it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import same_bits, write_stack

from medstack import median_image
from medstack.io.openfiles import descriptors_needed, ensure_open_files

resource = pytest.importorskip("resource")

RUN = textwrap.dedent("""\
    import json, logging, resource, sys
    soft, hard = int(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    import numpy as np
    from medstack import median_image
    names = json.loads(open(sys.argv[3]).read())
    result = median_image(names, combine_type=sys.argv[4], workers=2, combine_bufsize=0.0005)
    np.save(sys.argv[5], result.data)
    print(json.dumps(resource.getrlimit(resource.RLIMIT_NOFILE)))
    """)


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(4)
    n = 300  # 600 files
    sci = rng.normal(10.0, 3.0, (n, 12, 9)).astype(np.float32)
    wht = rng.uniform(50.0, 100.0, (n, 12, 9)).astype(np.float32)
    wht[:, 0, :2] = 0.0
    names = write_stack(folder, sci, wht)
    listing = folder / "names.json"
    listing.write_text(json.dumps(names))
    return folder, names, listing


@pytest.mark.parametrize("kind", ["median", "minmed"])
@pytest.mark.parametrize("soft,hard", [(256, 256), (256, 100000)])
def test_a_low_open_file_limit_gives_the_same_result(many, kind, soft, hard, tmp_path):
    folder, names, listing = many
    _, system_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if system_hard != resource.RLIM_INFINITY and hard > system_hard:
        hard = system_hard
    out = tmp_path / "out.npy"
    done = subprocess.run([sys.executable, "-c", RUN, str(soft), str(hard), str(listing), kind,
                           str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    limits = json.loads(done.stdout.strip().splitlines()[-1])
    expected = median_image(names, combine_type=kind, workers=2)
    assert same_bits(np.load(out), expected.data)
    if hard == soft:  # cannot be raised: files opened only while read
        assert limits[0] == 256
        assert "reading each file only while it is read" in done.stderr
    else:  # raised to what the run needs
        assert limits[0] >= descriptors_needed(600, 3) > 256
        assert "open-file limit raised from 256" in done.stderr


def test_ensure_open_files_never_lowers_the_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert ensure_open_files(10)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
    assert Path(__file__).exists()
