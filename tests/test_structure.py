"""The package's structure: imports run one way (no module reaches back up the pipeline)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "recsys_scaling"


def _modules() -> Dict[str, Path]:
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> Dict[str, Set[str]]:
    """module -> the package modules it imports (anywhere in its body, lazy imports included).
    `from pkg import name` counts as importing pkg.name when that is a module, else pkg."""
    modules = _modules()
    graph: Dict[str, Set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(name, is_package, node)
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
            for target in targets:
                if target in modules and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_correctly():
    graph = import_graph()
    assert "recsys_scaling.job" in graph["recsys_scaling.app"]
    assert "recsys_scaling.sweep.grid" in graph["recsys_scaling.sweep.runner"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_pipeline_runs_one_way():
    """Lower layers never import the layers that drive them."""
    graph = import_graph()
    upper = {"recsys_scaling.app", "recsys_scaling.tune"} | {m for m in graph if m.startswith("recsys_scaling.cli")}
    for lower in ("recsys_scaling.config", "recsys_scaling.paths", "recsys_scaling.job", "recsys_scaling.tracking",
                  "recsys_scaling.sweep.grid"):
        assert not graph[lower] & upper, f"{lower} imports {graph[lower] & upper}"


def test_only_the_tracking_package_talks_to_mlflow():
    for name, path in _modules().items():
        if name == "recsys_scaling.tracking" or name.startswith("recsys_scaling.tracking."):
            continue
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and not node.level}
        assert "mlflow" not in imported, f"{name} imports mlflow directly"


def test_modules_stay_small_and_packages_only_re_export():
    """Modules stay under ~400 lines; an __init__.py re-exports (a lazy __getattr__ at most)."""
    for name, path in _modules().items():
        lines = len(path.read_text().splitlines())
        assert lines <= 420, f"{name}: {lines} lines; split it"
        if path.name == "__init__.py":
            tree = ast.parse(path.read_text())
            defined = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
            assert set(defined) <= {"__getattr__"}, f"{name} holds logic: {defined}"
