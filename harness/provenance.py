"""Collect where and with what a trial runs: versions, git commit, platform."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

from optarena.records import Provenance

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def version(distribution: str = "optarena") -> str:
    """The installed version of ``distribution`` (default: optarena), or ``"unknown"``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def git_commit(root: Path = _SOURCE_ROOT) -> str | None:
    """The commit optarena runs from, with ``+dirty`` for uncommitted edits; None outside git."""
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def collect() -> Provenance:
    return Provenance(
        optarena_version=version("optarena"),
        git_commit=git_commit(),
        jax_version=version("jax"),
        flax_version=version("flax"),
        optax_version=version("optax"),
        python_version=platform.python_version(),
        platform=platform.platform(),
    )
