"""Compiled kernels (work in progress: delegates to the reference for now)."""

from __future__ import annotations

from .reference import combine_section

__all__ = ["combine_section"]
