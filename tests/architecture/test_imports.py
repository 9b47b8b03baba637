"""The layers of HOUSE-PLAN.md hold: no import cycle between modules, and no import that runs up
the layers. Every ``import`` of main.py, functions/ and shared/ counts, at module level or
inside a function (a lazy import still ties the two modules together), except those under
``if TYPE_CHECKING:``, which never run."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from shared.config import ROOT

# Top to bottom. A module may import from its own package and from the layers below its own;
# packages side by side in one layer (storage and rules; config and logs) do not import each
# other. Each package is the module-name prefixes it covers.
LAYERS: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("main", "functions"),),
    (("shared.cli",),),
    (("shared.web",),),
    (("shared.evidence",),),
    (("shared.audit",),),
    (("shared.registry",),),
    (("shared.tlog",),),
    (("shared.security",),),
    (("shared.storage",), ("shared.rules",)),
    (("shared.integrity",),),
    (("shared.config",), ("shared.logs",)),
    (("shared.errors",),),
)

# `plant serve` serves the functions: the one command that must reach up to them.
ALLOWED_UPWARD = {("shared.cli.commands", "functions.local")}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        path = module_path(self.source).relative_to(ROOT)
        return f"{self.source} imports {self.target} ({path}:{self.line})"


def module_path(name: str) -> Path:
    base = ROOT.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def modules() -> list[str]:
    files = [ROOT / "main.py", *ROOT.joinpath("functions").rglob("*.py")]
    files += ROOT.joinpath("shared").rglob("*.py")
    names = []
    for file in files:
        parts = list(file.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return sorted(names)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                pending.extend(child.orelse)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            else:
                pending.append(child)
    return found


def imports(known: set[str]) -> list[Import]:
    """Every import between two of ``known``; ``from package import name`` names the submodule
    when ``name`` is one."""
    edges = []
    for source in sorted(known):
        tree = ast.parse(module_path(source).read_text(), str(module_path(source)))
        package = source if module_path(source).name == "__init__.py" else source.rpartition(".")[0]
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != source:
                    edges.append(Import(source, target, node.lineno))
    return edges


def find_cycle(edges: list[Import]) -> list[Import] | None:
    """One import cycle among ``edges`` (the imports that close it, in order), or None."""
    graph: dict[str, list[Import]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
    done: set[str] = set()
    stack: list[str] = []  # the modules on the current path
    path: list[Import] = []  # the imports between them

    def visit(module: str) -> list[Import] | None:
        stack.append(module)
        for edge in graph.get(module, []):
            if edge.target in stack:
                return [*path[stack.index(edge.target) :], edge]
            if edge.target not in done:
                path.append(edge)
                cycle = visit(edge.target)
                if cycle:
                    return cycle
                path.pop()
        stack.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def place(module: str) -> tuple[int, int] | None:
    """(layer, package) of a module: lower layers have higher numbers."""
    for layer, packages in enumerate(LAYERS):
        for number, prefixes in enumerate(packages):
            if any(module == p or module.startswith(p + ".") for p in prefixes):
                return layer, number
    return None


def upward(edges: list[Import]) -> list[Import]:
    wrong = []
    for edge in edges:
        source, target = place(edge.source), place(edge.target)
        if source is None or target is None or (edge.source, edge.target) in ALLOWED_UPWARD:
            continue
        if target[0] < source[0] or (target[0] == source[0] and target[1] != source[1]):
            wrong.append(edge)
    return wrong


def test_every_module_has_a_layer():
    known = [m for m in modules() if m != "shared"]
    assert [m for m in known if place(m) is None] == []


def test_no_import_cycle_between_modules():
    cycle = find_cycle(imports(set(modules())))
    assert cycle is None, "import cycle:\n  " + "\n  ".join(str(e) for e in cycle or [])


def test_no_import_runs_up_the_layers():
    wrong = upward(imports(set(modules())))
    assert wrong == [], "imports up the layers:\n  " + "\n  ".join(str(e) for e in wrong)
