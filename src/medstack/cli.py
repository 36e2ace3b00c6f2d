"""The ``medstack`` command.

``medstack [options] INPUT...`` writes ``ROOT_med.fits`` and says so in one line on stdout
(``medstack: wrote ROOT_med.fits (minmed of 6 images, 1024x1024, 1.84 s)``); ``-q`` prints
nothing but errors, ``-v`` adds the plan and a per-image table on stderr, ``-vv`` debug detail
(readers, sections, timings). Exit status 0 on success; on any error
2 with one line ``medstack: error: ...`` on stderr (a traceback only with ``--debug``); 130 on
Ctrl-C and 143 on SIGTERM, with no output file left behind and an earlier one untouched.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ._clilog import configure_logging, quiet_astropy_log, route_library_warnings
from ._startup import Terminated, leave, signals_raise
from ._version import version_text
from .config import TABLE_COLUMNS
from .errors import MedstackError
from .options import RUN_OPTIONS, OptionSpec
from .params import PARAMETERS, format_value

__all__ = ["build_parser", "command", "main"]

log = logging.getLogger("medstack")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _param_help(p: Any) -> str:
    default = format_value(p, p.default)
    choices = f" Choices: {', '.join(p.choices)}." if p.choices else ""
    return f"{p.help}{choices} Default: {default}."


class _Version(argparse.Action):
    """``--version``: imports neither numpy nor astropy."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(version_text())  # on stdout, as argparse's own version action
        parser.exit(0)


#: How the command line reads the value of a run option of each kind (the spec checks it).
_ARG_TYPES: dict[str, Callable[[str], Any]] = {"workers": int, "seconds": float}


def _option_help(o: OptionSpec) -> str:
    """A run option's ``--help`` text, from the spec."""
    text = (o.cli_help or o.help).replace("`workers`", "--workers").replace(
        "combine_bufsize", "--combine-bufsize")
    if "default is" not in text.lower() and o.kind != "bool":
        text += f"; default is {o.default}"
    return text


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
                        "globs or @listfiles; after --, every argument is an INPUT, even one "
                        "that starts with -")
    parser.add_argument("-o", "--output", metavar="ROOT",
                        help="output rootname: writes ROOT_med.fits (default: the first input's "
                        "rootname, beside it)")
    cfg = parser.add_argument_group("configuration files (drizzlepac .cfg)")
    cfg.add_argument("--config", metavar="FILE.cfg",
                     help="read parameters (and input, output, num_cores) from a .cfg file: "
                     "drizzlepac's createMedian task file, or a whole AstroDrizzle .cfg "
                     "(its [STEP 4: CREATE MEDIAN IMAGE] section; other sections ignored). "
                     "Options given on the command line win")
    cfg.add_argument("--write-config", metavar="FILE",
                     help="write the effective parameters as a drizzlepac .cfg file (read back "
                     "by --config and by drizzlepac); without INPUT, only write it")
    cfg.add_argument("--table", metavar="FILE",
                     help="per-image table (CSV or ECSV) listing the inputs instead of INPUT; "
                     "its values win over the headers. Columns: "
                     + ", ".join(TABLE_COLUMNS) + " (sci required; an empty cell keeps the "
                     "default; exptime in s, sky and readnoise in electrons)")
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
    for o in RUN_OPTIONS:  # the run options of the spec that have a flag
        if o.option is None:
            continue
        help_text = argparse.SUPPRESS if o.hidden else _option_help(o)
        if o.kind == "bool":
            run.add_argument(o.option, dest=o.name, action="store_true", help=help_text)
        else:
            run.add_argument(o.option, dest=o.name, default=o.default, metavar=o.metavar,
                             type=_ARG_TYPES.get(o.kind, str), choices=o.choices, help=help_text)
    run.add_argument("--png", metavar="FILE", help="write a quick-look PNG of the result")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    out = parser.add_argument_group("messages")
    out.add_argument("-v", "--verbose", action="count", default=0,
                     help="-v: the plan and a table of the per-image values (exposure time, "
                     "sky, read noise, mean weight, masked fraction); -vv: debug detail too")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="print nothing but errors (no success line, no progress bar)")
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    out.add_argument("--version", action=_Version,
                     help="the medstack, numpy, astropy and Python versions")
    return parser


def _say(args: argparse.Namespace, line: str) -> None:
    """The success line, on stdout, unless ``--quiet``. A reader that has gone away (``| head
    -c 0``) changes nothing: the work is done; stdout goes to /dev/null from then on."""
    if not args.quiet:
        try:
            print(f"medstack: {line}", flush=True)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def _run(args: argparse.Namespace) -> int:
    route_library_warnings()  # undone by the warnings.catch_warnings around the run
    try:
        return _run_routed(args)
    finally:
        quiet_astropy_log()  # an astropy imported during the run captured warnings again


def _run_routed(args: argparse.Namespace) -> int:
    from ._startup import work_begins
    from .api import run_stack
    from .config import Settings, output_root, read_config, read_table, write_config
    from .extras.progress import make_progress
    from .io.outputs import Products
    from .options import run_options
    from .params import validate

    settings = read_config(args.config) if args.config else Settings()
    given = {p.name: getattr(args, p.name) for p in PARAMETERS
             if p.name != "median" and getattr(args, p.name) is not None}
    params = validate(settings.values, **given)  # the command line wins over --config
    table = read_table(args.table, params.kind) if args.table else None
    if table is not None and args.inputs:
        raise MedstackError("give the inputs either as INPUT or in --table, not both")
    inputs = list(table.sci) if table is not None else (args.inputs or settings.input)
    output = args.output or settings.output
    if args.write_config and (not inputs or not params.median):  # only write the .cfg file
        written = write_config(args.write_config, params, input=inputs, output=output)
        if not inputs:
            _say(args, f"wrote parameters to {written}")
            return 0
        log.info("wrote parameters to %s", written)
    if not inputs:
        raise MedstackError("no INPUT given (see medstack --help)")
    if not params.median:
        log.warning("median = False in %s: the median step is off; nothing done", args.config)
        return 0
    # every product, named once: checked against every input and each other by the run,
    # before any work, and committed together, last
    products = args.products = Products(
        args.output or output_root(settings.output), png=args.png,
        config=args.write_config, beside_first=True)
    per_image = {} if table is None else {
        "weights": table.wht, "exptime": table.exptime, "sky": table.sky,
        "readnoise": table.readnoise}
    given_options = {o.name: getattr(args, o.name) for o in RUN_OPTIONS if o.option}
    if args.workers is None:
        given_options["workers"] = settings.num_cores  # from --config, unless --workers
    # checked before any work; the command line never keeps the arrays
    options = run_options(given_options, keep_data=False, quicklook=bool(args.png))
    show = args.progress if args.progress is not None else (sys.stderr.isatty() and not args.quiet)
    timings: dict[str, float] = {}

    def before_commit(result: Any) -> None:
        """The PNG and the .cfg file, made once the image is, staged with the run's other
        products (renamed into place together, all or nothing)."""
        quiet_astropy_log()
        if products.png is not None and products.median is not None:
            start = time.perf_counter()
            result.quicklook.save(products.png, header=result.header, into=products,
                                  title=f"{products.median.name}: {params.combine_type} of "
                                  f"{result.plan.n_images} images")
            timings["png"] = time.perf_counter() - start
            log.info("quick-look %s: %.2f s", products.png, timings["png"])
        if products.config is not None:
            write_config(products.config, params, input=inputs, output=output, into=products)
            log.info("wrote parameters to %s", products.config)

    work_begins()  # signals from here on: what the run begins is cleaned up (see _startup)
    with make_progress(enabled=bool(show) and not args.quiet) as bar:

        def progress(done: int, total: int) -> None:
            args.held.show_held()  # the work is under way: the checks' warnings now show
            quiet_astropy_log()  # (where the inputs needed astropy)
            if bar is not None:
                bar(done, total)

        result = run_stack(inputs, params, options.replace(
            progress=progress, before_commit=before_commit), output=products, **per_image)
    n_used = result.plan.n_images if result.plan is not None else 0
    ny, nx = result.plan.shape if result.plan is not None else (0, 0)
    line = (f"wrote {result.path} ({params.combine_type} of {n_used} image"
            f"{'' if n_used == 1 else 's'}, {ny}x{nx}, {result.seconds:.2f} s)")
    for extra in result.map_paths:
        line += f"; {extra}"
    if args.png:
        line += f"; quick-look {args.png} ({timings['png']:.2f} s)"
    _say(args, line)
    return 0


def _what_was_written(args: argparse.Namespace) -> str:
    """For a run that failed or was stopped: whether its products were written (all of
    them, or none: every earlier file as it was)."""
    products = args.products
    if products is not None and products.not_restored:
        return (f"only {', '.join(map(str, products.not_restored))} written (the run's other "
                "products were not)")
    if products is None or not products.committed:
        return "no output written"
    return f"every output written: {', '.join(map(str, products.roles().values()))}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Ctrl-C at any moment, even while the command is still starting, gives the one line
    ``medstack: interrupted; ...`` and status 130 (the heavy imports happen in here, where it
    is caught).
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("medstack: interrupted; no output written", file=sys.stderr)
        return 130


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The arguments; INPUT names may follow options, and every argument after ``--`` is an
    INPUT name, even one that starts with a dash (``parse_intermixed_args`` does not end the
    options there itself)."""
    end = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_intermixed_args(argv[:end])
    args.inputs = [*args.inputs, *argv[end + 1:]]
    return args


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = _parse(parser, sys.argv[1:] if argv is None else list(argv))
    args.products = None
    restore_logging, held = configure_logging(args.verbose, args.quiet,
                                               hold=not (args.verbose or args.debug))
    args.held = held
    try:
        with warnings.catch_warnings(), signals_raise():
            status = _run(args)
        held.show_held()
        return status
    except MedstackError as err:
        held.drop()  # one line: the error, not the warnings that came before it
        if args.debug:
            raise
        message = " ".join(str(err).splitlines())  # always one line
        if args.products is not None and (args.products.committed
                                          or args.products.not_restored):
            message += f" ({_what_was_written(args)})"
        status, line = 2, f"error: {message}"
    except KeyboardInterrupt:
        held.drop()
        status, line = 130, f"interrupted; {_what_was_written(args)}"
    except Terminated:
        held.drop()
        status, line = 143, f"terminated; {_what_was_written(args)}"
    except MemoryError:
        held.drop()
        status, line = 2, "error: out of memory; lower --combine-bufsize or --workers"
    finally:
        restore_logging()
    # The exception is gone, and with it the frames it held; an object they held that was
    # half made when the signal arrived (a Dask Future) prints from its finalizer now, so
    # before this line, which stays the command's last
    gc.collect()
    print(f"medstack: {line}", file=sys.stderr)
    return status


def command() -> NoReturn:
    """The ``medstack`` command (its console script): :func:`main` on ``sys.argv``, then exit
    (:func:`medstack._startup.leave`).

    Before NumPy is imported it also sets ``OPENBLAS_NUM_THREADS=1`` unless the environment
    sets it: medstack calls no BLAS routine, and OpenBLAS would otherwise start a thread per
    core at import, which spin for a while (about 0.07 s of a small run).
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    leave(main())


if __name__ == "__main__":  # pragma: no cover
    command()
