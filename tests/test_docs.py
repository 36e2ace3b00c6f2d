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
