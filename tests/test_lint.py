"""The code base passes ruff's lint and format checks (configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    completed = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."], capture_output=True, text=True, cwd=ROOT
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
