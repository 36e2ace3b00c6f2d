"""Builds medstack's compiled kernels (src/medstack/kernels/_fast.c) with the machine's C
compiler at installation. Everything else is declared in pyproject.toml.

The library is plain C (no Python API, so no Python headers are needed); medstack loads it
with ctypes. Should the compiler fail, the installation still succeeds and medstack runs on
its NumPy reference kernels (the same bits, slower) and says so; ``medstack-compile`` builds
the library later.
"""

import importlib.util
from pathlib import Path

from setuptools import Extension, setup

_spec = importlib.util.spec_from_file_location(
    "_medstack_build", Path(__file__).resolve().parent / "src" / "medstack" / "kernels" / "_build.py")
_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_build)

setup(ext_modules=[Extension("medstack.kernels._fast", sources=["src/medstack/kernels/_fast.c"],
                             extra_compile_args=_build.CFLAGS, define_macros=_build.defines(),
                             libraries=["m"], optional=True)])
