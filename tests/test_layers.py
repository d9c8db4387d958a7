"""The package's layers only point down, and no module imports itself round a circle.

Read from the source (every import: top-level, inside a function, under TYPE_CHECKING), so a late import
cannot hide an arrow that runs back up. The layers, top to bottom:

    cli                    the commands: parse, build clients, call one function, map errors to exit codes
    demo                   the demo shop and the Stripe stand-in (only `reconcile demo` and tests use it)
    run                    one invocation: plan windows, read -> decide -> write -> report, the lease
    stripe | store | report | bank  reading Stripe, persisting in MongoDB, making words and pages, reading
                           bank statements (side by side: none imports another)
    decide                 pure rules: frames and records in, outcomes and findings out
    shared                 config, errors, exit codes, money, time, and runtime/ (logs, redaction,
                           stop requests, progress, memory)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "reconcile"
SHARED_TOP = {"config", "errors", "exitcodes", "money", "timeutil"}
# What each layer may import besides itself.
MAY_IMPORT = {
    "shared": set(),
    "decide": {"shared"},
    "stripe": {"shared", "decide"},
    "store": {"shared", "decide"},
    "report": {"shared", "decide"},
    "bank": {"shared", "decide"},
    "run": {"shared", "decide", "stripe", "store", "report", "bank"},
    "demo": {"shared", "decide", "stripe", "store", "report", "bank", "run"},
    "cli": {"shared", "decide", "stripe", "store", "report", "bank", "run", "demo"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module an import names: `reconcile.x.y` itself, or its package when `y` is an attribute."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            target = _resolve(name) if name.startswith("reconcile") else None
            if target and target != module and target != "reconcile":
                found.add(target)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "shared"
    head = parts[1]
    if head in SHARED_TOP or head == "runtime":
        return "shared"
    if head == "cli":
        return "cli"
    assert head in MAY_IMPORT, f"{module} is in no layer: add its package to tests/test_layers.py"
    return head


GRAPH = {m: imports_of(m) for m in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_point_down(module: str) -> None:
    mine = layer_of(module)
    upward = sorted(t for t in GRAPH[module] if layer_of(t) != mine and layer_of(t) not in MAY_IMPORT[mine])
    assert not upward, f"{module} ({mine}) imports {upward}, which are not below it"


def _circles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return groups


def test_no_import_circle() -> None:
    assert _circles() == []


def test_the_top_of_the_package_holds_only_what_every_layer_shares() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert top <= SHARED_TOP and len(top) <= 6, sorted(top - SHARED_TOP)


def test_the_checker_sees_a_late_upward_import() -> None:
    """The check itself can fail: a function-level import of run/ from store/ is an upward arrow."""
    source = "def f():\n    from reconcile.run import window\n"
    tree = ast.parse(source)
    assert any(isinstance(n, ast.ImportFrom) and n.module == "reconcile.run" for n in ast.walk(tree))
    assert "run" not in MAY_IMPORT[layer_of("reconcile.store.repair")]
    assert layer_of(_resolve("reconcile.run.window") or "") == "run"
