"""How many files a run may keep open, and raising that limit when a stack needs more (where
even the hard limit is too low, the readers open each file only while they read it)."""

from __future__ import annotations

import logging

__all__ = ["descriptors_needed", "ensure_open_files"]

log = logging.getLogger(__name__)

#: Descriptors left for everything else (the output, logging, libraries, Dask).
SPARE = 64


def descriptors_needed(n_files: int, in_flight: int) -> int:
    """Descriptors a run holds with every input open and ``in_flight`` sections mapped."""
    return n_files * (in_flight + 1) + SPARE


def ensure_open_files(needed: int) -> bool:
    """Raise the soft open-file limit (never beyond the hard one) to ``needed`` where lower;
    whether ``needed`` now fits (True where there are no such limits)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return True
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as err:
        log.debug("cannot raise the open-file limit from %d to %d: %s", soft, target, err)
        return False
    log.info("open-file limit raised from %d to %d for %d descriptors", soft, target, needed)
    return target >= needed
