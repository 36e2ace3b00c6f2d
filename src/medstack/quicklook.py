"""A quick-look PNG of a median image and of its count-of-good-inputs map.

The picture is for a look, not a measurement: large images are binned for display (block
mean of the median, block minimum of the count map, so that holes stay visible). Matplotlib
is used through :class:`matplotlib.figure.Figure` with the Agg canvas only, never through
pyplot's global state, so this is safe in threads and in programs with their own backend.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from .errors import OutputError, ParameterError
from .writer import check_output_path, temp_prefix

__all__ = ["STRETCHES", "save_quicklook"]

log = logging.getLogger(__name__)

#: The accepted values of ``stretch``.
STRETCHES = ("zscale", "asinh")

_MAX_DISPLAY = 1600  # larger images are binned to at most this many pixels a side
_NAN_COLOUR = "#d62728"  # pixels that are NaN in the median


def _bin_factor(shape: tuple[int, ...]) -> int:
    return max(1, math.ceil(max(shape) / _MAX_DISPLAY))


def _block_mean(image: np.ndarray, f: int) -> np.ndarray:
    """Mean of the finite values in f × f blocks (NaN where a block has none)."""
    if f == 1:
        return image
    ny, nx = (image.shape[0] // f) * f, (image.shape[1] // f) * f
    a = image[:ny, :nx]
    finite = np.isfinite(a)
    total = np.where(finite, a, 0.0).reshape(ny // f, f, nx // f, f).sum(axis=(1, 3))
    count = finite.reshape(ny // f, f, nx // f, f).sum(axis=(1, 3))
    out = np.full(total.shape, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def _block_min(image: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return image
    ny, nx = (image.shape[0] // f) * f, (image.shape[1] // f) * f
    return image[:ny, :nx].reshape(ny // f, f, nx // f, f).min(axis=(1, 3))


def _limits(values: np.ndarray, stretch: str) -> tuple[float, float]:
    """Display limits of the finite ``values`` for ``stretch``."""
    from astropy.visualization import ZScaleInterval

    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in ZScaleInterval().get_limits(values))
    if stretch == "asinh":
        hi = max(hi, float(np.percentile(values, 99.9)))
    if not hi > lo:
        lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    return lo, hi


def _celestial_wcs(header: fits.Header | None, shape: tuple[int, int], f: int):
    """The header's celestial WCS, sliced like the displayed image; None if there is none."""
    if header is None:
        return None
    try:
        import warnings

        from astropy.wcs import WCS, FITSFixedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
        if not wcs.has_celestial or wcs.pixel_shape not in (None, (shape[1], shape[0])):
            return None
        return wcs.celestial[::f, ::f] if f > 1 else wcs.celestial
    except Exception as err:  # a broken WCS only costs the sky axes
        log.debug("quick-look: no sky axes (%s)", err)
        return None


def save_quicklook(path: str | os.PathLike[str], median: np.ndarray,
                   ngood: np.ndarray | None = None, *, title: str | None = None,
                   stretch: str = "zscale", header: fits.Header | None = None,
                   n_inputs: int | None = None, dpi: int = 100) -> Path:
    """Write a PNG of a median image and, beside it, its count-of-good-inputs map.

    Parameters
    ----------
    path : str or path-like
        The PNG to write. It is written to a temporary file in the same folder, then renamed,
        so an earlier file of that name is replaced only by a complete one.
    median : ndarray
        The median image (2-D). NaN pixels are drawn in red and left out of the stretch.
    ngood : ndarray, optional
        Number of good inputs per pixel (2-D, same shape), drawn with one colour per count.
    title : str, optional
        Title of the figure (default: ``"median image"``). A second line gives the number of
        inputs, the size, the stretch and its limits.
    stretch : {"zscale", "asinh"}, optional
        ``"zscale"``: linear between the zscale limits. ``"asinh"``: asinh stretch from the
        lower zscale limit to the 99.9th percentile, which shows faint and bright sources.
    header : astropy.io.fits.Header, optional
        The median's header: its celestial WCS (if any) labels the axes in RA/Dec, and its
        ``BUNIT`` labels the colour bar.
    n_inputs : int, optional
        Number of input images (default: the maximum of ``ngood``).
    dpi : int, optional
        Resolution of the PNG.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    ParameterError
        If ``stretch`` is unknown or the arrays are not 2-D images of the same shape.
    OutputError
        If the PNG cannot be written, or ``path`` is a special file (a device node such as
        ``/dev/null``): it is refused, never replaced by a regular file.
    """
    if stretch not in STRETCHES:
        raise ParameterError(f"stretch must be one of {', '.join(STRETCHES)}, not {stretch!r}")
    image = np.asarray(median, dtype=np.float64)
    if image.ndim != 2 or 0 in image.shape:
        raise ParameterError(f"the median must be a non-empty 2-D image, not shape {image.shape}")
    counts = None
    if ngood is not None:
        counts = np.asarray(ngood)
        if counts.shape != image.shape:
            raise ParameterError(f"ngood has shape {counts.shape}, the median {image.shape}")
        counts = np.where(np.isfinite(counts), counts, 0).astype(np.int64)
    if n_inputs is None and counts is not None:
        n_inputs = int(counts.max())
    dest = Path(path)
    if not dest.parent.is_dir():
        raise OutputError(f"{dest}: the folder {dest.parent} does not exist")
    check_output_path(dest)  # a device node (/dev/null) is refused, never replaced

    from astropy.visualization import AsinhStretch, ImageNormalize, LinearStretch
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    f = _bin_factor(image.shape)
    shown = _block_mean(image, f)
    finite = np.isfinite(image)
    n_nan = int(image.size - np.count_nonzero(finite))
    lo, hi = _limits(image[finite], stretch)
    norm = ImageNormalize(vmin=lo, vmax=hi, clip=False,  # clip=True would unmask NaN
                          stretch=AsinhStretch(0.05) if stretch == "asinh" else LinearStretch())
    wcs = _celestial_wcs(header, image.shape, f)
    unit = str(header.get("BUNIT", "")).strip() if header is not None else ""

    panels = 2 if counts is not None else 1
    ny, nx = shown.shape
    panel_w = min(max(5.2 * nx / ny, 3.5), 10.0)
    fig = Figure(figsize=(panel_w * panels + 1.6 * panels, 6.2), dpi=dpi, layout="constrained")
    kwargs = {"projection": wcs} if wcs is not None else {}
    axes = [fig.add_subplot(1, panels, k + 1, **kwargs) for k in range(panels)]

    grey = colormaps["gray"].with_extremes(bad=_NAN_COLOUR)
    ax = axes[0]
    im = ax.imshow(np.ma.masked_invalid(shown), origin="lower", cmap=grey, norm=norm,
                   interpolation="nearest")
    ax.set_title(f"median ({stretch})", fontsize=10)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label=unit or None)
    if stretch == "asinh":  # ticks evenly spaced in the stretched scale, not crowded at the top
        cbar.set_ticks(sorted({float(f"{v:.2g}") for v in norm.inverse(np.linspace(0, 1, 7))}))
        cbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))

    if counts is not None:
        cshown = _block_min(counts, f)
        top = max(int(counts.max()), n_inputs or 0, 1)
        cmap = colormaps["viridis"].resampled(top + 1)
        cnorm = BoundaryNorm(np.arange(-0.5, top + 1.5), top + 1)
        ax = axes[1]
        cim = ax.imshow(cshown, origin="lower", cmap=cmap, norm=cnorm, interpolation="nearest")
        ax.set_title(f"good inputs per pixel (of {n_inputs})", fontsize=10)
        cbar = fig.colorbar(cim, ax=ax, fraction=0.046, pad=0.03, label="good inputs")
        if top <= 20:
            cbar.set_ticks(range(top + 1))
        else:
            cbar.locator = MaxNLocator(integer=True)
            cbar.update_ticks()
    for ax in axes:
        if wcs is not None:
            ax.coords[0].set_axislabel("RA")
            ax.coords[1].set_axislabel("Dec")
        else:
            ax.set_xlabel("x (pixel)" if f == 1 else f"x (pixel / {f})")
            ax.set_ylabel("y (pixel)" if f == 1 else f"y (pixel / {f})")

    plural = "" if n_inputs == 1 else "s"
    info = [f"{n_inputs} input{plural}" if n_inputs is not None else None,
            f"{image.shape[0]}×{image.shape[1]} px" + (f", shown binned {f}×{f}" if f > 1 else ""),
            f"{stretch} [{lo:.4g}, {hi:.4g}]" + (f" {unit}" if unit else ""),
            f"{n_nan} NaN pixels (red)" if n_nan else None]
    fig.suptitle(f"{title or 'median image'}\n{'; '.join(s for s in info if s)}", fontsize=11)

    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(dest), suffix=".tmp", dir=dest.parent)
    except OSError as err:
        raise OutputError(f"{dest}: cannot write the quick-look PNG: {err.strerror or err}") \
            from err
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=dpi)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, dest)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise OutputError(f"{dest}: cannot write the quick-look PNG: "
                              f"{err.strerror or err}") from err
        raise
    log.debug("wrote quick-look %s", dest)
    return dest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
