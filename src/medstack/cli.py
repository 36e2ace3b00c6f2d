"""The ``medstack`` command.

``medstack [options] INPUT...`` writes ``ROOT_med.fits``. Exit status 0 on success; on any error
2 with one line ``medstack: error: ...`` on stderr (a traceback only with ``--debug``); 130 on
Ctrl-C and 143 on SIGTERM, with no output file left behind and an earlier one untouched.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import textwrap
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

from ._version import __version__
from .errors import MedstackError
from .params import PARAMETERS, format_value

__all__ = ["build_parser", "main"]

log = logging.getLogger("medstack")


class _Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _param_help(p: Any) -> str:
    default = format_value(p, p.default)
    choices = f" Choices: {', '.join(p.choices)}." if p.choices else ""
    return f"{p.help}{choices} Default: {default}."


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; the median-step options come from :data:`medstack.params.PARAMETERS`."""
    parser = _Parser(
        prog="medstack",
        description="Median image of a stack of singly drizzled images (drizzlepac's "
        "createMedian step, bit for bit).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent(
            """\
            examples:
              medstack *_single_sci.fits -o visit1
              medstack @inputs.lst --combine-type median --combine-nhigh 1
              medstack j8bt06n*_flt.fits --combine-nsigma "4 3" --combine-grow 1
            """
        ),
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="science singles (*_single_sci.fits), exposure names (*_flt.fits), "
                        "globs or @listfiles")
    parser.add_argument("-o", "--output", metavar="ROOT",
                        help="output rootname: writes ROOT_med.fits (default: the first input's "
                        "rootname, beside it)")
    group = parser.add_argument_group("median-step parameters (drizzlepac names)")
    for p in PARAMETERS:
        if p.name == "median":
            continue
        if p.kind == "bool":
            group.add_argument(p.option, dest=p.name, action=argparse.BooleanOptionalAction,
                               default=None, help=_param_help(p))
        else:
            group.add_argument(p.option, dest=p.name, default=None, metavar=p.kind.upper(),
                               help=_param_help(p))
    run = parser.add_argument_group("running")
    run.add_argument("--workers", type=int, default=None, metavar="N",
                     help="threads (default: all cores)")
    run.add_argument("--save-maps", action="store_true",
                     help="also write ROOT_med_ngood.fits (good inputs per pixel) and, for "
                     "minmed, ROOT_med_minchosen.fits (1 where the minimum was chosen)")
    run.add_argument("--png", metavar="FILE", help="write a quick-look PNG of the result")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    run.add_argument("--kernel", choices=("fast", "reference"), default="fast",
                     help=argparse.SUPPRESS)
    out = parser.add_argument_group("messages")
    out.add_argument("-v", "--verbose", action="count", default=0, help="more log messages")
    out.add_argument("-q", "--quiet", action="store_true", help="only errors")
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    out.add_argument("--version", action="version", version=f"medstack {__version__}")
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else
                                         logging.INFO if verbose else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("medstack: %(levelname)s: %(message)s"))
    root = logging.getLogger("medstack")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


def _run(args: argparse.Namespace) -> int:
    from .engine import median_image, output_name, rootname
    from .inputs import expand_inputs
    from .params import validate
    from .progress import make_progress

    if not args.inputs:
        raise MedstackError("no INPUT given (see medstack --help)")
    given = {p.name: getattr(args, p.name) for p in PARAMETERS
             if p.name != "median" and getattr(args, p.name) is not None}
    params = validate(given)
    names = expand_inputs(args.inputs)
    root = args.output if args.output else rootname(names[0])
    path = output_name(root)
    show = args.progress if args.progress is not None else (sys.stderr.isatty() and not args.quiet)
    with make_progress(enabled=bool(show) and not args.quiet) as progress:
        result = median_image(
            names, root, keep_data=bool(args.png), save_maps=args.save_maps or bool(args.png),
            workers=args.workers, progress=progress, kernel=args.kernel,
            **{k: getattr(params, k) for k in given},
        )
    if args.png:
        from .quicklook import save_quicklook

        save_quicklook(args.png, result.data, result.ngood,
                       title=f"{path.name}: {params.combine_type} of {len(names)} images")
        log.info("quick-look image %s", args.png)
    log.info("wrote %s in %.2f s", result.path, result.seconds)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    old_term = None
    try:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        pass
    try:
        return _run(args)
    except MedstackError as err:
        if args.debug:
            raise
        print(f"medstack: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medstack: interrupted; no output written", file=sys.stderr)
        return 130
    except _Terminated:
        print("medstack: terminated; no output written", file=sys.stderr)
        return 143
    except MemoryError:
        print("medstack: error: out of memory; lower --combine-bufsize or --workers",
              file=sys.stderr)
        return 2
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
