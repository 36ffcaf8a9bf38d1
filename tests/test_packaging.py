"""The wheel pip builds: one top-level package with its data, importable on its own.

The repository's top-level folders become ``optarena.*`` through a ``package-dir`` mapping,
so a wrong mapping or a missing ``package-data`` entry only shows in a real build. The wheel
is built once per module, from a copy of the repository's files (setuptools writes
``build/`` and ``*.egg-info`` beside the sources it builds), and installed into a bare
target folder that subprocesses import from, away from the editable install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip")


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Runs a command to success and returns its stdout; a failure shows its output."""
    done = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _repository_files() -> list[str]:
    """The files a fresh clone plus this checkout's new, not-ignored files would hold."""
    if not (REPO / ".git").exists():
        pytest.skip(f"{REPO} is not a git checkout: the files to build from are git's list")
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO)
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


PLUGIN_EXAMPLE = "submissions/plugin_example/"
"""A package of its own that users copy, not a part of optarena's wheel."""


def _wheel_paths(repo_paths: list[str]) -> set[str]:
    """Where the files of package folders land in the wheel, per pyproject's package-dir."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = setuptools["package-dir"]
    return {
        package.replace(".", "/") + path.removeprefix(folder)
        for path in repo_paths
        for package, folder in folders.items()
        if path.startswith(f"{folder}/") and not path.startswith(PLUGIN_EXAMPLE)
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The wheel built from a copy of the repository, and the files copied."""
    work = tmp_path_factory.mktemp("wheel")
    files = _repository_files()
    for name in files:
        (work / "source" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, work / "source" / name)
    # With build isolation, as `pip install .` builds: this environment's setuptools may be
    # older than pyproject's build requirements, and `wheel` need not be installed.
    _run(*PIP, "wheel", "-q", "--no-deps", "-w", work / "dist", work / "source", cwd=work)
    (wheel,) = (work / "dist").glob("optarena-*.whl")
    return wheel, files


def _wheel_only_env(target: Path) -> dict[str, str]:
    """An environment for ``python -S`` that imports optarena from ``target`` alone.

    ``-S`` runs no ``.pth`` file, so the editable install's import hook, which would supply any
    module missing from the wheel out of the repository, is not there; the dependencies stay
    importable from this interpreter's site-packages, put on PYTHONPATH after ``target``.
    """
    site_dirs = [path for path in sys.path if path.endswith(("site-packages", "dist-packages"))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *site_dirs])}


@pytest.fixture(scope="module")
def installed(built: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What a subprocess sees with only the installed wheel, from an empty working directory.

    It imports the harness and the registry, tries the old top-level ``harness``, has the
    digits TFDS builder prepare its data from the installed files (TFDS finds a builder's
    resources with ``importlib.resources.files``), then lists the optarena modules it loaded.
    """
    work = tmp_path_factory.mktemp("installed")
    target, cwd, data_dir, facts = work / "target", work / "cwd", work / "data", work / "facts"
    cwd.mkdir()
    _run(*PIP, "install", "-q", "--no-deps", "--target", target, built[0], cwd=cwd)
    script = textwrap.dedent(
        """
        import json, sys
        import optarena.harness.runner, optarena.workloads.registry as registry
        facts = {"files": [optarena.harness.runner.__file__, registry.__file__]}
        try:
            import harness
            facts["import harness"] = harness.__file__
        except ModuleNotFoundError:
            facts["import harness"] = "ModuleNotFoundError"
        arrays = registry.get("digits_mlp").load_split("validation", sys.argv[1])
        facts["validation"] = {name: list(array.shape) for name, array in arrays.items()}
        facts["files"] += [
            module.__file__ for name, module in sys.modules.items()
            if name.split(".")[0] == "optarena" and getattr(module, "__file__", None)
        ]
        with open(sys.argv[2], "w") as f:
            json.dump(facts, f)
        """
    )
    env = _wheel_only_env(target)
    _run(sys.executable, "-S", "-c", script, data_dir, facts, cwd=cwd, env=env)
    paths = {"target": target, "data_dir": data_dir, "env": env, "cwd": cwd}
    return paths | json.loads(facts.read_text())


def test_wheel_has_one_top_level_package(built: tuple[Path, list[str]]) -> None:
    names = zipfile.ZipFile(built[0]).namelist()
    top = {name.split("/")[0] for name in names}
    (dist_info,) = (entry for entry in top if entry.endswith(".dist-info"))
    assert top == {"optarena", dist_info}
    assert zipfile.ZipFile(built[0]).read(f"{dist_info}/top_level.txt").split() == [b"optarena"]
    assert not [name for name in names if {"tests", "bench"} & set(name.split("/"))]


def test_wheel_holds_every_package_file_and_the_data(built: tuple[Path, list[str]]) -> None:
    """Each repository file in a package folder is in the wheel at its ``optarena/`` path."""
    wheel, files = built
    names = set(zipfile.ZipFile(wheel).namelist())
    assert sorted(_wheel_paths(files) - names) == []
    for pattern in ("workloads/calibration/*.json", "scoring/published/*/*.csv"):
        data = {f"optarena/{path.relative_to(REPO)}" for path in REPO.glob(pattern)}
        assert data and data <= names, pattern
    assert "optarena/scoring/published/algoperf_v06/times.csv" in names
    assert "optarena/harness/runner.py" in names
    assert not any("plugin_example" in name for name in names)


def test_installed_wheel_imports_only_from_itself(installed: dict) -> None:
    assert len(installed["files"]) > 2
    for file in installed["files"]:
        assert Path(file).resolve().is_relative_to(installed["target"].resolve()), file
    assert installed["import harness"] == "ModuleNotFoundError"


def test_installed_wheel_runs_the_command_line(installed: dict) -> None:
    """``python -m optarena``, the module behind the ``optarena`` script, is in the wheel."""
    command = (sys.executable, "-S", "-m", "optarena", "--help")
    out = _run(*command, cwd=installed["cwd"], env=installed["env"])
    assert out.startswith("usage:")


def test_installed_wheel_works_from_a_clone_of_the_repository(installed: dict) -> None:
    """The README's first command installs the wheel and runs from the clone's root, where
    ``python -m``, ``python -c`` and multiprocessing's fork server put the working directory
    first on the path: no folder there may stand in for the installed ``optarena``."""
    env = installed["env"]
    out = _run(sys.executable, "-S", "-m", "optarena", "--help", cwd=REPO, env=env)
    assert out.startswith("usage:")
    code = (
        "import optarena.harness.runner as r, optarena.records as c; print(r.__file__, c.__file__)"
    )
    files = _run(sys.executable, "-S", "-c", code, cwd=REPO, env=env).split()
    assert all(Path(f).resolve().is_relative_to(installed["target"].resolve()) for f in files)


def test_installed_wheel_prepares_tfds_data(installed: dict) -> None:
    assert installed["validation"] == {"image": [300, 64], "label": [300]}
    assert list(installed["data_dir"].rglob("*.array_record*")), "no array_record files written"


def test_editable_install_has_only_the_optarena_namespace(tmp_path: Path) -> None:
    """From outside the repository, the folders are importable only as ``optarena.*``."""
    done = subprocess.run(
        [sys.executable, "-c", "import harness"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr
    where = _run(
        sys.executable,
        "-c",
        "import optarena.harness; print(optarena.harness.__file__)",
        cwd=tmp_path,
    )
    assert Path(where.strip()).resolve() == REPO / "harness" / "__init__.py"
    assert _run(sys.executable, "-m", "optarena", "--help", cwd=tmp_path).startswith("usage:")
