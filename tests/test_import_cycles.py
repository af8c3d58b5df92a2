"""The package's modules import one another without a cycle.

Read from the source with :mod:`ast`, so imports under ``TYPE_CHECKING`` and
inside functions count too: a cycle hidden there still ties two modules
together, and is one refactoring away from an ImportError at start-up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pyramid_sendmail

PACKAGE = Path(pyramid_sendmail.__file__).parent


def module_name(path: Path) -> str:
    parts = ("pyramid_sendmail", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that the module *name* imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from .queue import maildir`` imports a module, ``from .queue
            # import MaildirQueue`` a name of the package: each is an edge.
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def graph() -> dict[str, set[str]]:
    paths = modules()
    known = set(paths)
    edges = {name: imported(name, path, known) for name, path in paths.items()}
    # A package's __init__ re-exports its modules: importing a submodule runs
    # it first, so that edge (submodule -> its package) is implied, never a
    # cycle of the code's own making. Only edges between sibling modules and
    # across packages are checked.
    for name, targets in edges.items():
        targets.difference_update(t for t in set(targets) if name.startswith(t + "."))
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle as the list of modules along it, or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_module_of_the_package_imports_itself_back() -> None:
    cycle = find_cycle(graph())

    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_sees_a_cycle_through_type_checking_imports(tmp_path: Path) -> None:
    # The check above can only pass meaningfully if it can fail.
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(edges) == ["a", "b", "c", "a"]

    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
    (tmp_path / "a.py").write_text(source)
    found = imported("pyramid_sendmail.a", tmp_path / "a.py", {"pyramid_sendmail.b"})
    assert found == {"pyramid_sendmail.b"}
