"""Run drizzlepac 3.11.0's real median step on existing singly drizzled images.

This script calls ``drizzlepac.createMedian._median(imageObjectList, paramDict)`` -- the very
function AstroDrizzle runs as its "Create Median" step -- on a list of existing
``*_single_sci.fits`` / ``*_single_wht.fits`` files.  drizzlepac's image objects are replaced by
minimal stubs that carry exactly what ``_median`` reads:

* ``outputNames`` (``outMedian``, ``outSingle``, ``outSWeight``), ``getOutputName``, ``inmemory``
  (always False: files are read from disk, section by section, as in AstroDrizzle);
* ``getGain(1)`` (1.0), ``_image["sci", 1]._exptime`` (the given exptime),
  ``native_units`` (``ELECTRONS``), ``scienceExt``, ``_filename``;
* ``returnAllChips()``: one chip with ``subtractedSky`` = the given sky (electrons),
  ``_conversionFactor`` = 1 and ``_rdnoise`` = the given readnoise (electrons); so drizzlepac's
  ``backgroundValueList`` / ``readnoiseList`` hold exactly the given values
  (``sqrt(rn**2) == rn`` in IEEE arithmetic).

``proc_unit`` is ``electrons``, so thresholds are never rescaled (docs/spec.md Q20), and
``compress`` is False (data in the primary HDU).

It needs an environment with ``drizzlepac==3.11.0`` (drizzlepac is imported inside ``main()``,
so this module can be imported and linted without it).

Usage -- per-image values from a JSON file laid out like ``cases.json``::

    python benchmarks/drizzlepac_median.py --images cases.json [--stack NAME] [--case NAME] \\
        --output ROOT [--combine-type minmed --combine-nsigma "4 3" --combine-maskpt 0.3 \\
        --combine-nlow 0 --combine-nhigh 0 --combine-lthresh X --combine-hthresh X \\
        --combine-grow 1 --combine-bufsize MB --no-median-newmasks]

The JSON file holds either ``{"images": [...]}`` or ``{"stacks": {NAME: {"images": [...]}}}``
(then ``--stack`` picks one; it defaults to the case's ``stack``).  Each image is
``{"sci": ..., "wht": ..., "exptime": s, "sky": electrons, "readnoise": electrons}``; file names
are relative to the JSON file's folder.  ``--case NAME`` takes the parameters of that entry of
the file's ``cases`` list (keys ``combine_type, nsigma, grow, maskpt, nlow, nhigh, lthresh,
hthresh, newmasks, bufsize``); options given on the command line override them.

Or list the files directly::

    python benchmarks/drizzlepac_median.py --sci a_single_sci.fits b_single_sci.fits \\
        [--wht a_single_wht.fits b_single_wht.fits] --exptime 60 60 --sky 230.5 230.4 \\
        --readnoise 4.71 4.71 --output ROOT [options]

(without ``--wht`` the weight name is the science name with ``_sci`` replaced by ``_wht``;
a single ``--exptime``/``--sky``/``--readnoise`` value is used for every image).

Inputs ending in ``.gz`` are decompressed into a temporary folder first.  Unset parameters take
AstroDrizzle's defaults: ``minmed``, nsigma ``"4 3"``, maskpt 0.3, nlow = nhigh = 0, no
thresholds, grow 1, newmasks on, bufsize None (1 MiB).

Writes ``ROOT_med.fits`` exactly as drizzlepac does, and prints one JSON line to stdout::

    {"import_s": ..., "compute_s": ..., "total_s": ...}

(``compute_s`` is the ``_median`` call, including its write; drizzlepac's own chatter is sent to
stderr.)
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

DEFAULTS = {
    "combine_type": "minmed",
    "nsigma": "4 3",
    "maskpt": 0.3,
    "nlow": 0,
    "nhigh": 0,
    "lthresh": None,
    "hthresh": None,
    "grow": 1,
    "newmasks": True,
    "bufsize": None,
}


class _Chip:
    """What ``_median`` reads from one chip of an image object."""

    def __init__(self, exptime: float, sky: float, readnoise: float) -> None:
        self._exptime = exptime
        self._gain = 1.0
        self.subtractedSky = sky
        self._conversionFactor = 1.0
        self._rdnoise = readnoise


class StubImage:
    """A minimal stand-in for drizzlepac's ``imageObject``, as used by ``_median``."""

    scienceExt = "SCI"
    native_units = "ELECTRONS"
    inmemory = False

    def __init__(self, sci: str, wht: str, median: str, exptime: float, sky: float,
                 readnoise: float) -> None:
        self._filename = sci
        self.outputNames = {"outMedian": median, "outSingle": sci, "outSWeight": wht}
        self.virtualOutputs: dict = {}
        self._chip = _Chip(exptime, sky, readnoise)
        self._image = {("sci", 1): self._chip, 1: self._chip}

    def getGain(self, exten):
        return self._image[exten]._gain

    def getOutputName(self, name):
        return self.outputNames[name]

    def returnAllChips(self, extname=None, exclude=None):
        return [self._chip]

    def saveVirtualOutputs(self, outdict):
        self.virtualOutputs.update(outdict)


def _plain(path: Path, tmpdir: Path) -> str:
    """``path`` itself, or its decompressed copy in ``tmpdir`` when it ends in ``.gz``."""
    if path.suffix != ".gz":
        return str(path)
    dst = tmpdir / path.name[: -len(".gz")]
    with gzip.open(path, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return str(dst)


def _per_image(values, n, name):
    if values is None:
        raise SystemExit(f"--{name} is required with --sci")
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise SystemExit(f"--{name}: {len(values)} values for {n} images")
    return values


def _images_and_case(args):
    """The per-image list and the case parameters named on the command line."""
    case: dict = {}
    if args.images:
        jpath = Path(args.images)
        data = json.loads(jpath.read_text())
        if args.case:
            matches = [c for c in data.get("cases", []) if c["name"] == args.case]
            if not matches:
                raise SystemExit(f"no case named {args.case!r} in {jpath}")
            case = matches[0]
        if "stacks" in data:
            stack = args.stack or case.get("stack")
            if stack is None:
                raise SystemExit("--stack is required: the JSON file holds several stacks")
            images = data["stacks"][stack]["images"]
        else:
            images = data["images"]
        base = jpath.parent
        images = [dict(im, sci=str(base / im["sci"]), wht=str(base / im["wht"]))
                  for im in images]
    elif args.sci:
        n = len(args.sci)
        whts = args.wht or [s.replace("_sci", "_wht") for s in args.sci]
        if len(whts) != n:
            raise SystemExit("--wht needs one name per --sci file")
        ts = _per_image(args.exptime, n, "exptime")
        skies = _per_image(args.sky, n, "sky")
        rns = _per_image(args.readnoise, n, "readnoise")
        images = [{"sci": s, "wht": w, "exptime": t, "sky": b, "readnoise": r}
                  for s, w, t, b, r in zip(args.sci, whts, ts, skies, rns)]
    else:
        raise SystemExit("give --images JSON or --sci files")
    return images, case


def _parameters(args, case: dict) -> dict:
    params = dict(DEFAULTS)
    params.update({k: v for k, v in case.items() if k in DEFAULTS})
    cli = {
        "combine_type": args.combine_type,
        "nsigma": args.combine_nsigma,
        "maskpt": args.combine_maskpt,
        "nlow": args.combine_nlow,
        "nhigh": args.combine_nhigh,
        "lthresh": args.combine_lthresh,
        "hthresh": args.combine_hthresh,
        "grow": args.combine_grow,
        "newmasks": args.median_newmasks,
        "bufsize": args.combine_bufsize,
    }
    params.update({k: v for k, v in cli.items() if v is not None})
    return params


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", required=True, help="output rootname: writes ROOT_med.fits")
    p.add_argument("--images", help="JSON file with the per-image list (cases.json layout)")
    p.add_argument("--stack", help="stack name, when the JSON file holds 'stacks'")
    p.add_argument("--case", help="take parameters from this entry of the JSON 'cases'")
    p.add_argument("--sci", nargs="+", help="science singles (instead of --images)")
    p.add_argument("--wht", nargs="+", help="weight singles, one per --sci file")
    p.add_argument("--exptime", nargs="+", type=float, help="seconds, per image")
    p.add_argument("--sky", nargs="+", type=float, help="electrons, per image")
    p.add_argument("--readnoise", nargs="+", type=float, help="electrons, per image")
    p.add_argument("--combine-type")
    p.add_argument("--combine-nsigma")
    p.add_argument("--combine-maskpt", type=float)
    p.add_argument("--combine-nlow", type=int)
    p.add_argument("--combine-nhigh", type=int)
    p.add_argument("--combine-lthresh", type=float)
    p.add_argument("--combine-hthresh", type=float)
    p.add_argument("--combine-grow", type=int)
    p.add_argument("--combine-bufsize", type=float)
    p.add_argument("--median-newmasks", dest="median_newmasks", action="store_true",
                   default=None)
    p.add_argument("--no-median-newmasks", dest="median_newmasks", action="store_false")
    return p


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    args = build_parser().parse_args(argv)
    images, case = _images_and_case(args)
    params = _parameters(args, case)
    median_name = f"{args.output}_med.fits"

    with tempfile.TemporaryDirectory(prefix="dpmed_") as tmp:
        tmpdir = Path(tmp)
        objects = []
        for im in images:
            sci = _plain(Path(im["sci"]), tmpdir)
            wht = _plain(Path(im["wht"]), tmpdir)
            objects.append(StubImage(sci, wht, median_name, float(im["exptime"]),
                                     float(im["sky"]), float(im["readnoise"])))
        param_dict = {
            "median_newmasks": bool(params["newmasks"]),
            "combine_type": params["combine_type"],
            "combine_nlow": int(params["nlow"]),
            "combine_nhigh": int(params["nhigh"]),
            "combine_grow": int(params["grow"]),
            "combine_maskpt": float(params["maskpt"]),
            "combine_nsigma": str(params["nsigma"]),
            "combine_lthresh": params["lthresh"],
            "combine_hthresh": params["hthresh"],
            "combine_bufsize": params["bufsize"],
            "proc_unit": "electrons",
            "compress": False,
        }

        t1 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            from drizzlepac.createMedian import _median
        t2 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            _median(objects, param_dict)
        t3 = time.perf_counter()

    print(json.dumps({"import_s": round(t2 - t1, 4), "compute_s": round(t3 - t2, 4),
                      "total_s": round(time.perf_counter() - t0, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
