"""Layering, read off the project's import graph: no cycles, no private names across modules,
scoring/ and leaderboard/ free of the harness and of JAX, SQLAlchemy only in leaderboard/.

Every import statement counts, wherever it is (module level, inside a function, under
``TYPE_CHECKING``), so an import deferred into a function cannot hide a cycle.
"""

from __future__ import annotations

import ast
import dataclasses
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {
    "core": "optarena",
    "workloads": "optarena.workloads",
    "submissions": "optarena.submissions",
    "harness": "optarena.harness",
    "scoring": "optarena.scoring",
    "leaderboard": "optarena.leaderboard",
}
ACCELERATOR_STACK = {"jax", "jaxlib", "flax", "optax"}


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT)
    parts = [FOLDERS[relative.parts[0]], *relative.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_files() -> dict[str, Path]:
    return {
        _module_name(path): path
        for folder in FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
    }


MODULES = _project_files()


@dataclasses.dataclass(frozen=True)
class Import:
    """One imported thing: the module it comes from and, for ``from M import n``, the name."""

    module: str
    name: str | None
    line: int


def _imports(module: str, path: Path) -> list[Import]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, source] if source else base)
            found += [Import(source, alias.name, node.lineno) for alias in node.names]
    return found


def _target(imported: Import) -> str | None:
    """The project module an import loads (``from pkg import mod`` loads ``pkg.mod``)."""
    if imported.name is not None and f"{imported.module}.{imported.name}" in MODULES:
        return f"{imported.module}.{imported.name}"
    return imported.module if imported.module in MODULES else None


IMPORTS = {module: _imports(module, path) for module, path in MODULES.items()}
GRAPH = {
    module: {t for i in imports if (t := _target(i)) is not None and t != module}
    for module, imports in IMPORTS.items()
}


def _reachable(start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for nxt in GRAPH[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_covers_every_package():
    packages = {m.split(".")[1] for m in MODULES if m.count(".") >= 2}
    assert packages == {
        "workloads",
        "submissions",
        "harness",
        "scoring",
        "leaderboard",
    }
    assert sum(len(targets) for targets in GRAPH.values()) > 100


def test_no_import_cycle_among_project_modules():
    try:
        graphlib.TopologicalSorter(GRAPH).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def _private_uses(module: str) -> list[str]:
    """``from other import _name`` and ``other._name`` where ``other`` is a project module."""
    path = MODULES[module]
    found = []
    aliases: dict[str, str] = {}
    for imported in IMPORTS[module]:
        target = _target(imported)
        if target is None or target == module:
            continue
        if (
            imported.name is not None
            and target == imported.module
            and imported.name.startswith("_")
        ):
            found.append(f"line {imported.line}: from {target} import {imported.name}")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom | ast.Import):
            for alias in node.names:
                full = (
                    f"{node.module}.{alias.name}"
                    if isinstance(node, ast.ImportFrom) and node.module
                    else alias.name
                )
                if full in MODULES:
                    aliases[alias.asname or alias.name.split(".")[0]] = full
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and aliases[node.value.id] != module
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"line {node.lineno}: {aliases[node.value.id]}.{node.attr}")
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_is_used_across_modules(module):
    assert _private_uses(module) == []


@pytest.mark.parametrize("package", ["optarena.scoring", "optarena.leaderboard"])
def test_scoring_and_leaderboard_reach_neither_the_harness_nor_jax(package):
    offenders = {}
    for module in (m for m in MODULES if _in(m, package)):
        harness = sorted(m for m in _reachable(module) | {module} if _in(m, "optarena.harness"))
        stack = sorted(
            i.module for i in IMPORTS[module] if i.module.split(".")[0] in ACCELERATOR_STACK
        )
        if harness or stack:
            offenders[module] = harness + stack
    assert offenders == {}


@pytest.mark.parametrize("folder", sorted(set(FOLDERS) - {"leaderboard"}))
def test_only_leaderboard_imports_sqlalchemy(folder):
    package = FOLDERS[folder]
    offenders = [
        module
        for module in MODULES
        if _in(module, package)
        and not _in(module, "optarena.leaderboard")
        and any(i.module.split(".")[0] == "sqlalchemy" for i in IMPORTS[module])
    ]
    assert offenders == []


def test_importing_scoring_and_leaderboard_loads_no_jax():
    modules = [m for m in MODULES if _in(m, "optarena.scoring") or _in(m, "optarena.leaderboard")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"stack = {sorted(ACCELERATOR_STACK)!r}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in stack)\n"
        "print(','.join(loaded))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert completed.stdout.strip() == ""


def test_nothing_heavy_runs_when_listing_names():
    code = (
        "import sys\n"
        "from optarena.workloads import registry\n"
        "from optarena.submissions import loader\n"
        "registry.names(); loader.builtin_names()\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax'))))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert completed.stdout.strip() == ""


def test_the_packages_do_not_exist_outside_the_namespace(tmp_path):
    """Installed, the folders are reachable only as ``optarena.*``."""
    code = (
        "import importlib.util\n"
        f"print([n for n in {sorted(set(FOLDERS) - {'optarena'})!r} "
        "if importlib.util.find_spec(n) is not None])\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert completed.stdout.strip() == "[]"
