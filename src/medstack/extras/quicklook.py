"""A quick-look PNG of a median image and of its count-of-good-inputs map.

The picture is for a look, not a measurement: :class:`QuickLook` bins large images for display
as a run produces their rows (block mean of the median, block minimum of the count map, so
that holes stay visible) and samples them evenly for the stretch limits, so the PNG of an image
of any size costs a few tens of MiB. Matplotlib is used through its Agg ``Figure`` only, never
pyplot's global state, so this is safe in threads and in programs with their own backend.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import ParameterError
from ..io.outputs import Products, atomic_file

__all__ = ["STRETCHES", "QuickLook", "display_wcs", "save_quicklook"]

log = logging.getLogger(__name__)

#: The accepted values of ``stretch``.
STRETCHES = ("zscale", "asinh")

_MAX_DISPLAY = 512  # larger images are binned to at most this many pixels a side: the PNG
# shows each panel about 480 pixels high, so more would only cost memory and alias
_MAX_SAMPLES = 250_000  # pixels sampled (evenly) for the stretch limits
_NAN_COLOUR = "#d62728"  # pixels that are NaN in the median


def _bin_factor(shape: tuple[int, ...]) -> int:
    return max(1, math.ceil(max(shape) / _MAX_DISPLAY))


def _bin_rows(rows: np.ndarray, f: int) -> np.ndarray:
    """Rows ``(k, nx)`` binned by ``f`` along x (the last ``nx % f`` columns dropped), as
    ``(k, nx // f, f)``."""
    bx = rows.shape[1] // f
    return rows[:, : bx * f].reshape(rows.shape[0], bx, f)


class QuickLook:
    """What the quick-look shows of an image, fed row block by row block in any order with
    :meth:`add`, written with :meth:`save`: the image binned by :attr:`factor` (block mean of
    the finite values, block minimum of the counts; partial blocks at the end not shown), an
    even sample of at most 250 000 pixels for the stretch limits, and the NaN count.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` of the full image, in pixels.
    counts : bool, optional
        Whether a count map comes with the rows. Default is True.
    """

    def __init__(self, shape: tuple[int, int], *, counts: bool = True) -> None:
        ny, nx = self.shape = (int(shape[0]), int(shape[1]))
        self.factor = f = _bin_factor(self.shape)
        self._binned = (ny // f, nx // f)
        self._sum = np.zeros(self._binned)
        self._count = np.zeros(self._binned, dtype=np.int32)
        #: The binned count map as shown (block minimum), or None without one.
        self.counts = (np.full(self._binned, np.iinfo(np.int32).max, dtype=np.int32)
                       if counts else None)
        self.max_count = 0  # of the full-resolution count map
        self._step = max(1, math.ceil(ny * nx / _MAX_SAMPLES))
        self._samples: dict[int, np.ndarray] = {}
        self.n_nan = 0

    def add(self, y0: int, median: np.ndarray, ngood: np.ndarray | None = None) -> None:
        """Add image rows ``[y0, y0 + k)``: ``median`` of shape ``(k, nx)`` and, when the
        quick-look has a count map, ``ngood`` of the same shape (NaN counts as 0)."""
        f, nx = self.factor, self.shape[1]
        rows = np.asarray(median)
        finite = np.isfinite(rows)
        self.n_nan += int(rows.size - np.count_nonzero(finite))
        first = (-y0 * nx) % self._step  # the sample: every step-th pixel of the whole image
        sample = rows.ravel()[first :: self._step]
        self._samples[y0] = sample[np.isfinite(sample)].astype(np.float64)
        if self.counts is not None:
            counts = np.nan_to_num(np.asarray(ngood), nan=0).astype(np.int32, copy=False)
            self.max_count = max(self.max_count, int(counts.max()))
        k = min(rows.shape[0], self._binned[0] * f - y0)  # the rows in whole blocks
        if k <= 0:
            return
        # the rows are consecutive: first reduce each run of rows in one block, then bin in x
        blocks = np.arange(y0, y0 + k) // f
        starts = np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]])
        where = blocks[starts]
        good = finite[:k]
        values = np.where(good, rows[:k], np.float32(0.0))
        self._sum[where] += _bin_rows(np.add.reduceat(values, starts, axis=0, dtype=np.float64),
                                      f).sum(axis=2)
        self._count[where] += _bin_rows(np.add.reduceat(good, starts, axis=0, dtype=np.int32),
                                        f).sum(axis=2)
        if self.counts is not None:
            least = _bin_rows(np.minimum.reduceat(counts[:k], starts, axis=0), f).min(axis=2)
            self.counts[where] = np.minimum(self.counts[where], least)

    @property
    def median(self) -> np.ndarray:
        """The binned median as shown (NaN where a block has no finite value)."""
        out = np.full(self._binned, np.nan)
        np.divide(self._sum, self._count, out=out, where=self._count > 0)
        return out

    def sample(self) -> np.ndarray:
        """The finite pixels of the even sample, in image order."""
        return np.concatenate([np.empty(0), *(self._samples[y] for y in sorted(self._samples))])

    def save(self, path: str | os.PathLike[str], *, title: str | None = None,
             stretch: str = "zscale", header: fits.Header | None = None,
             n_inputs: int | None = None, into: Products | None = None) -> Path:
        """Write the PNG; the parameters, return value and errors are those of
        :func:`save_quicklook`. With ``into``, the PNG is one of a run's products, named and
        checked with them: it is only staged, and renamed into place with them
        (:meth:`medstack.io.outputs.Products.commit`)."""
        if stretch not in STRETCHES:
            raise ParameterError(f"stretch must be one of {', '.join(STRETCHES)}, not {stretch!r}")
        counts = self.counts
        if n_inputs is None and counts is not None:
            n_inputs = self.max_count

        from astropy.visualization import AsinhStretch, ImageNormalize, LinearStretch
        from matplotlib import colormaps
        from matplotlib.colors import BoundaryNorm
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        f, shown, n_nan = self.factor, self.median, self.n_nan
        lo, hi = _limits(self.sample(), stretch)
        scale = AsinhStretch(0.05) if stretch == "asinh" else LinearStretch()
        norm = ImageNormalize(vmin=lo, vmax=hi, clip=False, stretch=scale)  # clip unmasks NaN
        wcs = display_wcs(header, self.shape, f)
        unit = str(header.get("BUNIT", "")).strip() if header is not None else ""

        panels = 2 if counts is not None else 1
        ny, nx = shown.shape
        panel_w = min(max(5.2 * nx / ny, 3.5), 10.0)
        fig = Figure(figsize=((panel_w + 1.6) * panels, 6.2), dpi=100, layout="constrained")
        kwargs = {"projection": wcs} if wcs is not None else {}
        axes = [fig.add_subplot(1, panels, k + 1, **kwargs) for k in range(panels)]

        grey = colormaps["gray"].with_extremes(bad=_NAN_COLOUR)
        im = axes[0].imshow(np.ma.masked_invalid(shown.astype(np.float32)), origin="lower",
                            cmap=grey, norm=norm, interpolation="nearest")
        axes[0].set_title(f"median ({stretch})", fontsize=10)
        cbar = fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.03, label=unit or None)
        if stretch == "asinh":  # ticks evenly spaced in the stretched scale, not all at the top
            cbar.set_ticks(sorted({float(f"{v:.2g}") for v in norm.inverse(np.linspace(0, 1, 7))}))
            cbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))

        if counts is not None:
            top = max(self.max_count, n_inputs or 0, 1)
            cmap = colormaps["viridis"].resampled(top + 1)
            cnorm = BoundaryNorm(np.arange(-0.5, top + 1.5), top + 1)
            cim = axes[1].imshow(counts, origin="lower", cmap=cmap, norm=cnorm,
                                 interpolation="nearest")
            axes[1].set_title(f"good inputs per pixel (of {n_inputs})", fontsize=10)
            fig.colorbar(cim, ax=axes[1], fraction=0.046, pad=0.03, label="good inputs",
                         ticks=range(top + 1) if top <= 20 else MaxNLocator(integer=True))
        for ax in axes:
            if wcs is not None:
                ax.coords[0].set_axislabel("RA")
                ax.coords[1].set_axislabel("Dec")
            else:
                ax.set_xlabel("x (pixel)" if f == 1 else f"x (pixel / {f})")
                ax.set_ylabel("y (pixel)" if f == 1 else f"y (pixel / {f})")

        plural = "" if n_inputs == 1 else "s"
        binned = f", shown binned {f}×{f}" if f > 1 else ""
        info = [f"{n_inputs} input{plural}" if n_inputs is not None else None,
                f"{self.shape[0]}×{self.shape[1]} px{binned}",
                f"{stretch} [{lo:.4g}, {hi:.4g}]" + (f" {unit}" if unit else ""),
                f"{n_nan} NaN pixels (red)" if n_nan else None]
        fig.suptitle(f"{title or 'median image'}\n{'; '.join(s for s in info if s)}", fontsize=11)

        with atomic_file(path, "the quick-look PNG", into=into) as fh:
            fig.savefig(fh, format="png", dpi=100)
        log.debug("wrote quick-look %s", path)
        return Path(path)


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


def display_wcs(header: fits.Header | None, shape: tuple[int, int], f: int = 1):
    """The header's celestial WCS for an image of ``shape`` shown binned ``f`` × ``f`` (block
    ``j`` covering pixels ``f·j … f·j + f − 1``, partial blocks dropped); None if there is none.

    The pixel scale (``CD`` matrix, or ``CDELT``) is multiplied by ``f`` and the reference
    pixel moved to the binned grid, ``CRPIX' = (CRPIX + (f − 1)/2) / f``, so the axes span the
    same sky as the full image. A WCS with distortion terms (SIP, lookup tables), which
    binning cannot carry, gives None.
    """
    try:  # (no header gives a WCS without celestial axes)
        from astropy.wcs import WCS, FITSFixedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
        if not wcs.has_celestial or wcs.pixel_shape not in (None, (shape[1], shape[0])):
            return None
        wcs = wcs.celestial.deepcopy()
        if f > 1 and any(getattr(wcs, a) is not None
                         for a in ("sip", "cpdis1", "cpdis2", "det2im1", "det2im2")):
            log.debug("quick-look: no sky axes (a distorted WCS cannot be binned)")
            return None
        if wcs.wcs.has_cd():
            wcs.wcs.cd = wcs.wcs.cd * f
        else:
            wcs.wcs.cdelt = wcs.wcs.cdelt * f
        wcs.wcs.crpix = (wcs.wcs.crpix + (f - 1) / 2.0) / f
        wcs.wcs.set()
        wcs.pixel_shape = (shape[1] // f, shape[0] // f)
        return wcs
    except Exception as err:  # a broken WCS only costs the sky axes
        log.debug("quick-look: no sky axes (%s)", err)
        return None


def save_quicklook(path: str | os.PathLike[str], median: np.ndarray,
                   ngood: np.ndarray | None = None, *, title: str | None = None,
                   stretch: str = "zscale", header: fits.Header | None = None,
                   n_inputs: int | None = None) -> Path:
    """Write a PNG of a median image and, beside it, its count-of-good-inputs map.

    Parameters
    ----------
    path : str or path-like
        The PNG, written under a temporary name beside it then renamed: an earlier file of that
        name is replaced only by a complete one.
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
    image = np.asarray(median)
    if image.ndim != 2 or 0 in image.shape:
        raise ParameterError(f"the median must be a non-empty 2-D image, not {image.shape}")
    if ngood is not None and np.shape(ngood) != image.shape:
        raise ParameterError(f"ngood has shape {np.shape(ngood)}, the median {image.shape}")
    look = QuickLook(image.shape, counts=ngood is not None)
    look.add(0, image, ngood)
    return look.save(path, title=title, stretch=stretch, header=header, n_inputs=n_inputs)
