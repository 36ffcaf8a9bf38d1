"""How built-in submissions are written (a builder, its defaults, a shared schedule) and what a
submission's source hash covers: its own files and every ``optarena`` module it imports.

The hash tests edit a copy of the project's ``optarena/__init__.py`` and ``submissions/`` in a
temporary folder put first on ``PYTHONPATH``: ``optarena`` and ``optarena.submissions`` then
come from the copy, while the installed project still supplies ``optarena.workloads`` and the
rest. Each state of the copy is hashed by a fresh interpreter.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import optax
import pytest

import optarena.submissions
from optarena.submissions import Submission, WorkloadInfo, loader, with_defaults
from optarena.submissions.schedules import warmup_cosine

INFO = WorkloadInfo(
    step_hint=100, budget_sec=10.0, batch_size=8, num_train_examples=64, num_devices=1
)
SUBMISSIONS_DIR = Path(optarena.submissions.__file__).parent
OPTARENA_INIT = Path(importlib.util.find_spec("optarena").origin)

# ---------------------------------------------------------------------------------------------
# A builder and its defaults.


def build(info, learning_rate, momentum, nesterov=False):
    """SGD for the tests."""
    return optax.sgd(learning_rate * info.step_hint / 100, momentum, nesterov=nesterov)


DEFAULTS = {"learning_rate": 0.1, "momentum": 0.9}


def first_update(tx: optax.GradientTransformation) -> float:
    params = {"w": jnp.ones(2)}
    updates, _ = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    return float(updates["w"][0])


def test_with_defaults_completes_the_point_from_the_defaults():
    make_optimizer = with_defaults(build, DEFAULTS)
    assert first_update(make_optimizer(None, INFO)) == pytest.approx(-0.1)
    assert first_update(make_optimizer({}, INFO)) == pytest.approx(-0.1)
    assert first_update(make_optimizer({"learning_rate": 0.5}, INFO)) == pytest.approx(-0.5)
    # An optional argument of the builder is a hyperparameter too.
    nesterov = make_optimizer({"nesterov": True}, INFO)
    assert first_update(nesterov) == pytest.approx(-0.1 * 1.9)
    assert make_optimizer.__doc__ == build.__doc__


def test_with_defaults_names_an_unknown_hyperparameter():
    make_optimizer = with_defaults(build, DEFAULTS)
    with pytest.raises(ValueError, match=r"unknown hyperparameter.*learning_rte") as error:
        make_optimizer({"learning_rte": 0.5}, INFO)
    assert "learning_rate" in str(error.value), "the known names are listed"
    with pytest.raises(ValueError, match=r"unknown hyperparameter.*beta"):
        with_defaults(build, {**DEFAULTS, "beta": 0.9})


def test_with_defaults_names_a_missing_hyperparameter():
    make_optimizer = with_defaults(build, {"learning_rate": 0.1})
    with pytest.raises(ValueError, match=r"no value for hyperparameter.*momentum"):
        make_optimizer(None, INFO)
    assert first_update(make_optimizer({"momentum": 0.0}, INFO)) == pytest.approx(-0.1)


def test_a_builder_with_kwargs_takes_any_name():
    def open_ended(info, learning_rate, **extra):
        return optax.sgd(learning_rate)

    make_optimizer = with_defaults(open_ended, {"learning_rate": 0.1, "anything": 1})
    assert isinstance(make_optimizer({"else": 2}, INFO), optax.GradientTransformation)


def test_a_builder_must_take_the_workload_info():
    with pytest.raises(TypeError, match="WorkloadInfo"):
        with_defaults(lambda: optax.sgd(0.1), {})


def test_from_builder_names_the_submission_after_its_builder():
    submission = Submission.from_builder(build, [{"learning_rate": 0.2}], DEFAULTS)
    assert submission.name == "build"
    assert submission.default_hparams == DEFAULTS
    assert submission.search_space == [{"learning_rate": 0.2}]
    assert first_update(submission.make_optimizer({"learning_rate": 0.2}, INFO)) == (
        pytest.approx(-0.2)
    )
    renamed = Submission.from_builder(build, None, DEFAULTS, name="other", self_tuning=True)
    assert (renamed.name, renamed.self_tuning) == ("other", True)
    bare = Submission.from_builder(lambda info: optax.sgd(0.1), name="bare", self_tuning=True)
    assert bare.default_hparams is None
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        bare.make_optimizer({"learning_rate": 0.1}, INFO)


def test_the_shared_schedule_warms_up_then_decays_to_zero_at_the_step_hint():
    schedule = warmup_cosine(2.0, warmup_factor=0.1, step_hint=100)
    values = {step: float(schedule(step)) for step in (0, 5, 10, 55, 100, 150)}
    assert values[0] == 0.0
    assert values[5] == pytest.approx(1.0)
    assert values[10] == pytest.approx(2.0)
    assert values[55] == pytest.approx(1.0)  # halfway down the cosine
    assert values[100] == pytest.approx(0.0, abs=1e-7)
    assert values[150] == pytest.approx(0.0, abs=1e-7)
    # Without warmup the cosine starts at the peak; it still ends at step_hint.
    no_warmup = warmup_cosine(2.0, warmup_factor=0.0, step_hint=100)
    assert float(no_warmup(0)) == pytest.approx(2.0)
    assert float(no_warmup(100)) == pytest.approx(0.0, abs=1e-7)


def test_the_two_sgd_builtins_share_code_but_not_their_hash():
    momentum, nesterov = loader.load("sgd_momentum"), loader.load("sgd_nesterov")
    assert momentum.source_sha256 != nesterov.source_sha256
    assert momentum.submission.search_space == nesterov.submission.search_space
    point = {"warmup_factor": 0.0}  # the first step at the peak learning rate
    heavy_ball, nesterov_step = (
        first_update(loaded.submission.make_optimizer(point, INFO))
        for loaded in (momentum, nesterov)
    )
    assert nesterov_step == pytest.approx(heavy_ball * 1.9, rel=1e-3)


def test_importing_the_contract_loads_no_accelerator_stack():
    code = (
        "import sys\n"
        "from optarena.submissions import Hparams, SearchSpace, Submission, WorkloadInfo\n"
        "from optarena.submissions import with_defaults, loader\n"
        "loader.builtin_names()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'optax')))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert completed.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# What a source hash covers.

BUILTINS_WITHOUT_SCHEDULE = {"schedule_free_adamw"}
BUILTINS_WITH_ADAM_SPACE = {"adam", "adamw", "lamb", "nadamw", "schedule_free_adamw", "shampoo"}

PATH_SUBMISSION = """
from optarena.submissions.api import Submission
from optarena.submissions.schedules import warmup_cosine
from helper import PEAK
import optax


def make_optimizer(hparams, info):
    return optax.sgd(warmup_cosine(PEAK, 0.1, info.step_hint))


SUBMISSION = Submission(name="by_path", make_optimizer=make_optimizer, self_tuning=True)
"""

PLUGIN_PACKAGE = """
from optarena.submissions import Submission
from .builder import sgd

SUBMISSION = Submission.from_builder(sgd, name="plugged", self_tuning=True)
"""

PLUGIN_BUILDER = """
import optax
from optarena.submissions import schedules


def sgd(info):
    return optax.sgd(schedules.warmup_cosine(0.1, 0.1, info.step_hint))
"""

PLUGIN_WITHOUT_SCHEDULE = """
import optax
from optarena.submissions.api import Submission

SUBMISSION = Submission(
    name="unscheduled", make_optimizer=lambda hparams, info: optax.sgd(0.1), self_tuning=True
)
"""

HASHES = """
import json, sys
import optarena.submissions
from optarena.submissions import loader

references = [*loader.builtin_names(), "plugged", "unscheduled", sys.argv[1]]
print(json.dumps({
    "submissions_file": optarena.submissions.__file__,
    "hashes": {ref: loader.load(ref).source_sha256 for ref in references},
}))
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def install_plugin(site: Path, name: str, value: str, files: dict[str, str]) -> None:
    info = site / f"{name}-1.0.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    write(info / "entry_points.txt", f"[{loader.ENTRY_POINT_GROUP}]\n{name} = {value}\n")
    for relative, text in files.items():
        write(site / relative, text)


@pytest.fixture
def project(tmp_path):
    """A copy of ``optarena/__init__.py`` and ``submissions/``, an installed plugin package, a
    plugin module that imports no schedule, and a ``.py`` submission with a sibling."""
    root = tmp_path
    copy = root / "copy"
    write(copy / "optarena" / "__init__.py", OPTARENA_INIT.read_text())
    shutil.copytree(
        SUBMISSIONS_DIR,
        copy / "optarena" / "submissions",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    site = root / "site"
    install_plugin(
        site,
        "plugged",
        "plugged_pkg:SUBMISSION",
        {"plugged_pkg/__init__.py": PLUGIN_PACKAGE, "plugged_pkg/builder.py": PLUGIN_BUILDER},
    )
    install_plugin(
        site, "unscheduled", "unscheduled_mod", {"unscheduled_mod.py": PLUGIN_WITHOUT_SCHEDULE}
    )
    write(root / "by_path" / "helper.py", "PEAK = 0.1\n")
    path = write(root / "by_path" / "mine.py", PATH_SUBMISSION)
    return {"root": root, "copy": copy, "site": site, "path": path}


def hashes(project) -> dict[str, str]:
    """Every submission's hash, computed by a fresh interpreter that imports the copy."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project["copy"]), str(project["site"])]),
    }
    completed = subprocess.run(
        [sys.executable, "-c", HASHES, str(project["path"])],
        cwd=project["root"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    copied = project["copy"] / "optarena" / "submissions" / "__init__.py"
    assert Path(result["submissions_file"]).resolve() == copied.resolve()
    return result["hashes"]


def edit(path: Path) -> None:
    path.write_text(path.read_text() + "\nEDITED = True\n")


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert set(before) == set(after)
    return {name for name in before if before[name] != after[name]}


def test_a_hash_covers_the_project_modules_a_submission_imports(project):
    path, builtins = str(project["path"]), set(loader.builtin_names())
    submissions = project["copy"] / "optarena" / "submissions"
    before = hashes(project)
    # Project modules count by name, not by path: the copy hashes as the installed project.
    assert {name: before[name] for name in builtins} == {
        name: loader.load(name).source_sha256 for name in builtins
    }

    # The shared schedule: every submission that imports it, and only those.
    edit(submissions / "schedules.py")
    after_schedule = hashes(project)
    uses_schedule = builtins - BUILTINS_WITHOUT_SCHEDULE | {"plugged", path}
    assert changed(before, after_schedule) == uses_schedule

    # A built-in's own module: that built-in alone.
    edit(submissions / "lion.py")
    after_lion = hashes(project)
    assert changed(after_schedule, after_lion) == {"lion"}

    # The Adam family's search space: the built-ins that import it.
    edit(submissions / "adam_space.py")
    after_space = hashes(project)
    assert changed(after_lion, after_space) == BUILTINS_WITH_ADAM_SPACE

    # The contract every submission imports.
    edit(submissions / "api.py")
    assert changed(after_space, hashes(project)) == builtins | {"plugged", "unscheduled", path}


def test_a_plugin_and_a_path_submission_still_cover_their_own_files(project):
    before = hashes(project)
    edit(project["site"] / "plugged_pkg" / "builder.py")
    edit(project["path"].parent / "helper.py")
    assert changed(before, hashes(project)) == {"plugged", str(project["path"])}


def test_a_builtin_hashes_the_same_by_name_and_by_path():
    path = SUBMISSIONS_DIR / "nadamw.py"
    before = set(sys.modules)
    by_path = loader.load(str(path))
    assert by_path.source_sha256 == loader.load("nadamw").source_sha256
    # The project modules it imports are not taken for siblings: they stay imported.
    new = set(sys.modules) - before
    assert {m for m in new if m.startswith("optarena.")} == set()
    for name in new:
        if name.startswith("optarena_submission_"):
            del sys.modules[name]


def test_editing_a_py_submissions_helper_makes_the_next_benchmark_run_new_trials(
    tmp_path, capsys, data_dir
):
    from optarena.harness import cli
    from optarena.leaderboard.store import Store

    helper = tmp_path / "edited_rates.py"
    helper.write_text("LEARNING_RATE = 1e-3\n")
    path = tmp_path / "edited_submission.py"
    path.write_text(
        textwrap.dedent(
            """
            import optax
            from edited_rates import LEARNING_RATE
            from optarena.submissions.api import Submission

            SUBMISSION = Submission(
                name="edited",
                make_optimizer=lambda hparams, info: optax.sgd(LEARNING_RATE),
                self_tuning=True,
            )
            """
        )
    )
    db = f"sqlite:///{tmp_path / 'board.db'}"
    benchmark = [
        "benchmark", "--submission", str(path), "--ruleset", "self", "--suite", "quick",
        "--workloads", "digits_mlp", "--studies", "1", "--max-steps", "20",
        "--db", db, "--data-dir", data_dir,
    ]  # fmt: skip
    for rate, expected in (("1e-3", "1 to run"), ("1e-3", "0 to run"), ("0.5", "1 to run")):
        helper.write_text(f"LEARNING_RATE = {rate}\n")
        assert cli.main(benchmark) == 0, capsys.readouterr().err
        err = capsys.readouterr().err
        assert expected in err, err
    trials = Store(db).trials()
    assert len(trials) == 2, "the unchanged rerun was reused, the edit ran anew"
