"""The import rule: lower layers never import higher ones, and only ``fraudgraph.cli`` composes the
entry-point packages (``etl``, ``training``, ``serving``) and the local servers (``localservers``).

Layers, lowest first (a module may import its own layer's package and any lower layer):

0. the top of the library: config (a package), schema, identity, timeutil, logs, event_frames
1. graph, synthetic
2. labels, ml, lifecycle
3. scoring
4. evaluation
5. cli

Packages on one layer do not import each other (labels, ml and lifecycle are independent, so are graph
and synthetic).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LIBRARY = ROOT / "fraudgraph"
ENTRY_POINTS = ("etl", "training", "serving", "localservers")
TOP_PACKAGES = {"config"}  # sub-packages that belong to the top of the library
LAYER = {
    "": 0, "graph": 1, "synthetic": 1, "labels": 2, "ml": 2, "lifecycle": 2, "scoring": 3, "evaluation": 4, "cli": 5,
}


def package_of(module: str) -> str:
    """'' for the top of the library, else the sub-package name."""
    parts = module.split(".")
    if parts[0] != "fraudgraph" or len(parts) < 2:
        return ""
    return parts[1] if parts[1] in LAYER and parts[1] not in TOP_PACKAGES else ""


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a library file, relative ones resolved."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
    return out


def violations() -> list[str]:
    found = []
    for path in sorted(LIBRARY.rglob("*.py")):
        own = package_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for line, name in imports_of(path):
            where = f"{path.relative_to(ROOT)}:{line} imports {name}"
            top = name.split(".")[0]
            if top in ENTRY_POINTS:
                if own != "cli":
                    found.append(f"{where}: only fraudgraph.cli may import the entry-point packages")
                continue
            if top != "fraudgraph":
                continue
            target = package_of(name)
            if target == own:
                continue
            if LAYER[target] > LAYER[own]:
                found.append(f"{where}: layer {own or 'top'} ({LAYER[own]}) may not import the higher layer "
                             f"{target} ({LAYER[target]})")
            elif LAYER[target] == LAYER[own] and target:
                found.append(f"{where}: {own} and {target} are on one layer and must stay independent")
    return found


def test_library_follows_the_import_rule():
    assert violations() == []


def test_every_library_package_has_a_layer():
    packages = {p.name for p in LIBRARY.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == (set(LAYER) - {""}) | TOP_PACKAGES


@pytest.mark.parametrize("source, message", [
    ("from etl.load_identity_graph import run_etl\n", "only fraudgraph.cli may import"),
    ("from ..scoring.rules import DecisionRules\n", "may not import the higher layer scoring"),
    ("from fraudgraph.ml.features import build_graph_tensors\n", "must stay independent"),
])
def test_the_check_catches_a_forbidden_import(tmp_path, monkeypatch, source, message):
    """The rule is not vacuous: a planted import in the labels layer is reported."""
    planted = LIBRARY / "labels" / "_planted_for_test.py"
    planted.write_text(source)
    try:
        assert any(message in v for v in violations() if "_planted_for_test" in v)
    finally:
        planted.unlink()
