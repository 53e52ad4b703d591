"""The package's layout holds: no import cycles between its modules, type-only imports
included, the library's core never imports the command line, and no module is over 800 lines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "reventless"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in it: TYPE_CHECKING blocks and
    function bodies too)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*kept, base] if base else kept)
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
                    break
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:  # noqa: C901 - Tarjan, read whole
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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


def test_no_module_of_the_package_imports_itself_back_in_a_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_command_line_imports_the_command_line() -> None:
    graph = import_graph()
    outside = {
        name: sorted(t for t in targets if t.startswith("reventless.cli"))
        for name, targets in graph.items()
        if not name.startswith("reventless.cli") and name != "reventless.__main__"
    }
    assert {name: found for name, found in outside.items() if found} == {}


def test_the_command_line_reaches_the_providers_through_their_public_modules_only() -> None:
    """A client of the providers, like any application: ``reventless.local``, ``reventless.aws``,
    not their private modules (the core's own helpers, ``reventless._zones`` and the like, are
    shared by every layer)."""
    graph = import_graph()
    private = {
        name: sorted(
            target
            for target in targets
            if target.startswith(("reventless.local._", "reventless.aws._"))
        )
        for name, targets in graph.items()
        if name.startswith("reventless.cli")
    }
    assert {name: found for name, found in private.items() if found} == {}


MAX_MODULE_LINES = 800


def test_no_module_is_over_800_lines() -> None:
    """A module that grows past it is cut along a cohesive part (docs/internals.md)."""
    long = {
        name: lines
        for name, path in _modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_the_embedded_reactions_read_the_events_through_the_event_log_port_only() -> None:
    """Their SQL names their own tables, never ``events`` (the EventLog port reads those)."""
    source = ast.parse((PACKAGE / "local" / "_reactions.py").read_text())
    sql = [
        node.value
        for node in ast.walk(source)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.search(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM)\b", node.value)
    ]
    assert sql, "the check found no SQL at all: it no longer looks at the right strings"
    assert [text for text in sql if re.search(r"\bevents\b", text)] == []
