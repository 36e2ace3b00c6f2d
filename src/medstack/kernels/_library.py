"""The compiled kernels' library (``_fast.c``, built at installation): each kernel's C
parameter list declared once (:data:`PROTOTYPES`), the library loaded and checked against its
source (:func:`load`), and the kernels called with every argument named (:meth:`Library.call`).
"""

from __future__ import annotations

import ctypes
from typing import Any, NamedTuple, TypeAlias

import numpy as np

from . import KernelsNotBuilt, _build

__all__ = ["PROTOTYPES", "Library", "Parameter", "load", "parse_parameters"]

#: Each kernel of ``_fast.c`` by its C parameter list, as the C source declares it (without
#: ``restrict``; tests/test_compile.py holds the two together): its ctypes argument types and
#: the order of each call's values, named by the caller, are built from it.
PROTOTYPES: dict[str, str] = {
    "medstack_count_nonfinite":
        "const i64 *sp, const uint8_t *ss, int n, i64 p_lo, i64 p_hi, i64 *counts",
    "medstack_gather_first": "const i64 *ptrs, const uint8_t *swaps, int n, float *out",
    "medstack_sum":
        "const i64 *sp, const uint8_t *ss, int n, i64 p_lo, i64 p_hi, float fillval, int block, "
        "float *out, uint16_t *ngood, i64 *nonfinite",
    "medstack_numcombine":
        "const i64 *sp, const uint8_t *ss, const i64 *wp, const uint8_t *ws, int n, int use_w, "
        "const float *wlim, float vlo, float vhi, int is_median, int fill, const int32_t *k_of, "
        "const uint8_t *even, int mid, int nlow, int nhigh, float fillval, const int32_t *net, "
        "int ncomp, i64 p_lo, i64 p_hi, int block, float *out, uint16_t *ngood, "
        "i64 *nonfinite",
    "medstack_minmed":
        "const i64 *sp, const uint8_t *ss, const i64 *wp, const uint8_t *ws, int n, int use_w, "
        "const float *wlim, const double *sps, const double *rn2, int rn_masks, "
        "double rn_const, double n1, double n2, int fill, const int32_t *k_of, "
        "const uint8_t *even, int mid, const int32_t *net, int ncomp, const i64 *fw_pos, "
        "i64 n_fw, const float *mn_fix, i64 n_fix, i64 p_lo, i64 p_hi, int block, "
        "float *mn_out, float *med_out, uint8_t *f1, uint8_t *f2, int32_t *gcount, "
        "i64 *nonfinite",
    "medstack_minmed_decide":
        "const float *mn, const float *med, const uint8_t *f1, const uint8_t *f2, "
        "const int32_t *gcount, i64 nx, i64 y0c, i64 y1c, i64 lo, i64 hi, i64 grow, "
        "float fillval, float *out, uint16_t *ngood, uint8_t *minchosen",
    "medstack_weight_sums":
        "const i64 *ptrs, const uint8_t *swaps, int k, i64 m, float min_weight, double *totals, "
        "i64 *counts, i64 *nans",
}
for _sfx, _t in (("f32", "float"), ("f64", "double")):  # the frames' kernels, per element type
    PROTOTYPES[f"medstack_nanmedian_tiles_{_sfx}"] = (
        "const i64 *ptrs, const i64 *strides, const i64 *box, const uint8_t *last_frame, "
        f"int ntiles, i64 rows, i64 cols, {_t} *out, uint16_t *ngood, int big, "
        "const int32_t *nets, const int32_t *offs")
    PROTOTYPES[f"medstack_footprint_{_sfx}"] = (
        f"const {_t} *data, i64 ny, i64 nx, i64 stride, i64 *box")

#: The C types of the kernels' scalar arguments, and of their arrays' elements.
_C_SCALARS: dict[str, type[ctypes._SimpleCData[Any]]] = {
    "int": ctypes.c_int, "i64": ctypes.c_int64, "float": ctypes.c_float,
    "double": ctypes.c_double}
_C_ARRAYS: dict[str, type[np.generic]] = {
    "i64": np.int64, "int32_t": np.int32, "uint16_t": np.uint16, "uint8_t": np.uint8,
    "float": np.float32, "double": np.float64}


class Parameter(NamedTuple):
    """One parameter of a kernel: whether it is an array (a pointer) the kernel only reads."""

    name: str
    ctype: str
    array: bool
    const: bool


def parse_parameters(c_list: str) -> tuple[Parameter, ...]:
    """The parameters of a C parameter list such as ``"const float *restrict v, int n"``
    (only the types of :data:`PROTOTYPES`: scalars, or pointers to their elements)."""
    params = []
    for text in c_list.split(","):
        words = [w for w in text.replace("*", " * ").split() if w != "restrict"]
        const = words[0] == "const"
        words = words[1:] if const else words
        array = "*" in words
        if len(words) != (3 if array else 2) or words[0] not in (_C_ARRAYS if array
                                                                 else _C_SCALARS):
            raise ValueError(f"unsupported C parameter: {text.strip()!r}")
        params.append(Parameter(words[-1], words[0], array, const))
    return tuple(params)


#: A kernel argument: an array (passed by its address) or a scalar.
Arg = np.ndarray | float | int | np.number[Any]
_Step: TypeAlias = "tuple[Parameter, np.dtype[Any] | None, type[float] | type[int]]"


class Library:
    """The compiled kernels' library, loaded and checked (:func:`load`): ``cdll``, the ctypes
    library, and :meth:`call`, which runs the kernels of :data:`PROTOTYPES`."""

    def __init__(self, cdll: ctypes.CDLL) -> None:
        self.cdll = cdll
        #: Per kernel: its ctypes function, its parameters' names, and per parameter the
        #: array's dtype (None for a scalar) and the Python type of the scalar.
        self._kernels: dict[str, tuple[Any, set[str], list[_Step]]] = {}
        for name, c_list in PROTOTYPES.items():
            params = parse_parameters(c_list)
            fn = getattr(cdll, name)
            fn.argtypes = [ctypes.c_void_p if p.array else _C_SCALARS[p.ctype] for p in params]
            fn.restype = ctypes.c_int
            plan = [(p, np.dtype(_C_ARRAYS[p.ctype]) if p.array else None,
                     float if p.ctype in ("float", "double") else int) for p in params]
            self._kernels[name] = (fn, {p.name for p in params}, plan)

    def call(self, name: str, **args: Arg) -> None:
        """Run kernel ``name`` with every argument named (the GIL released, as ctypes does for
        every call). Arrays go by their address, checked first, since the kernel trusts them.

        Raises
        ------
        TypeError
            An argument missing or unknown, an array for a scalar, or an array of another
            element type, not C-contiguous or (one the kernel writes, not ``const``) read-only.
        MemoryError
            The kernel could not allocate its scratch memory.
        """
        fn, names, plan = self._kernels[name]
        if args.keys() != names:
            missing = [p.name for p, _, _ in plan if p.name not in args]
            if missing:
                raise TypeError(f"{name}: missing argument {missing[0]!r}")
            raise TypeError(f"{name}: unexpected arguments {sorted(set(args) - names)}")
        values: list[int | float] = []
        for p, dtype, scalar in plan:
            value = args[p.name]
            if dtype is None:
                if isinstance(value, np.ndarray):
                    raise TypeError(f"{name}: {p.name} is a {p.ctype}, not an array")
                values.append(scalar(value))
            elif (isinstance(value, np.ndarray) and value.dtype == dtype
                  and value.flags.c_contiguous and (p.const or value.flags.writeable)):
                values.append(value.ctypes.data)
            else:
                got = (f"a {'' if value.flags.c_contiguous else 'non-contiguous '}"
                       f"{'' if value.flags.writeable else 'read-only '}{value.dtype} array"
                       if isinstance(value, np.ndarray) else f"a {type(value).__name__}")
                raise TypeError(f"{name}: {p.name}: {got}; expected a "
                                f"C-contiguous{'' if p.const else ', writable'} {dtype} array")
        if fn(*values) != 0:
            raise MemoryError(f"{name}: no memory for the kernel's scratch buffers")


def load() -> Library:
    """The library built beside :data:`~medstack.kernels._build.SOURCE`, loaded.

    Raises
    ------
    KernelsNotBuilt
        It is not built, cannot be loaded, or was built from another version of the source.
    """
    path = _build.library_path()  # (looked up at each load: tests replace it)
    if path is None:
        raise KernelsNotBuilt(
            f"the compiled kernels are not built (no _fast library in {_build.SOURCE.parent}); "
            "run medstack-compile, or reinstall with a C compiler present")
    try:
        lib = ctypes.CDLL(str(path))
        lib.medstack_source_sha256.restype = ctypes.c_char_p
        built_from = lib.medstack_source_sha256().decode("ascii")
        library = Library(lib)
    except (OSError, AttributeError, UnicodeDecodeError) as err:
        raise KernelsNotBuilt(f"{path}: cannot be loaded ({err}); run medstack-compile "
                              "--force to rebuild it") from err
    if _build.SOURCE.is_file() and built_from != _build.source_sha256():
        raise KernelsNotBuilt(f"{path}: built from another version of {_build.SOURCE.name}; run "
                              "medstack-compile --force to rebuild it")
    return library
