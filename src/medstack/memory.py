"""Memory planning: how many bytes a run holds at its peak, from its plan alone."""

from __future__ import annotations

__all__ = ["section_bytes", "peak_bytes"]

#: Bytes per input pixel of one section held by the engine and the fast kernel: the float32
#: science and weight buffers (4 + 4).
BUFFER_BYTES_PER_PIXEL = 8
#: Bytes per output pixel of one section: the float32 result, uint16 count, uint8 flag and
#: minmed's per-pixel temporaries (a few float64 planes).
OUTPUT_BYTES_PER_PIXEL = 48


def section_bytes(n_images: int, rows: int, nx: int) -> int:
    """Bytes one section in flight holds: input buffers plus per-pixel outputs/temporaries."""
    return rows * nx * (n_images * BUFFER_BYTES_PER_PIXEL + OUTPUT_BYTES_PER_PIXEL)


def peak_bytes(n_images: int, rows: int, nx: int, in_flight: int) -> int:
    """Bytes of ``in_flight`` sections at once (the engine's workers plus its read-ahead)."""
    return in_flight * section_bytes(n_images, rows, nx)
