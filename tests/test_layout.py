"""The package's import graph: no cycles, and each stage imports only what docs/architecture.md
allows (built from the source with ``ast``; imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "regtracks"

# what each part of the package may import (besides the standard library, third parties and
# ``regtracks/__init__``, which holds only the version); docs/architecture.md shows the table
ALLOWED = {
    "_util": set(),
    "config": set(),
    "runtime": {"_util", "config"},
    "models": {"_util", "config"},
    "data": {"_util", "config"},
    "checkpoint": {"_util", "config", "data", "models"},
    "training": {"_util", "config", "runtime", "data", "models", "checkpoint"},
    "inference": {"_util", "config", "runtime", "data", "models", "checkpoint", "tracks"},
    "tracks": {"_util", "config", "data"},
    "demo": {"_util", "config", "data", "training", "inference", "tracks"},
    "cli": {"*"},
    "__main__": {"cli"},
    "__init__": set(),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every ``regtracks...`` module ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "regtracks"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "regtracks":
                continue
            found.add(mod)
            for a in node.names:  # `from regtracks.data import genome` imports a module
                if (PKG.parent / Path(*f"{mod}.{a.name}".split("."))).with_suffix(".py").exists():
                    found.add(f"{mod}.{a.name}")
    found.discard(me)
    return found


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in PKG.rglob("*.py")}
    return {m: {i for i in imports_of(p) if i in mods} for m, p in mods.items()}


def part(module: str) -> str:
    """``regtracks.training.train`` -> ``training``; ``regtracks`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_import_cycles():
    g = graph()
    # a package imports its own __init__ when a submodule is imported: edges into an
    # __init__ that only holds a docstring carry no code, but regtracks' __init__ files that
    # re-export (models) are real nodes, so every edge counts
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_stages_import_only_what_they_may():
    bad = []
    for m, deps in graph().items():
        allowed = ALLOWED[part(m)]
        if "*" in allowed:
            continue
        for d in deps:
            p = part(d)
            if p != part(m) and p != "__init__" and p not in allowed:
                bad.append(f"{m} imports {d}")
    assert not bad, "\n".join(sorted(bad))


def test_inference_never_imports_the_training_loop():
    g = graph()
    bad = [m for m in g if part(m) == "inference" and "regtracks.training.train" in g[m]]
    assert not bad
    # nor through anything it imports
    seen, todo = set(), [m for m in g if part(m) == "inference"]
    while todo:
        m = todo.pop()
        for d in g[m]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    assert "regtracks.training.train" not in seen


def test_every_stage_folder_says_its_job():
    for init in PKG.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and doc.strip().splitlines()[0], f"{init} has no one-line docstring"
