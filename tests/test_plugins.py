"""A plugin living outside the repository, installed as its own package with an entry point:
listed by ``optarena submissions``, checked by ``optarena check`` and run and stored by
``optarena run``, with no change to optarena."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

from optarena.harness import cli
from optarena.submissions import loader

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "submissions" / "template.py"


def build_wheel(folder: Path, distribution: str, files: dict[str, str], entry_points: str) -> Path:
    """A wheel (PEP 427: a zip with a ``.dist-info``) holding ``files``; built by hand so that
    no build backend, and no network, is needed."""
    version = "0.1.0"
    info = f"{distribution}-{version}.dist-info"
    contents = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: handmade\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": entry_points,
    }
    records = []
    for name, text in contents.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        records.append(f"{name},sha256={encoded},{len(text.encode())}")
    records.append(f"{info}/RECORD,,")
    path = folder / f"{distribution}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in contents.items():
            wheel.writestr(name, text)
        wheel.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return path


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """A throwaway distribution whose module is the template renamed, installed by pip into
    its own ``--target`` directory (offline: no index, no dependencies)."""
    unique = uuid.uuid4().hex[:8]
    entry_name, module = f"plugin_adam_{unique}", f"optarena_plugin_{unique}"
    root = tmp_path_factory.mktemp("plugin")
    site = root / "site"
    source = TEMPLATE.read_text().replace('name="my_optimizer"', f'name="{entry_name}"')
    wheel = build_wheel(
        root,
        module,
        {f"{module}.py": source},
        f"[{loader.ENTRY_POINT_GROUP}]\n{entry_name} = {module}\n",
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (site / f"{module}.py").is_file()
    copy = root / "copy" / f"{module}.py"
    copy.parent.mkdir()
    copy.write_text(source)
    yield {"name": entry_name, "module": module, "site": site, "source": copy}
    for name in [m for m in sys.modules if unique in m]:
        del sys.modules[name]


def test_installed_plugin_is_listed_with_origin_and_hash(installed_plugin):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed_plugin["site"]), str(REPO)])}
    listing = subprocess.run(
        [sys.executable, "-m", "optarena", "submissions", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert set(loader.builtin_names()) < set(rows)
    row = rows[installed_plugin["name"]]
    assert row["origin"] == f"entry_point:{installed_plugin['module']}"
    # The hash is of the plugin's code: the same file loaded by path hashes the same.
    assert row["source_sha256"] == loader.load(str(installed_plugin["source"])).source_sha256
    # Without the plugin on the path, it is not listed.
    plain = subprocess.run(
        [sys.executable, "-m", "optarena", "submissions", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert installed_plugin["name"] not in {row["name"] for row in json.loads(plain.stdout)}


def test_installed_plugin_passes_check_and_runs_a_stored_trial(
    installed_plugin, monkeypatch, capsys, tmp_path, data_dir
):
    from optarena.leaderboard.store import Store

    monkeypatch.syspath_prepend(str(installed_plugin["site"]))
    importlib.invalidate_caches()
    name = installed_plugin["name"]
    assert cli.main(["check", name, "--data-dir", data_dir]) == 0, capsys.readouterr()
    capsys.readouterr()
    db = f"sqlite:///{tmp_path / 'plugin.db'}"
    argv = ["run", "--workload", "digits_mlp", "--submission", name, "--max-steps", "20"]
    argv += ["--budget", "1000"]  # the step count, not the machine's speed, ends the trial
    code = cli.main([*argv, "--db", db, "--data-dir", data_dir, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["num_steps"] == 20
    trials = Store(db).trials()
    assert list(trials["submission"]) == [name]


def test_installed_plugin_is_benchmarked_and_scored(
    installed_plugin, monkeypatch, capsys, tmp_path, data_dir
):
    monkeypatch.syspath_prepend(str(installed_plugin["site"]))
    importlib.invalidate_caches()
    name = installed_plugin["name"]
    db = f"sqlite:///{tmp_path / 'board.db'}"
    benchmark = ["benchmark", "--submission", name, "--ruleset", "external", "--suite", "quick"]
    small = ["--workloads", "digits_mlp", "--no-held-out", "--studies", "1", "--trials", "1"]
    options = ["--max-steps", "20", "--executor", "in-process", "--db", db, "--data-dir", data_dir]
    code = cli.main([*benchmark, *small, *options])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert cli.main(["score", "--db", db, "--replicates", "10"]) == 0
    assert name in capsys.readouterr().out
    assert cli.main(["leaderboard", "--db", db]) == 0
    assert name in capsys.readouterr().out
