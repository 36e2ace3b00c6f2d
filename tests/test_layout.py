"""The package's layout holds: no import cycle, and calls only go down the layers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "medstack"

#: Layers, lowest first; a module may import only from its own layer or lower ones.
LAYERS = [
    ("medstack._version", "medstack.errors"),
    ("medstack.params", "medstack.options"),
    ("medstack.kernels",),
    ("medstack.io",),
    ("medstack.config", "medstack.extras.quicklook", "medstack.extras.progress"),
    ("medstack.core",),
    ("medstack.executors",),
    ("medstack.api", "medstack.createMedian", "medstack.drizzlepac", "medstack.cli",
     "medstack.extras", "medstack"),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            candidates = subs or [target]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found.update(c for c in candidates if c in modules and c != name)
    return found


def _layer(name: str) -> int:
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    assert best is not None, f"{name} is in no layer"
    return best[0]


def test_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    graph = {name: {t for t in targets if t != "medstack"} for name, targets in graph.items()}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*path, target])
            if target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_calls_only_go_down():
    modules = _modules()
    for name, path in modules.items():
        for target in _imports(name, path, modules):
            if target == "medstack":
                continue
            assert _layer(target) <= _layer(name), f"{name} imports {target}, a higher layer"


def test_the_core_knows_no_backend():
    modules = _modules()
    for name, path in modules.items():
        if name.startswith("medstack.core"):
            text = path.read_text(encoding="utf-8")
            assert "executors" not in {t.split(".")[1] for t in _imports(name, path, modules)
                                       if t.count(".")}, name
            assert "import dask" not in text and "import distributed" not in text, name
