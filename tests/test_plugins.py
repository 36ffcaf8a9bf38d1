"""A plugin living outside the repository, installed as its own package with an entry point:
listed by ``optarena submissions``, checked by ``optarena check`` and run and stored by
``optarena run``, with no change to optarena."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import shutil
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


def build_wheel(
    folder: Path, distribution: str, files: dict[str, str], entry_points: str, version="0.1.0"
) -> Path:
    """A wheel (PEP 427: a zip with a ``.dist-info``) holding ``files``; built by hand so that
    no build backend, and no network, is needed."""
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
    # The hash is of the plugin's code and of its distribution: not the same file by path.
    assert row["source_sha256"] != loader.load(str(installed_plugin["source"])).source_sha256
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
    small = ["--workloads", "digits_mlp", "--studies", "1", "--trials", "1"]
    options = ["--max-steps", "20", "--executor", "in-process", "--db", db, "--data-dir", data_dir]
    code = cli.main([*benchmark, *small, *options])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert cli.main(["score", "--db", db, "--replicates", "10"]) == 0
    assert name in capsys.readouterr().out
    assert cli.main(["leaderboard", "--db", db]) == 0
    assert name in capsys.readouterr().out


WITH_HELPER = """
import optax
from optarena.submissions.api import Submission
from {package}.helpers import LEARNING_RATE

SUBMISSION = Submission(
    name="{name}", make_optimizer=lambda hparams, info: optax.sgd(LEARNING_RATE), self_tuning=True
)
"""


def _install_with_helper(root: Path, site: Path, package: str, name: str, rate: float, version):
    wheel = build_wheel(
        root,
        package,
        {
            f"{package}/__init__.py": "",
            f"{package}/submission.py": WITH_HELPER.format(package=package, name=name),
            f"{package}/helpers.py": f"LEARNING_RATE = {rate}\n",
        },
        f"[{loader.ENTRY_POINT_GROUP}]\n{name} = {package}.submission\n",
        version=version,
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--upgrade", "--force-reinstall", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    importlib.invalidate_caches()


def test_editing_a_plugin_helper_or_its_version_makes_a_new_submission(
    tmp_path, monkeypatch, capsys, data_dir
):
    from optarena.harness import describing
    from optarena.leaderboard.store import Store

    unique = uuid.uuid4().hex[:8]
    package, name = f"optarena_helped_{unique}", f"helped_{unique}"
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    db = f"sqlite:///{tmp_path / 'board.db'}"
    benchmark = [
        "benchmark", "--submission", name, "--ruleset", "self", "--suite", "quick",
        "--workloads", "digits_mlp", "--studies", "1", "--max-steps", "20",
        "--db", db, "--data-dir", data_dir,
    ]  # fmt: skip
    hashes = []
    for rate, version in ((1e-3, "0.1.0"), (0.5, "0.1.0"), (0.5, "0.2.0")):
        # `pip install --target` leaves an older version's metadata beside the new one, and
        # which of the two entry points wins depends on the directory order: start afresh.
        shutil.rmtree(site, ignore_errors=True)
        (tmp_path / version).mkdir(exist_ok=True)
        _install_with_helper(tmp_path / version, site, package, name, rate, version)
        hashes.append(describing.describe(name).source_sha256)
        assert cli.main(benchmark) == 0, capsys.readouterr().err
        assert "1 to run" in capsys.readouterr().err
    assert len(set(hashes)) == 3, "the helper's edit and the version each make a new hash"
    trials = Store(db).trials()
    assert len(trials) == 3


SMALL_PLUGIN = """
import optax
from optarena.submissions.api import Submission

SUBMISSION = Submission(
    name="{name}", make_optimizer=lambda hparams, info: optax.sgd(0.1), self_tuning=True
)
"""


def test_a_clashing_or_misnamed_plugin_fails_alone(tmp_path, monkeypatch, capsys, data_dir):
    unique = uuid.uuid4().hex[:8]
    site = tmp_path / "site"
    good, twin, misnamed = f"good_{unique}", f"twin_{unique}", f"epname_{unique}"
    plugins = {
        f"first_{unique}": {twin: twin},
        f"second_{unique}": {twin: twin, "nadamw": "nadamw"},
        f"third_{unique}": {misnamed: f"subname_{unique}", good: good},
    }
    for distribution, entries in plugins.items():
        files = {
            f"{distribution}_{i}.py": SMALL_PLUGIN.format(name=name)
            for i, name in enumerate(entries.values())
        }
        points = "".join(f"{entry} = {distribution}_{i}\n" for i, entry in enumerate(entries))
        wheel = build_wheel(
            tmp_path, distribution, files, f"[{loader.ENTRY_POINT_GROUP}]\n{points}"
        )
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
             "--target", str(site), str(wheel)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    listing = subprocess.run(
        [sys.executable, "-m", "optarena", "submissions", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    errors = {row["name"]: row["error"] for row in rows if "error" in row}
    assert f"first_{unique}" in errors[twin] and f"second_{unique}" in errors[twin]
    assert "built-in" in errors["nadamw"] and f"second_{unique}" in errors["nadamw"]
    assert "must be the same" in errors[misnamed]
    listed = {row["name"] for row in rows if "error" not in row}
    assert good in listed and set(loader.builtin_names()) <= listed

    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    assert cli.main(["check", good, "--data-dir", data_dir]) == 0, capsys.readouterr()
    capsys.readouterr()
    assert cli.main(["check", misnamed, "--data-dir", data_dir]) == 1
    assert "must be the same" in capsys.readouterr().err
    assert cli.main(["check", twin, "--data-dir", data_dir]) == 1
    assert f"second_{unique}" in capsys.readouterr().err


EXAMPLE = REPO / "submissions" / "plugin_example"
"""The plugin package the README's guide copies: a real project, built by pip."""


def _install_example(copy: Path, site: Path) -> None:
    """Build ``copy`` and install it into ``site``, as the README's `pip install ./my-plugin`.

    The build is isolated, as there: pip fetches the example's build requirement (setuptools)
    from its index, since building in this environment (``--no-build-isolation``) would need
    ``wheel``, or setuptools 70.1 or later, which optarena does not depend on. ``--no-deps``:
    optarena and optax are here already.
    """
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(copy)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    importlib.invalidate_caches()


def test_the_example_plugin_is_built_installed_checked_benchmarked_and_scored(
    tmp_path, monkeypatch, capsys, data_dir
):
    from optarena.leaderboard.store import Store

    name, package = "example_adamw", "optarena_example_plugin"
    copy, site = tmp_path / "my-plugin", tmp_path / "site"
    # What a user copies: the example's files, not what an earlier build left beside them.
    shutil.copytree(
        EXAMPLE, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    _install_example(copy, site)
    assert (site / package / "schedules.py").is_file()

    def forget_the_installed_example():
        # `pip install --target` would keep the old version's metadata beside the new one.
        shutil.rmtree(site, ignore_errors=True)
        for module in [m for m in sys.modules if m.split(".")[0] == package]:
            del sys.modules[module]

    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    try:
        assert cli.main(["submissions", "--json"]) == 0
        rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
        assert rows[name]["origin"] == f"entry_point:{package}.submission", rows[name]

        assert cli.main(["check", name, "--data-dir", data_dir]) == 0, capsys.readouterr()
        assert f"{name}: all" in capsys.readouterr().out

        db = f"sqlite:///{tmp_path / 'board.db'}"
        benchmark = ["benchmark", "--submission", name, "--ruleset", "external"]
        small = ["--suite", "quick", "--workloads", "digits_mlp"]
        small += ["--studies", "1", "--trials", "1", "--max-steps", "20"]
        run = [*benchmark, *small, "--db", db, "--data-dir", data_dir]
        assert cli.main(run) == 0, capsys.readouterr().err
        assert "1 to run" in capsys.readouterr().err
        assert cli.main(run) == 0, capsys.readouterr().err
        assert "0 to run" in capsys.readouterr().err, "the same code's trial is stored already"

        # As the guide says, an edit to the helper is a new submission, whose trial runs anew
        # (so is a new version: test_editing_a_plugin_helper_or_its_version_...).
        schedules = copy / "src" / package / "schedules.py"
        schedules.write_text(schedules.read_text() + "\n# tuned the floor\n")
        forget_the_installed_example()
        _install_example(copy, site)
        assert cli.main(run) == 0, capsys.readouterr().err
        assert "1 to run" in capsys.readouterr().err, "the edited helper's trial runs"
        trials = Store(db).trials()
        assert list(trials["submission"]) == [name, name]
        assert trials["source_sha256"].nunique() == 2

        assert cli.main(["score", "--db", db, "--replicates", "10"]) == 0
        assert name in capsys.readouterr().out
        assert cli.main(["leaderboard", "--db", db]) == 0
        assert name in capsys.readouterr().out
    finally:
        forget_the_installed_example()
