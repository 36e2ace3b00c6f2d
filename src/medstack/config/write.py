"""The median-step parameters written as a drizzlepac ``.cfg`` file, from
:data:`medstack.params.PARAMETERS` (each value with its help text above it), which both
:func:`medstack.config.read_config` and drizzlepac's loader read back.
"""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configobj import ConfigObj

from .._version import __version__
from ..errors import ParameterError
from ..params import PARAMETERS, MedianParams, format_value
from .keys import STEP4, TASK_KEYS, TASK_TYPES, map_names

if TYPE_CHECKING:  # pragma: no cover
    from ..io.outputs import Products

__all__ = ["config_text", "write_config"]

log = logging.getLogger("medstack.config")


def config_text(params: MedianParams, *, input: Any = None, output: str | None = None,
                task: str | None = None, comments: bool = True,
                folder: str | os.PathLike[str] | None = None) -> str:
    """The parameters as a drizzlepac ``.cfg`` file.

    Parameters
    ----------
    params : MedianParams
        The values to write.
    input : str or list of str, optional
        The ``input`` key (a list is written as one comma-separated string).
    output : str, optional
        The ``output`` key; only the AstroDrizzle layout has it.
    task : {"createMedian", "astrodrizzle"}, optional
        The layout. Default: ``createMedian`` when its spec can hold the values
        (``combine_type`` one of minmed, median, sum, and no ``output``), else ``astrodrizzle``
        (the top-level keys and the STEP 4 section; drizzlepac's loader fills in the others).
    comments : bool
        Write each parameter's help text above it. Default is True.
    folder : path-like, optional
        The folder the file will be in: ``input``/``output`` names are written relative to it
        where they lie in it, else absolute. Default is None: absolute names.

    Returns
    -------
    str

    Notes
    -----
    ``average``/``iaverage`` are written as ``mean``/``imean`` (what they mean in medstack;
    drizzlepac's spec does not allow them). ``fillval`` (medstack only) is written only when it
    is not its default; drizzlepac's loader rejects a file holding it.
    """
    where = os.path.realpath(folder) if folder is not None else None

    def located(name: str) -> str:
        full = os.path.abspath(os.path.expanduser(name))
        if where is not None and os.path.commonpath([os.path.realpath(full), where]) == where:
            return os.path.relpath(os.path.realpath(full), where)
        return full

    def put(section: Any, key: str, value: str, comment: str) -> None:
        section[key] = value
        if comments:  # a blank comment line, then the text
            section.comments[key] = ["#"] + ["# " + line for line in textwrap.wrap(comment, 92)]

    input_text = str(getattr(input, "sci", ""))  # None, or one InputImage
    if input is not None and not hasattr(input, "sci"):
        names = map_names(input if isinstance(input, (str, os.PathLike)) else
                          [str(getattr(i, "sci", None) or os.fspath(i)) for i in input], located)
        input_text = names if isinstance(names, str) else ", ".join(names)
    if output is not None:
        output = located(str(output))
    ctype = ("i" if params.fill else "") + params.kind  # average -> mean, iaverage -> imean
    if task is None:
        task = "createMedian" if ctype in TASK_TYPES and output is None else "astrodrizzle"
    if task not in ("createMedian", "astrodrizzle"):
        raise ParameterError(f"task: unknown value {task!r}; choose one of: createMedian, "
                             "astrodrizzle")
    if task == "createMedian" and (ctype not in TASK_TYPES or output is not None):
        raise ParameterError(f"task: the createMedian layout cannot hold combine_type={ctype} "
                             "or output; use astrodrizzle")
    cfg = ConfigObj(interpolation=False)
    cfg.initial_comment = [
        f"# Parameters of the median step, written by medstack {__version__}.",
        f"# drizzlepac's {task} .cfg layout: read by medstack (--config FILE, configObj=FILE)",
        "# and by drizzlepac (teal.load(FILE), astrodrizzle/createMedian configObj=FILE).",
    ]
    cfg["_task_name_"] = task
    put(cfg, "input", input_text, TASK_KEYS["input"])
    if task == "astrodrizzle":
        put(cfg, "output", "" if output is None else output, TASK_KEYS["output"])
    cfg[STEP4] = {}
    cfg.comments[STEP4] = [""]
    for p in PARAMETERS:
        value = format_value(p, getattr(params, p.name))
        if not p.drizzlepac:
            if value == format_value(p, p.default):
                continue
            log.warning("%s = %s written; drizzlepac's loader rejects this medstack-only key",
                        p.name, value)
        choices = f" Choices: {', '.join(p.choices)}." if p.choices else ""
        only = "" if p.drizzlepac else " (medstack only; drizzlepac's loader rejects this key.)"
        put(cfg[STEP4], p.name, ctype if p.name == "combine_type" else value,
            f"{p.help}{choices} Default: {format_value(p, p.default)}.{only}")
    cfg["_RULES_"] = {}
    cfg.comments["_RULES_"] = [""]
    return "\n".join(cfg.write()) + "\n"


def write_config(path: str | os.PathLike[str], params: MedianParams, *, input: Any = None,
                 output: str | None = None, task: str | None = None,
                 into: Products | None = None) -> Path:
    """Write :func:`config_text` to ``path`` (names relative to its folder where they lie in
    it), replacing any earlier file atomically; with ``into``, together with the run's other
    products (:func:`medstack.io.outputs.atomic_file`).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OutputError
        If the file cannot be written (naming it).
    """
    from ..io.outputs import atomic_file

    out = Path(path)  # checked by atomic_file: never a device node replaced by a regular file
    text = config_text(params, input=input, output=output, task=task, folder=out.parent)
    with atomic_file(out, "the configuration file", into=into) as fh:
        fh.write(text.encode("utf-8"))
    return out
