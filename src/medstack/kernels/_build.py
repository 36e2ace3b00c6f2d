"""How the compiled kernels are built, for ``setup.py`` (which runs this file by its path, at
installation) and ``medstack-compile``. Imports nothing from medstack.

The flags keep every float operation the IEEE operation the reference does: no fast-math, no
fused multiply-adds, so ``a * b + c`` rounds twice, as NumPy does. ``-fno-math-errno`` and
``-fno-trapping-math`` change no result (only ``errno`` and the exception flags); they let the
compiler vectorise the loops whose selects compare floats.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import shlex
import subprocess
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: Compiler flags of the kernels (after any the environment sets, so that these win: Python's
#: own build flags, which setuptools passes first, usually hold ``-fwrapv``, which keeps gcc
#: from vectorising the kernels' loops).
CFLAGS = ["-O3", "-std=c99", "-fno-wrapv", "-fstrict-aliasing", "-fno-fast-math",
          "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]

#: The C source, beside this file.
SOURCE = Path(__file__).with_name("_fast.c")


def source_sha256() -> str:
    """The SHA-256 of :data:`SOURCE`'s text, which the build puts in the library (its
    ``medstack_source_sha256()``): a library built from another version of it is refused."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def defines() -> list[tuple[str, str]]:
    """The macros every build defines: the source's SHA-256."""
    return [("MEDSTACK_SOURCE_SHA256", f'"{source_sha256()}"')]


def library_path() -> Path | None:
    """The built library beside this file (``_fast`` plus an extension suffix), or None."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = SOURCE.with_name(f"_fast{suffix}")
        if path.is_file():
            return path
    return None


def compiler() -> list[str]:
    """The C compiler command: ``$CC``, else the one Python was built with, else ``cc``."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def build(folder: Path | None = None, extra: Sequence[str] = ()) -> Path:
    """Compile :data:`SOURCE` into ``folder`` (default: beside it), with ``extra`` flags after
    :data:`CFLAGS` (e.g. sanitizers, for the tests), replacing any earlier library
    atomically; returns the library's path. Raises ``OSError`` when the folder is not
    writable and ``subprocess.CalledProcessError`` when the compiler fails."""
    folder = SOURCE.parent if folder is None else Path(folder)
    target = folder / f"_fast{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    fd, tmp = tempfile.mkstemp(prefix="._fast-", suffix=".so", dir=folder)
    os.close(fd)
    try:
        macros = [f"-D{name}={value}" for name, value in defines()]
        subprocess.run([*compiler(), *CFLAGS, *macros, *extra, "-fPIC", "-shared", "-o", tmp,
                        str(SOURCE), "-lm"],
                       check=True, capture_output=True, text=True)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
