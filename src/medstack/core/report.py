"""What a run tells its user: the per-image table and coverage warnings."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from .plan import StackPlan
from .weights import WeightStats

__all__ = ["FEW_GOOD_FRACTION", "check_coverage", "image_table"]

log = logging.getLogger("medstack.core.run")  # the run's own voice

#: Below this fraction of output pixels with a good input, a run ends with a warning.
FEW_GOOD_FRACTION = 0.1


def check_coverage(plan: StackPlan, no_good: int) -> None:
    """Warn when few (under :data:`FEW_GOOD_FRACTION`) or no output pixels have a good input."""
    p = plan.params
    total = plan.shape[0] * plan.shape[1]
    good = total - no_good
    if good == 0:
        why = [f"combine_maskpt = {p.combine_maskpt:g}"] if p.median_newmasks else []
        if p.kind in ("median", "mean") and (p.combine_lthresh is not None
                                             or p.combine_hthresh is not None):
            why.append(f"combine_lthresh = {p.combine_lthresh}, combine_hthresh = "
                       f"{p.combine_hthresh}")
        log.warning("no output pixel has a good input: every pixel is fillval = %g (check the "
                    "weight images and %s)", p.fillval, " and ".join(why) or "the inputs")
    elif good < FEW_GOOD_FRACTION * total:
        log.warning("only %d of %d output pixels (%.2g%%) have a good input (check the weight "
                    "images and combine_maskpt = %g)", good, total, 100.0 * good / total,
                    p.combine_maskpt)


def image_table(plan: StackPlan, stats: Sequence[WeightStats] | None = None,
                masked: Sequence[int] | np.ndarray | None = None) -> str:
    """The per-image values of a run as a text table: exposure time (s), sky (electrons), read
    noise (electrons), mean weight and the fraction of its pixels the weight mask rejects
    ("-" where not known or not used)."""
    npix = plan.shape[0] * plan.shape[1]

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    rows = [("#", "image", "exptime/s", "sky/e-", "readnoise/e-", "mean weight", "masked")]
    for i, img in enumerate(plan.images):
        mean = stats[i].mean if stats is not None else None
        frac = f"{100.0 * masked[i] / npix:.1f}%" if masked is not None else "-"
        rows.append((str(i + 1), os.path.basename(img.sci), num(img.exptime, ".6g"),
                     num(img.sky, ".6g"), num(img.readnoise, ".4g"),
                     "none >= 1e-8" if stats is not None and mean is None else num(mean, ".6g"),
                     frac))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(cell.ljust(w) if k == 1 else cell.rjust(w)
                                     for k, (cell, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)
