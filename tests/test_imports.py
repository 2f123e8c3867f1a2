"""The import graph has no cycles: every package of the portal (the host and each module) can be read
from the bottom up. Module-level imports count; imports inside functions and ``TYPE_CHECKING`` blocks
do not (they run later, or never)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Importable package → its folder in the repository (see setup.py).
PACKAGES = {"crm_portal": ROOT / "crm_portal", "crm_portal.modules": ROOT / "modules"}


def _module_names() -> dict[str, Path]:
    names = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names[".".join([package, *parts])] = path
    return names


def _top_level_imports(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        else:
            yield from _top_level_imports(child)


def _imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = package
        for _ in range(max(node.level - 1, 0)):
            base = base.rpartition(".")[0]
        source = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
        submodules = {f"{source}.{alias.name}" for alias in node.names} & known
        found.update(submodules)
        if len(submodules) < len(node.names):
            found.add(source)
    # Importing ``a.b.c`` runs ``a`` and ``a.b`` first; a module's own ancestors run before it anyway.
    edges = set()
    for target in found:
        while target and target in known | {"crm_portal"}:
            if target != name and not name.startswith(target + "."):
                edges.add(target)
            target = target.rpartition(".")[0]
    return edges & known


def import_cycles() -> list[list[str]]:
    names = _module_names()
    graph = {name: _imports_of(name, path, set(names)) for name, path in names.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles():
    assert import_cycles() == []


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("from .a import thing\n")
    (package / "c.py").write_text("def later():\n    from . import a\n")
    monkeypatch.setitem(PACKAGES, "crm_portal", package)
    monkeypatch.delitem(PACKAGES, "crm_portal.modules")
    assert import_cycles() == [["crm_portal.a", "crm_portal.b"]]
