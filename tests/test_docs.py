"""The documentation stays true: generated pages up to date, links and named tests exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SHARED_DEVIATIONS = ROOT.parent / "shared" / "reference" / "DEVIATIONS.md"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_are_up_to_date():
    gen = _generator()
    for name, render in gen.PAGES.items():
        committed = (DOCS / name).read_text(encoding="utf-8")
        assert committed == render(), f"docs/{name} is stale: run python docs/gen_reference.py"


def test_every_parameter_and_option_is_documented():
    from medstack.cli import build_parser
    from medstack.params import PARAMETERS

    parameters = (DOCS / "parameters.md").read_text(encoding="utf-8")
    cli = (DOCS / "cli.md").read_text(encoding="utf-8")
    for p in PARAMETERS:
        assert f"## {p.name}\n\n{p.help}\n" in parameters
    for action in build_parser()._actions:
        for option in action.option_strings:
            if action.help != "==SUPPRESS==":
                assert f"`{option}" in cli, option


def _links(page: Path):
    return re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_relative_links_point_to_files(page):
    for target in _links(DOCS / page):
        if "://" in target:
            continue
        assert (DOCS / target).resolve().exists(), f"{page}: broken link {target}"


def test_deviation_rows_name_real_tests():
    text = (DOCS / "deviations.md").read_text(encoding="utf-8")
    named = re.findall(r"\[`(test_\w+)`\]\(\.\./(tests/test_\w+\.py)\)", text)
    assert len(named) >= 18
    for test, path in named:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^\s*def {test}\(", source, re.M), f"{path} has no {test}"


def test_every_deviation_row_is_in_the_user_docs():
    if not SHARED_DEVIATIONS.exists():
        pytest.skip("shared reference DEVIATIONS.md not present")
    ours = (DOCS / "deviations.md").read_text(encoding="utf-8")
    theirs = SHARED_DEVIATIONS.read_text(encoding="utf-8")
    qs = re.findall(r"^\| (Q\d+) \|", theirs, re.M)
    assert qs and all(f"| {q} |" in ours for q in qs)
    unnumbered = len(re.findall(r"^\| – \|", theirs, re.M))
    assert len(re.findall(r"^\| – \|", ours, re.M)) == unnumbered
    for q in qs:  # each Q row links to a test named after it
        row = next(line for line in ours.splitlines() if line.startswith(f"| {q} |"))
        assert f"test_{q.lower()}_" in row, row


# ------------------------------------------------------------------------------------------
# the docs stand alone, and say what the code does

_SHIPPED_TEXT = sorted([ROOT / "README.md", ROOT / "benchmarks" / "README.md",
                        *DOCS.glob("*.md"), *(ROOT / "src").rglob("*.py"),
                        *(ROOT / "benchmarks").glob("*.py"), ROOT / "benchmarks" / "Makefile"])


@pytest.mark.parametrize("path", _SHIPPED_TEXT, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_to_files_that_do_not_ship(path):
    """What the docs and the source cite, they contain: no SPEC/DEVIATIONS notes from outside
    the repository, no machine paths."""
    text = path.read_text(encoding="utf-8")
    for bad in ("SPEC §", "SPEC Q", "SPEC.md", "DEVIATIONS.md", "DEVIATIONS Q", "../shared/",
                "/work/"):
        assert bad not in text, f"{path.relative_to(ROOT)} names {bad!r}"


def test_spec_page_has_the_sections_and_quirks_the_docs_cite():
    spec = (DOCS / "spec.md").read_text(encoding="utf-8")
    for number in range(1, 11):
        assert re.search(rf"^## {number}\. ", spec, re.M), f"spec.md has no section {number}"
    cited = set()
    for path in _SHIPPED_TEXT:
        cited |= set(re.findall(r"\bQ(\d+)\b", path.read_text(encoding="utf-8")))
    for q in sorted(cited, key=int):
        assert re.search(rf"\*\*Q{q}[.*/]", spec) or f"Q{int(q) - 1}/Q{q}" in spec, f"Q{q}"


def _readme_default(option: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines()
               if line.startswith("| `") and f"`{option}" in line.split("|")[1])
    return re.search(r"\(([^()]*)\) \|$", row).group(1)


def _same(readme: str, default: str) -> bool:
    first = readme.split(";")[0].split(",")[0].split("=")[0].strip().strip('"').lower()
    if default in ("True", "False"):
        return first == {"True": "on", "False": "off"}[default]
    try:
        return float(first) == float(default)
    except ValueError:
        return first == default.lower()


def test_readme_and_help_agree_on_the_defaults():
    from medstack.params import PARAMETERS, format_value

    for p in PARAMETERS:
        if p.name == "median":
            continue
        option = p.option if p.kind != "bool" else f"{p.option}/--no-{p.option[2:]}"
        default = format_value(p, p.default)
        assert _same(_readme_default(option), default), (option, default)


def test_each_help_text_says_its_default_once():
    from medstack.cli import build_parser

    for action in build_parser()._actions:
        if action.help and action.help != "==SUPPRESS==":
            assert action.help.count("Default") <= 1, action.option_strings


def test_gethelpasstring_gives_each_task_key_its_type():
    from medstack import createMedian
    from medstack.config import TASK_KEY_TYPES

    text = createMedian.getHelpAsString()
    for key, kind in TASK_KEY_TYPES.items():
        assert f"\n{key} : {kind}\n" in text, key


def test_in_memory_is_rejected(tmp_path):
    from medstack import createMedian
    from medstack.errors import ParameterError

    with pytest.raises(ParameterError, match="unknown parameter 'in_memory'"):
        createMedian.median(str(tmp_path / "x_flt.fits"), in_memory=True)


def test_the_maskpt_figure_is_given_in_one_place():
    """The pixels that combine_maskpt 0.7 changes on the real test stack are stated once
    (docs/guide.md), where tests/test_realdata.py checks them against a run."""
    stating = [str(p.relative_to(ROOT)) for p in _SHIPPED_TEXT if "4462" in p.read_text("utf-8")]
    assert stating == ["docs/guide.md"]
