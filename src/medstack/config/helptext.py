"""The help text of every key the median step reads: the parameters
(:data:`medstack.params.PARAMETERS`), the task-level keys, the per-image lists and the
drizzlepac keys accepted and ignored (``createMedian.getHelpAsString`` and its docstrings).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from ..params import PARAMETERS, format_value
from .keys import IGNORED_KEYS, STEP4, TASK_KEY_TYPES, TASK_KEYS
from .tables import PER_IMAGE_KEYS

__all__ = ["key_reference", "parameter_docs"]


def _kind(p: Any) -> str:
    return {"nsigma": "str", "int": "int", "float": "float", "bool": "bool"}.get(p.kind, p.kind)


def parameter_docs(indent: str = "") -> str:
    """numpydoc-style text for every parameter, from :data:`~medstack.params.PARAMETERS`
    (``indent`` before each name)."""
    wrap = textwrap.TextWrapper(width=92, initial_indent=indent + "    ",
                                subsequent_indent=indent + "    ")
    blocks = []
    for p in PARAMETERS:
        kind = _kind(p) + (" or None" if p.optional else "")
        choices = f" {{{', '.join(p.choices)}}}" if p.choices else ""
        only = "" if p.drizzlepac else " [medstack only]"
        head = f"{indent}{p.name} : {kind}{choices} (Default = {format_value(p, p.default)}){only}"
        blocks.append(head + "\n" + wrap.fill(p.help))
    return "\n".join(blocks)


def _key_docs(keys: Mapping[str, str], kind: str | Mapping[str, str], indent: str = "") -> str:
    wrap = textwrap.TextWrapper(width=92, initial_indent=indent + "    ",
                                subsequent_indent=indent + "    ")
    return "\n".join(f"{indent}{name} : {kind if isinstance(kind, str) else kind[name]}\n"
                     f"{wrap.fill(text)}" for name, text in keys.items())


def key_reference() -> str:
    """Every key with its type and meaning, in four titled sections."""
    rule = "-" * 60
    ignored = "\n".join(f"{name} : {', '.join(str(a) for a in allowed)}\n"
                        + textwrap.fill(why, 92, initial_indent="    ", subsequent_indent="    ")
                        for name, (allowed, why) in IGNORED_KEYS.items())
    return "\n".join([
        f"Parameters (section [{STEP4}] of a .cfg file)\n{rule}", parameter_docs(),
        f"\nTask inputs (top level of a .cfg file, or keyword arguments)\n{rule}",
        _key_docs(TASK_KEYS, TASK_KEY_TYPES),
        f"\nPer-image values (keyword arguments: one entry per input image)\n{rule}",
        _key_docs(PER_IMAGE_KEYS, "list of float"),
        f"\ndrizzlepac keys accepted and ignored\n{rule}", ignored])
