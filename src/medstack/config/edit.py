"""drizzlepac's ``editpars=True`` without its GUI: the parameters as a ``.cfg`` file in the
user's ``$VISUAL``/``$EDITOR``, re-opened with the error at its top until they are valid."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ..errors import MedstackError, ParameterError
from . import Settings, read_config
from .write import config_text

__all__ = ["edit_settings"]

log = logging.getLogger(__name__)

_ERROR_MARK = "# medstack: ERROR: "


def edit_settings(settings: Settings, task: str) -> Settings:
    """Open the parameters in ``$VISUAL``/``$EDITOR`` as the ``.cfg`` file ``<task>.cfg``
    until they are valid; return them (drizzlepac's ``editpars=True``, without its GUI).

    Raises
    ------
    ParameterError
        Without a terminal; if the editor cannot run or fails; if the file is saved unchanged
        after an error (written at its top).
    """
    try:
        terminal = sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stdin
        terminal = False
    if not terminal:
        raise ParameterError("editpars=True needs an interactive terminal to run "
                             "$VISUAL/$EDITOR, and stdin is not one; write the parameters to a "
                             ".cfg file (medstack --write-config FILE), edit it, and pass "
                             "configObj=FILE instead")
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.TemporaryDirectory(prefix="medstack-editpars-") as tmp:
        path = Path(tmp) / f"{task}.cfg"
        path.write_text(config_text(settings.params, input=settings.input,
                                    output=settings.output), encoding="utf-8")
        failed_text = None
        while True:
            try:
                status = subprocess.run([*shlex.split(editor), str(path)], check=False).returncode
            except OSError as err:
                raise ParameterError(f"editpars: cannot run the editor {editor!r} "
                                     f"({err.strerror})") from err
            if status != 0:
                raise ParameterError(f"editpars: the editor {editor!r} exited with status "
                                     f"{status}; nothing was run")
            edited = path.read_text(encoding="utf-8")
            try:
                new = read_config(path)
                if new.input is None:
                    raise ParameterError(f"{path}: input: no input images given")
                _ = new.params  # validates the values
                return replace(settings, values=new.values, input=new.input, output=new.output)
            except MedstackError as err:
                if edited == failed_text:
                    raise ParameterError(f"editpars: {err} "
                                         "(file saved unchanged; giving up)") from err
                log.error("editpars: %s; re-opening the editor", err)
                kept = [line for line in edited.splitlines() if not line.startswith(_ERROR_MARK)]
                failed_text = "\n".join([f"{_ERROR_MARK}{err}", *kept]) + "\n"
                path.write_text(failed_text, encoding="utf-8")
