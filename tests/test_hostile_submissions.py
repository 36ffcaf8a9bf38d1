"""Hostile submissions: whatever a submission's code does, it cannot change a stored result,
time or row, and the benchmark process (and the shell that started it) survives.

Each submission is honest Adam plus one attack, at import or in its factory. It is benchmarked
through the command line, in the default executor, on `digits_mlp` under the self-tuning
ruleset (one trial per study, the same trial seeds for every submission).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from optarena.harness import cli
from optarena.leaderboard.store import Store

HONEST = """
import optax
from optarena.submissions.api import Submission

{at_import}

def make_optimizer(hparams, info):
{in_factory}
    return optax.adam(3e-3)

SUBMISSION = Submission(name="{name}", make_optimizer=make_optimizer, self_tuning=True)
"""

MAX_STEPS = "60"
BUDGET_FACTOR = "100"
"""Far from the budget, the step cap ends every trial: what a run stores does not depend on
how loaded the machine is, so two runs compare evaluation by evaluation."""

CLOCK_PATCH = """
import time
from optarena.harness import runner
runner.run_program.__kwdefaults__["clock"] = lambda: time.perf_counter() / 10
"""

RESULT_REWRITE = """
import dataclasses
from optarena.harness import executors, runner
from optarena.records import TrialStatus

def _reached(result):
    return dataclasses.replace(
        result, status=TrialStatus.REACHED, time_to_target_sec=0.001, steps_to_target=1,
        examples_to_target=1,
    )

_measure, _run_program = executors.measure, runner.run_program
executors.measure = lambda *args, **kwargs: _reached(_measure(*args, **kwargs))
runner.run_program = lambda *args, **kwargs: _reached(_run_program(*args, **kwargs))
"""

# From the second call on (the first is the benchmark's pre-flight), so that the attack hits
# the trials themselves.
AFTER_PREFLIGHT = """
    import pathlib
    calls = pathlib.Path({calls!r})
    calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
    if len(calls.read_text()) > 1:
        {attack}
"""

VALIDATION_READ = """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from optarena.workloads import registry

    images = registry.get("digits_mlp").load_split("validation", {data_dir!r})["image"]
    table = jnp.asarray(np.asarray(images, np.float32))

    def nudge(updates, state, params=None):
        # The validation set, used with the traced updates: baked in as a constant.
        return jax.tree.map(lambda u: u + 0.0 * jnp.sum(table * jnp.sum(u)), updates), state

    peek = optax.GradientTransformation(lambda params: optax.EmptyState(), nudge)
    return optax.chain(optax.adam(3e-3), peek)
"""


def _submission(tmp_path: Path, name: str, *, at_import: str = "", in_factory: str = "") -> str:
    path = tmp_path / f"{name}.py"
    body = HONEST.format(
        at_import=textwrap.dedent(at_import),
        in_factory=textwrap.indent(textwrap.dedent(in_factory), "    ") or "    pass",
        name=name,
    )
    path.write_text(body)
    return str(path)


def _benchmark(capsys, db: Path, data_dir: str, path: str, *options: str) -> tuple[int, str]:
    code = cli.main(
        [
            "benchmark", "--db", f"sqlite:///{db}", "--data-dir", data_dir,
            "--submission", path, "--ruleset", "self", "--suite", "quick",
            "--workloads", "digits_mlp", "--studies", "2",
            "--max-steps", MAX_STEPS, "--budget-factor", BUDGET_FACTOR, "--setup-allowance", "20",
            *options,
        ]
    )  # fmt: skip
    return code, capsys.readouterr().err


def _trials(db: Path) -> list[dict]:
    store = Store(f"sqlite:///{db}")
    frame = store.benchmark_trials().sort_values("study")
    rows = []
    for trial_id in frame["trial_id"]:
        trial = store.trial(int(trial_id))
        points = store.eval_points(int(trial_id))
        rows.append({**trial, "curve": [(p.step, p.validation, p.train_loss) for p in points]})
    return rows


@pytest.fixture(scope="module")
def honest(tmp_path_factory, data_dir) -> list[dict]:
    tmp_path = tmp_path_factory.mktemp("honest")
    db = tmp_path / "honest.db"
    code = cli.main(
        [
            "benchmark", "--db", f"sqlite:///{db}", "--data-dir", data_dir,
            "--submission", _submission(tmp_path, "honest"), "--ruleset", "self",
            "--suite", "quick", "--workloads", "digits_mlp",
            "--studies", "2", "--max-steps", MAX_STEPS, "--budget-factor", BUDGET_FACTOR,
        ]
    )  # fmt: skip
    assert code == 0
    return _trials(db)


@pytest.mark.parametrize("attack", [CLOCK_PATCH, RESULT_REWRITE], ids=["clock", "result"])
def test_patching_the_harness_changes_nothing_measured(capsys, tmp_path, data_dir, honest, attack):
    db = tmp_path / "store.db"
    code, err = _benchmark(capsys, db, data_dir, _submission(tmp_path, "patcher", at_import=attack))
    assert code == 0, err
    trials = _trials(db)
    assert [t["status"] for t in trials] == [t["status"] for t in honest]
    for hostile, fair in zip(trials, honest, strict=True):
        assert hostile["seed"] == fair["seed"]
        assert hostile["num_steps"] == fair["num_steps"] == int(MAX_STEPS)
        assert hostile["curve"] == fair["curve"], "the same training, evaluation by evaluation"
        assert math.isinf(hostile["time_to_target_sec"]) == math.isinf(fair["time_to_target_sec"])
        # A clock slowed 10 times would give a tenth of the time; machine noise is far less.
        assert hostile["timed_sec"] > 0.3 * fair["timed_sec"]


@pytest.mark.parametrize(
    "attack",
    [
        "import os; os._exit(0)",
        "import sys; sys.exit(0)",
        "raise SystemExit(3)",
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    ],
    ids=["os_exit", "sys_exit", "system_exit", "self_kill"],
)
def test_a_submission_that_exits_at_import_is_one_line_and_exit_2(
    capsys, tmp_path, data_dir, attack
):
    db = tmp_path / "store.db"
    code, err = _benchmark(capsys, db, data_dir, _submission(tmp_path, "quits", at_import=attack))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "quits.py" in err, err
    assert not db.exists() or Store(f"sqlite:///{db}").benchmark_trials().empty


@pytest.mark.parametrize(
    "attack",
    ["import sys; sys.exit(0)", "import os; os._exit(0)", "raise KeyboardInterrupt"],
    ids=["sys_exit", "os_exit", "interrupt"],
)
def test_a_factory_that_exits_at_its_first_point_is_refused_before_anything_runs(
    capsys, tmp_path, data_dir, attack
):
    db = tmp_path / "store.db"
    code, err = _benchmark(capsys, db, data_dir, _submission(tmp_path, "quits", in_factory=attack))
    assert code == 2
    assert "cannot run under the self-tuning ruleset" in err and len(err.strip().splitlines()) == 1
    assert not db.exists() or Store(f"sqlite:///{db}").benchmark_trials().empty


@pytest.mark.parametrize(
    ("attack", "status", "reason"),
    [
        ("import sys; sys.exit(0)", "error", "SystemExit"),
        ("import os; os._exit(0)", "error", "exited with status 0"),
        ("import time; time.sleep(3600)", "timeout", "no answer within"),
        ("import os, signal; os.kill(os.getppid(), signal.SIGKILL)", None, ""),
    ],
    ids=["sys_exit", "os_exit", "sleep", "parent_kill"],
)
def test_a_factory_that_attacks_its_trials_costs_only_those_trials(
    capsys, tmp_path, data_dir, honest, attack, status, reason
):
    in_factory = AFTER_PREFLIGHT.format(calls=str(tmp_path / "calls"), attack=attack)
    db = tmp_path / "store.db"
    # A sleeping factory costs each trial its whole setup allowance: a shorter one will do.
    allowance = ["--setup-allowance", "8"] if status == "timeout" else []
    code, err = _benchmark(
        capsys, db, data_dir, _submission(tmp_path, "late", in_factory=in_factory), *allowance
    )
    assert code == 0, err
    trials = _trials(db)
    assert len(trials) == 2
    if status is None:
        # Its parent is the fork server, not this process: the benchmark goes on.
        assert [t["num_steps"] for t in trials] == [t["num_steps"] for t in honest]
        return
    assert [t["status"] for t in trials] == [status, status]
    assert all(reason in t["reason"] for t in trials), [t["reason"] for t in trials]
    assert all(math.isinf(t["time_to_target_sec"]) for t in trials)


def test_data_read_while_tracing_is_refused(capsys, tmp_path, data_dir):
    in_factory = VALIDATION_READ.format(data_dir=data_dir)
    db = tmp_path / "store.db"
    code, err = _benchmark(
        capsys, db, data_dir, _submission(tmp_path, "peeks", in_factory=in_factory)
    )
    assert code == 0, err
    trials = _trials(db)
    assert [t["status"] for t in trials] == ["error", "error"]
    assert all("constant values" in t["reason"] for t in trials), trials[0]["reason"]


def test_a_submission_sees_no_optarena_variables_and_not_the_benchmark_directory(
    tmp_path, data_dir
):
    """In a fresh process, so that the fork server starts with the variable set."""
    report = tmp_path / "seen.json"
    probe = f"""
    import json, os, pathlib
    seen = sorted(k for k in os.environ if k.startswith("OPTARENA_"))
    pathlib.Path({str(report)!r}).write_text(json.dumps([seen, os.getcwd()]))
    """
    path = _submission(tmp_path, "looks", at_import=probe)
    script = (
        "import os, sys; os.environ['OPTARENA_PROBE'] = 'visible'\n"
        "from optarena.harness import cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, "submissions"],
        env={**os.environ, "OPTARENA_DATA_DIR": data_dir},
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    completed = subprocess.run(
        [sys.executable, "-c", script, "benchmark", "--db", "sqlite:///s.db", "--submission",
         path, "--ruleset", "self", "--suite", "quick", "--workloads", "digits_mlp",
         "--studies", "1", "--max-steps", MAX_STEPS],
        env={**os.environ, "OPTARENA_DATA_DIR": data_dir},
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    seen, cwd = json.loads(report.read_text())
    assert seen == []
    assert Path(cwd).resolve() != tmp_path.resolve()


def test_sqlite_store_is_untouched_by_a_refused_submission(capsys, tmp_path, data_dir, honest):
    db = tmp_path / "store.db"
    code, _ = _benchmark(capsys, db, data_dir, _submission(tmp_path, "fine"))
    assert code == 0
    before = list(sqlite3.connect(db).iterdump())
    code, _ = _benchmark(
        capsys, db, data_dir, _submission(tmp_path, "quits", at_import="import os; os._exit(0)")
    )
    assert code == 2
    assert list(sqlite3.connect(db).iterdump()) == before


def test_a_submission_that_edits_the_store_is_caught_and_stops_the_benchmark(
    capsys, tmp_path, data_dir
):
    db = tmp_path / "store.db"
    code, err = _benchmark(capsys, db, data_dir, _submission(tmp_path, "fair"))
    assert code == 0, err
    fair_ids = sorted(t["id"] for t in _trials(db))
    vandal = (
        f"connection = __import__('sqlite3').connect({str(db)!r}); "
        "connection.execute(\"UPDATE trials SET status = 'diverged', time_to_target_sec = NULL\"); "
        "connection.commit()"
    )
    in_factory = AFTER_PREFLIGHT.format(calls=str(tmp_path / "calls"), attack=vandal)
    path = _submission(tmp_path, "vandal", in_factory=in_factory)
    code, err = _benchmark(capsys, db, data_dir, path)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("optarena: error:") and "edited or deleted" in last, err
    store = Store(f"sqlite:///{db}")
    frame = store.benchmark_trials()
    caught = frame[frame["submission"] == "vandal"]
    assert len(caught) == 1, "the first trial is stored as an error, and nothing else runs"
    assert caught["status"].tolist() == ["error"]
    assert "edited or deleted" in store.trial(int(caught["trial_id"].iloc[0]))["reason"]
    assert sorted(frame[frame["submission"] == "fair"]["trial_id"]) == fair_ids


def test_a_submission_that_touches_prepared_data_is_caught_and_stops_the_benchmark(
    capsys, tmp_path
):
    # A data directory of its own: the attack would stop any benchmark reading the shared one.
    data_dir = str(tmp_path / "data")
    db = tmp_path / "store.db"
    # One of the arrays trials read (`workloads.data`): contents and modification time stay
    # as they were, only the change time moves.
    touch = (
        f"target = next(pathlib.Path({data_dir!r}).rglob('arrays/*/*.npy')); "
        "before = target.stat(); "
        "__import__('os').utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))"
    )
    in_factory = AFTER_PREFLIGHT.format(calls=str(tmp_path / "calls"), attack=touch)
    code, err = _benchmark(
        capsys, db, data_dir, _submission(tmp_path, "toucher", in_factory=in_factory)
    )
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("optarena: error:") and "was changed" in last, err
    store = Store(f"sqlite:///{db}")
    frame = store.benchmark_trials()
    assert frame["status"].tolist() == ["error"], (
        "the trial is stored as an error, nothing else runs"
    )
    assert "was changed" in store.trial(int(frame["trial_id"].iloc[0]))["reason"]
