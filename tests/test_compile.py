"""``python -m medstack.extras.compile`` fills numba's cache, so that no later run compiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

RUN_ALL = textwrap.dedent("""\
    import json, sys, numba
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    from pathlib import Path
    from conftest import random_stack, write_stack
    from medstack import median_image
    from medstack.kernels import fast
    sci, wht = random_stack(np.random.default_rng(5), 4, 30, 28)
    names = write_stack(Path(sys.argv[2]), sci, wht)
    for kind in ("minmed", "iminmed", "median", "imedian", "mean", "sum"):
        for masks in (True, False):
            median_image(names, combine_type=kind, median_newmasks=masks, combine_nhigh=0, kernel="fast",
                         combine_lthresh=-1e4 if kind.endswith(("median", "mean")) else None)
    compiled = {name: sum(d.stats.cache_misses.values()) for name in dir(fast)
                if isinstance(d := getattr(fast, name), numba.core.registry.CPUDispatcher)}
    print(json.dumps(compiled))
    """)


def test_compile_fills_the_cache_for_every_combine_type(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "medstack.extras.compile"], env=env,
                          capture_output=True, text=True, check=True)
    assert "medstack kernels compiled and cached in" in done.stdout
    assert str(tmp_path / "cache") in done.stdout
    assert any((tmp_path / "cache").rglob("*.nbi"))  # numba's index files
    run = subprocess.run([sys.executable, "-c", RUN_ALL, os.path.dirname(__file__),
                          str(tmp_path / "stack")], env=env, capture_output=True, text=True,
                         check=True)
    compiled = json.loads(run.stdout.strip().splitlines()[-1])
    assert compiled and all(count == 0 for count in compiled.values()), compiled
