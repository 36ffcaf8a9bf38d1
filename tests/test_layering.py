"""Layering: scoring/ and leaderboard/ never import JAX; only leaderboard/ imports SQLAlchemy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workloads", "submissions", "harness", "scoring", "leaderboard")
ACCELERATOR_STACK = {"jax", "jaxlib", "flax", "optax"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_only_leaderboard_imports_sqlalchemy(package):
    offenders = [
        str(f.relative_to(ROOT)) for f in _files(package) if "sqlalchemy" in _imported_roots(f)
    ]
    if package == "leaderboard":
        assert offenders, "leaderboard/ is where the SQL store lives"
    else:
        assert offenders == []


@pytest.mark.parametrize("package", ["scoring", "leaderboard"])
def test_scoring_and_leaderboard_do_not_import_jax_in_source(package):
    offenders = {
        str(f.relative_to(ROOT)): sorted(_imported_roots(f) & ACCELERATOR_STACK)
        for f in _files(package)
        if _imported_roots(f) & ACCELERATOR_STACK
    }
    assert offenders == {}


def test_importing_scoring_and_leaderboard_loads_no_jax():
    modules = [
        f"{p}.{f.stem}" if f.stem != "__init__" else p
        for p in ("scoring", "leaderboard")
        for f in _files(p)
    ]
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
        "from workloads import registry\n"
        "from submissions import loader\n"
        "registry.names(); loader.builtin_names()\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax'))))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert completed.stdout.strip() == ""
