"""Every module of both packages imports on its own, and no two modules import each other.

An import cycle held together by imports inside functions breaks as soon as someone moves
one of them; a module that only imports after another one did breaks its first user.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("langchain_fusion", "llamaindex_fusion")


def modules() -> dict[str, Path]:
    """Every module of both packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(name: str, path: Path) -> set[str]:
    """The package modules `name` imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in tree.body:  # top level only, `if TYPE_CHECKING:` blocks left out
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    known = modules()
    return {t for t in targets if t in known and t != name}


def test_each_module_imports_alone_in_a_fresh_interpreter() -> None:
    # `__main__` modules run their command when imported: they are entry points, not modules.
    names = sorted(name for name in modules() if not name.endswith(".__main__"))
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {names!r}:\n"
        "    for key in [k for k in sys.modules if k.split('.')[0] in "
        f"{PACKAGES!r}]:\n"
        "        del sys.modules[key]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(names) > 50  # both packages were found


def test_the_packages_import_graph_has_no_cycle() -> None:
    graph = {name: imported(name, path) for name, path in modules().items()}
    # A package's `__init__` importing its own submodules is not a cycle of the code.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


#: The commands import what a subcommand needs when it runs, so that `fusion --help` starts
#: fast; the library's modules import at the top.
LAZY = ("langchain_fusion.cli", "langchain_fusion.sim")


def test_no_library_module_imports_the_package_inside_a_function() -> None:
    offenders = []
    for name, path in modules().items():
        if name.startswith(LAZY):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith(
                        PACKAGES
                    ):
                        offenders.append(f"{name}.{node.name}: from {inner.module} import ...")
    assert not offenders, offenders
