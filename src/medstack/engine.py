"""The local engine: plan, read, combine and write a median image on the threads of one machine.

The steps, each reusable by :mod:`medstack.dask_backend`:

1. :func:`prepare` checks the stack against the parameters (before any work) and builds a
   :class:`StackPlan`: the sections, the kernel spec and the per-image scalars.
2. :func:`weight_stats` reads one image's weights once, in sections, for its mean weight.
3. :func:`compute_section` reads one section's rows from every input and combines them.
4. Results go to sinks: a section-by-section FITS writer and/or in-memory arrays.

:func:`median_image` runs them all; it is the Python API behind the CLI.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ._version import __version__
from .errors import InputError, ParameterError
from .inputs import ImageReader, InputImage, open_inputs, read_header
from .kernels import CombineSpec, ImageScalars, SectionResult, combine_section
from .masks import WeightMean, WeightStats
from .memory import peak_bytes
from .params import PARAMETERS, MedianParams, format_value, validate
from .sections import Section, plan_sections, section_rows
from .writer import FitsImageWriter, check_output_path, output_header

__all__ = [
    "MedianResult",
    "StackPlan",
    "compute_section",
    "default_workers",
    "median_image",
    "output_name",
    "prepare",
    "rootname",
    "run",
    "weight_stats",
]

log = logging.getLogger(__name__)

#: A progress callback: ``progress(done, total)`` after each section.
Progress = Callable[[int, int], None]


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def rootname(name: str) -> str:
    """``dir/j8bt06naq_single_sci.fits`` → ``dir/j8bt06naq``."""
    path = Path(name)
    base = path.name
    for suffix in (".gz", ".fits", ".fit"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    for tail in ("_single_sci", "_single_wht"):
        if base.endswith(tail):
            base = base[: -len(tail)]
    return str(path.with_name(base))


def output_name(root: str | os.PathLike[str]) -> Path:
    """The median file of an output rootname: ``ROOT_med.fits`` (a name ending in ``.fits`` is
    used as it is)."""
    root = os.fspath(root)
    if root.lower().endswith((".fits", ".fit")):
        return Path(root)
    return Path(f"{root}_med.fits")


@dataclass(frozen=True)
class StackPlan:
    """Everything needed to combine a checked stack, derived from inputs and parameters."""

    images: tuple[InputImage, ...]
    params: MedianParams
    spec: CombineSpec
    scalars: ImageScalars | None
    shape: tuple[int, int]
    section_rows: int
    sections: tuple[Section, ...]
    needs_weights: bool

    @property
    def n_images(self) -> int:
        """Number of inputs."""
        return len(self.images)


def prepare(images: Sequence[InputImage], params: MedianParams) -> StackPlan:
    """Check the stack against the parameters and plan the run; no pixel is read.

    Raises
    ------
    ParameterError
        minmed with one image; ``combine_nlow + combine_nhigh >= N`` for median/mean.
    InputError
        minmed with an exposure time missing or not positive (naming the file).
    """
    if not images:
        raise InputError("no input images")
    n = len(images)
    kind = params.kind
    if kind == "minmed" and n < 2:
        raise ParameterError(
            f"combine_type={params.combine_type} needs two or more input images, got 1; "
            "use median, mean or sum"
        )
    if kind in ("median", "mean") and n - params.combine_nlow - params.combine_nhigh < 1:
        raise ParameterError(
            f"combine_nlow + combine_nhigh = {params.combine_nlow + params.combine_nhigh} "
            f"rejects every one of the {n} input images; it must be less than {n}"
        )
    scalars = None
    if kind == "minmed":
        for img in images:
            if img.exptime is None:
                raise InputError(f"{img.sci}: EXPTIME missing; minmed needs the exposure time")
            if not img.exptime > 0:
                raise InputError(
                    f"{img.sci}: EXPTIME = {img.exptime:g}; minmed needs a positive exposure time"
                )
            if img.sky is None:
                log.warning("%s: MDRIZSKY missing; sky taken as 0", img.sci)
            if img.readnoise is None:
                log.warning("%s: READNSE* missing; readnoise taken as 0", img.sci)
        scalars = ImageScalars.of(
            [img.exptime for img in images],
            [img.sky or 0.0 for img in images],
            [img.readnoise or 0.0 for img in images],
        )
    ny, nx = images[0].shape
    rows = section_rows(ny, nx, params.budget_bytes, params.grow_px)
    sections = tuple(plan_sections(ny, rows, params.grow_px))
    return StackPlan(
        images=tuple(images),
        params=params,
        spec=CombineSpec.from_params(params),
        scalars=scalars,
        shape=(ny, nx),
        section_rows=rows,
        sections=sections,
        needs_weights=params.median_newmasks or kind == "minmed",
    )


def weight_stats(reader: ImageReader, rows: int) -> WeightStats:
    """One image's mean weight, reading ``rows`` rows at a time, in order."""
    acc = WeightMean()
    ny, nx = reader.shape
    buf = np.empty((min(rows, ny), nx), dtype=np.float32)
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        acc.add(reader.read(y0, y1, out=buf[: y1 - y0]))
    return WeightStats(acc.mean, acc.nan_count)


def thresholds_of(plan: StackPlan, stats: Sequence[WeightStats]) -> np.ndarray | None:
    """Per-image mask thresholds, with a warning for each image that needs one."""
    if not plan.params.median_newmasks:
        return None
    for img, st in zip(plan.images, stats):
        if st.mean is None:
            log.warning("%s: no weight >= 1e-8; the whole image is masked", img.wht)
        if st.nan_count:
            log.warning("%s: %d NaN weights, treated as bad pixels", img.wht, st.nan_count)
    return np.array([st.threshold(plan.params.combine_maskpt) for st in stats], dtype=np.float64)


def compute_section(
    plan: StackPlan,
    section: Section,
    sci_readers: Sequence[ImageReader],
    wht_readers: Sequence[ImageReader] | None,
    thresholds: np.ndarray | None,
    kernel: str = "fast",
) -> tuple[SectionResult, list[int]]:
    """Read one section from every input and combine it.

    Returns
    -------
    result : SectionResult
        The output rows of the section.
    nonfinite : list of int
        Per image, how many NaN/inf science values the section held (they are masked).
    """
    r0, r1 = section.read
    n = plan.n_images
    nx = plan.shape[1]
    sci = np.empty((n, r1 - r0, nx), dtype=np.float32)
    for i, reader in enumerate(sci_readers):
        reader.read(r0, r1, out=sci[i])
    wht = None
    if wht_readers is not None:
        wht = np.empty((n, r1 - r0, nx), dtype=np.float32)
        for i, reader in enumerate(wht_readers):
            reader.read(r0, r1, out=wht[i])
    nonfinite = [0] * n
    for i in range(n):
        if not np.isfinite(sci[i]).all():
            nonfinite[i] = int(np.count_nonzero(~np.isfinite(sci[i])))
    result = combine_section(
        sci, wht, plan.spec, thresholds=thresholds, scalars=plan.scalars, rows=section.local,
        kernel=kernel,
    )
    return result, nonfinite


def provenance(plan: StackPlan) -> tuple[list[tuple[str, object, str]], list[str]]:
    """Header cards and HISTORY lines recording how the median was made."""
    p = plan.params
    cards: list[tuple[str, object, str]] = [
        ("MEDSTACK", __version__, "medstack version that made this image"),
        ("NCOMBINE", plan.n_images, "number of images combined"),
    ]
    keys = {
        "median_newmasks": "MEDNEWMK", "combine_maskpt": "MEDMASKP", "combine_type": "MEDCTYPE",
        "combine_nsigma": "MEDNSIG", "combine_nlow": "MEDNLOW", "combine_nhigh": "MEDNHIGH",
        "combine_lthresh": "MEDLTHR", "combine_hthresh": "MEDHTHR", "combine_grow": "MEDGROW",
        "combine_bufsize": "MEDBUFSZ", "fillval": "MEDFILL",
    }
    for spec_ in PARAMETERS:
        key = keys.get(spec_.name)
        if key is None:
            continue
        value = getattr(p, spec_.name)
        if spec_.kind in ("nsigma",) or value is None:
            value = format_value(spec_, value)
        elif spec_.kind == "float" and not np.isfinite(value):
            value = format_value(spec_, value)
        cards.append((key, value, spec_.name))
    history = [f"medstack {__version__} median of {plan.n_images} images"]
    history += [f"medstack input {i + 1}: {os.path.basename(img.sci)}"
                for i, img in enumerate(plan.images)]
    return cards, history


@dataclass
class MedianResult:
    """What :func:`run` produced.

    Attributes
    ----------
    data : ndarray or None
        The median image (float32), when asked for.
    header : astropy.io.fits.Header
        The output header: the first input's, plus provenance.
    path : Path or None
        The median file written, if any.
    ngood, minchosen : ndarray or None
        The count map (uint16) and, for minmed, the minimum-chosen map (uint8), when asked for.
    map_paths : list of Path
        Map files written (``--save-maps``).
    seconds : float
        Wall time of the run.
    """

    data: np.ndarray | None
    header: fits.Header
    path: Path | None = None
    ngood: np.ndarray | None = None
    minchosen: np.ndarray | None = None
    map_paths: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    plan: StackPlan | None = None


_MAP_UNITS = {
    "ngood": ("number of good inputs per pixel", "count"),
    "minchosen": ("1 where minmed chose the minimum", ""),
}


def _map_header(header: fits.Header, key: str) -> fits.Header:
    """The median's header (same WCS and provenance) with BUNIT/MEDMAP describing a map."""
    if key not in _MAP_UNITS:
        return header
    what, unit = _MAP_UNITS[key]
    out = header.copy()
    out["BUNIT"] = (unit, "map unit")
    out["MEDMAP"] = (key, what)
    return out


class _Sinks:
    """Where section results go: files written section by section and/or in-memory arrays."""

    def __init__(self, plan: StackPlan, header: fits.Header, path: Path | None,
                 keep_data: bool, maps: bool, keep_maps: bool = False) -> None:
        self.writers: dict[str, FitsImageWriter] = {}
        self.arrays: dict[str, np.ndarray] = {}
        shape = plan.shape
        minmed = plan.spec.kind == "minmed"
        map_types: dict[str, type] = {"ngood": np.uint16}
        if minmed:
            map_types["minchosen"] = np.uint8
        files: dict[str, type] = {"median": np.float32, **(map_types if maps else {})}
        arrays: dict[str, type] = {"median": np.float32,
                                   **(map_types if maps or keep_maps else {})}
        try:
            if path is not None:
                names = {
                    "median": path,
                    "ngood": path.with_name(path.name.replace(".fits", "_ngood.fits")),
                    "minchosen": path.with_name(path.name.replace(".fits", "_minchosen.fits")),
                }
                for key, dtype in files.items():
                    self.writers[key] = FitsImageWriter(names[key], shape, dtype,
                                                        _map_header(header, key))
            if keep_data:
                for key, dtype in arrays.items():
                    self.arrays[key] = np.empty(shape, dtype=dtype)
        except BaseException:
            self.abort()
            raise

    def put(self, section: Section, result: SectionResult) -> None:
        o0, o1 = section.out
        parts = {"median": result.median, "ngood": result.ngood, "minchosen": result.minchosen}
        for key, writer in self.writers.items():
            writer.write_rows(o0, parts[key])
        for key, array in self.arrays.items():
            array[o0:o1] = parts[key]

    def commit(self) -> list[Path]:
        # The median goes last, so that its presence means a complete product.
        order = sorted(self.writers, key=lambda k: k == "median")
        return [self.writers[k].commit() for k in order]

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def run(
    plan: StackPlan,
    *,
    path: str | os.PathLike[str] | None = None,
    keep_data: bool = True,
    save_maps: bool = False,
    keep_maps: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    kernel: str = "fast",
) -> MedianResult:
    """Run a prepared plan on local threads.

    Parameters
    ----------
    plan : StackPlan
        From :func:`prepare`.
    path : path-like, optional
        Median file to write (temporary name, then renamed). Default is no file.
    keep_data : bool
        Return the image (and maps) as arrays. Default is True.
    save_maps : bool
        Also produce the count map and, for minmed, the minimum-chosen map (files beside
        ``path``, and arrays when ``keep_data``).
    keep_maps : bool
        Return the maps as arrays (with ``keep_data``) without writing map files. Default is
        False.
    workers : int, optional
        Threads. Default is all cores.
    progress : callable, optional
        ``progress(done, total)`` after each section, from the calling thread.
    kernel : {"fast", "reference"}
        Combine implementation. Default is "fast".
    """
    start = time.perf_counter()
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ParameterError(f"workers: must be >= 1, got {workers}")
    out_path = None
    inputs = [name for img in plan.images for name in (img.sci, img.wht)]
    if path is not None:
        out_path = check_output_path(path, inputs)
    ny, nx = plan.shape
    in_flight = workers + 1
    log.info(
        "%d inputs of %dx%d; %s; sections of %d rows (%d sections); budget %.3g MiB per input; "
        "%d worker(s); peak section memory about %.0f MiB",
        plan.n_images, ny, nx, plan.params.combine_type, plan.section_rows, len(plan.sections),
        plan.params.budget_bytes / 2**20, workers,
        peak_bytes(plan.n_images, plan.section_rows, nx, in_flight) / 2**20,
    )
    header_cards, history = provenance(plan)
    template = read_header(plan.images[0].sci, plan.images[0].sci_hdu)
    header = output_header(template, header_cards, history)

    sci_readers = [ImageReader(img.sci, img.sci_hdu) for img in plan.images]
    wht_readers = (
        [ImageReader(img.wht, img.wht_hdu) for img in plan.images] if plan.needs_weights else None
    )
    for reader in sci_readers + (wht_readers or []):
        if reader.integer:
            log.warning("%s: integer data converted to float32", reader.path)
    sinks = None
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medstack") as pool:
            thresholds = None
            if plan.params.median_newmasks and wht_readers is not None:
                stats = list(pool.map(lambda r: weight_stats(r, plan.section_rows), wht_readers))
                thresholds = thresholds_of(plan, stats)
            sinks = _Sinks(plan, header, out_path, keep_data, save_maps, keep_maps)
            nonfinite = np.zeros(plan.n_images, dtype=np.int64)
            pending: set[Future[Any]] = set()
            futures: dict[Future[Any], Section] = {}
            todo = iter(plan.sections)
            done = 0
            total = len(plan.sections)
            exhausted = False
            while True:
                while not exhausted and len(pending) < in_flight:
                    section = next(todo, None)
                    if section is None:
                        exhausted = True
                        break
                    fut = pool.submit(compute_section, plan, section, sci_readers, wht_readers,
                                      thresholds, kernel)
                    futures[fut] = section
                    pending.add(fut)
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    result, bad_counts = fut.result()
                    sinks.put(futures.pop(fut), result)
                    nonfinite += bad_counts
                    done += 1
                    if progress is not None:
                        progress(done, total)
            for img, count in zip(plan.images, nonfinite):
                if count:
                    log.warning("%s: %d NaN/inf science pixels, treated as masked", img.sci, count)
            written = sinks.commit() if out_path is not None else []
    except BaseException:
        if sinks is not None:
            sinks.abort()
        raise
    finally:
        for reader in sci_readers + (wht_readers or []):
            reader.close()
    arrays = sinks.arrays
    median_path = written[-1] if written else None
    return MedianResult(
        data=arrays.get("median"),
        header=header,
        path=median_path,
        ngood=arrays.get("ngood"),
        minchosen=arrays.get("minchosen"),
        map_paths=written[:-1],
        seconds=time.perf_counter() - start,
        plan=plan,
    )


def median_image(
    input: str | Sequence[str],
    output: str | os.PathLike[str] | None = None,
    *,
    weights: Sequence[str] | None = None,
    exptime: Sequence[float | None] | None = None,
    sky: Sequence[float | None] | None = None,
    readnoise: Sequence[float | None] | None = None,
    save_maps: bool = False,
    keep_data: bool = True,
    keep_maps: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    kernel: str = "fast",
    scheduler: str | None = None,
    client: Any = None,
    **params: Any,
) -> MedianResult:
    """Make the median image of a stack of singly drizzled images.

    Parameters
    ----------
    input : str or sequence of str
        Science files (``*_single_sci.fits``), exposure names (``*_flt.fits`` ...), globs or
        ``@list`` files. Each weight file is the science name with ``_single_sci`` →
        ``_single_wht``.
    output : str or path-like, optional
        Output rootname: writes ``<output>_med.fits``. Default is no file.
    weights : sequence of str, optional
        Explicit weight file per input.
    exptime, sky, readnoise : sequence of float, optional
        Per-image exposure time (s), sky (electrons) and read noise (electrons); win over the
        headers.
    save_maps : bool
        Also write/return the count-of-good-inputs map and, for minmed, the minimum-chosen map.
    keep_data : bool
        Return the arrays (default). False keeps memory bounded for large outputs.
    keep_maps : bool
        Return the maps as arrays (with ``keep_data``) without writing map files. Default is
        False.
    workers : int, optional
        Threads; with ``scheduler="dask-local"``, worker processes. Default is all cores.
    progress : callable, optional
        ``progress(done, total)`` after each section.
    kernel : {"fast", "reference"}
        Combine implementation. Default is "fast".
    scheduler : str, optional
        Where to compute: ``"threads"`` (this machine's threads), ``"dask-local"`` (a Dask
        LocalCluster of ``workers`` processes, started and closed by the call) or the address
        of a running Dask scheduler (``"tcp://host:port"``); see :mod:`medstack.dask_backend`.
        Default is "threads" unless ``client`` is given. Same result, bit for bit.
    client : distributed.Client, optional
        A connected Dask client to compute on (left open). Default is none.
    **params
        Median-step parameters by drizzlepac name (``combine_type="median"`` ...), see
        :data:`medstack.params.PARAMETERS`.

    Returns
    -------
    MedianResult
        ``.data`` and ``.header`` are the median image and its header.

    Raises
    ------
    MedstackError
        ``InputError``, ``ParameterError`` or ``OutputError``, one line naming the culprit.
    """
    p = validate(params)
    use_dask = client is not None or scheduler not in (None, "threads")
    if use_dask:  # imported here: Dask stays optional
        from . import dask_backend

        dask_backend.check_scheduler(scheduler, client)
    images = open_inputs(input, weights=weights, exptime=exptime, sky=sky, readnoise=readnoise)
    plan = prepare(images, p)
    path = output_name(output) if output is not None else None
    if use_dask:
        return dask_backend.run(plan, path=path, keep_data=keep_data, save_maps=save_maps,
                                keep_maps=keep_maps, workers=workers, progress=progress,
                                kernel=kernel, scheduler=scheduler, client=client)
    return run(plan, path=path, keep_data=keep_data, save_maps=save_maps, keep_maps=keep_maps,
               workers=workers, progress=progress, kernel=kernel)
