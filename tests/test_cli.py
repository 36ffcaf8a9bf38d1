"""The command line end to end: listings, a real stored trial, and bad input that writes nothing."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from optarena.harness import calibration, cli
from optarena.submissions import loader
from optarena.workloads import registry


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_listings_are_json_for_scripts(capsys):
    code, out, _ = _run(capsys, "workloads", "--json")
    assert code == 0
    specs = json.loads(out)
    assert [s["name"] for s in specs] == registry.names()
    assert all(s["mode"] in ("min", "max") for s in specs)

    code, out, _ = _run(capsys, "submissions", "--json")
    assert code == 0
    listed = {s["name"]: s for s in json.loads(out)}
    assert set(listed) == set(loader.builtin_names())
    assert listed["nadamw"]["source_sha256"] == loader.load("nadamw").source_sha256


def test_run_reaches_target_and_stores_trial_with_eval_points_and_provenance(
    capsys, tmp_path, data_dir
):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    # The calibrated point reaches the target; a generous budget keeps a loaded machine from
    # turning this into a test of its speed.
    chosen = calibration.load_record("digits_mlp")["chosen_hparams"]
    code, out, _ = _run(
        capsys,
        "run",
        "--workload",
        "digits_mlp",
        "--submission",
        "nadamw",
        "--hparams",
        json.dumps(chosen),
        "--budget",
        "60",
        "--db",
        db,
        "--data-dir",
        data_dir,
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    spec = registry.get("digits_mlp").spec
    assert result["status"] == "reached"
    assert 0 < result["time_to_target_sec"] <= 60
    assert result["steps_to_target"] % spec.eval_every_steps == 0

    code, out, _ = _run(capsys, "trials", "--db", db, "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["id"] == result["trial_id"] and row["status"] == "reached"
    assert math.isclose(row["time_to_target_sec"], result["time_to_target_sec"])

    from optarena.leaderboard.store import Store

    store = Store(db)
    stored = store.trial(result["trial_id"])
    assert stored["hparams"] == chosen
    assert stored["source_sha256"] == loader.load("nadamw").source_sha256
    assert stored["spec"] == spec.to_dict()
    assert stored["jax_version"] and stored["optax_version"] and stored["flax_version"]
    assert stored["device_kind"] and stored["num_devices"] >= 1
    points = store.eval_points(result["trial_id"])
    assert [p.step for p in points] == list(
        range(spec.eval_every_steps, result["steps_to_target"] + 1, spec.eval_every_steps)
    )
    assert spec.reached(points[-1].validation[spec.metric])
    assert not any(spec.reached(p.validation[spec.metric]) for p in points[:-1])

    code, out, _ = _run(capsys, "trials", "--db", db)
    assert code == 0 and "digits_mlp" in out and "reached" in out

    code, out, _ = _run(capsys, "trial", str(result["trial_id"]), "--db", db, "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["git_commit"] == stored["git_commit"] and shown["seed"] == 0
    assert [p["step"] for p in shown["eval_points"]] == [p.step for p in points]
    code, out, _ = _run(capsys, "trial", str(result["trial_id"]), "--db", db)
    assert code == 0 and "Evaluations" in out and stored["jax_version"] in out

    code, _, err = _run(capsys, "trial", "999", "--db", db)
    assert code == 2 and "no trial with id 999" in err


BROKEN_FACTORY = textwrap.dedent(
    """
    from optarena.submissions.api import Submission

    def make_optimizer(hparams, info):
        raise RuntimeError("boom")

    SUBMISSION = Submission(name="broken", make_optimizer=make_optimizer)
    """
)


BROKEN_UPDATE = textwrap.dedent(
    """
    import optax
    from optarena.submissions.api import Submission

    def update(updates, state, params=None):
        raise ValueError("update cannot run")

    def make_optimizer(hparams, info):
        return optax.GradientTransformation(lambda params: optax.EmptyState(), update)

    SUBMISSION = Submission(name="broken_update", make_optimizer=make_optimizer)
    """
)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workload", "no_such_workload", "--submission", "nadamw"], "unknown workload"),
        (["--workload", "digits_mlp", "--submission", "no_such"], "unknown submission"),
        (
            ["--workload", "digits_mlp", "--submission", "nadamw", "--hparams", "{lr"],
            "not valid JSON",
        ),
        (["--workload", "digits_mlp", "--submission", "nadamw", "--hparams", "[1]"], "JSON object"),
        (
            ["--workload", "digits_mlp", "--submission", "nadamw", "--hparams", '{"lr": 1}'],
            "unknown hyperparameter",
        ),
        (
            ["--workload", "digits_mlp", "--submission", "{tmp}/not_a_submission.py"],
            "defines no SUBMISSION",
        ),
        (["--workload", "digits_mlp", "--submission", "{tmp}/missing.py"], "not found"),
        (["--workload", "digits_mlp", "--submission", "{tmp}/broken.py"], "boom"),
        (
            ["--workload", "digits_mlp", "--submission", "{tmp}/broken_update.py"],
            "update cannot run",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, extra, message):
    (tmp_path / "not_a_submission.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text(BROKEN_FACTORY)
    (tmp_path / "broken_update.py").write_text(BROKEN_UPDATE)
    db_file = tmp_path / "untouched.db"
    argv = [
        "run",
        *[a.replace("{tmp}", str(tmp_path)) for a in extra],
        "--db",
        f"sqlite:///{db_file}",
    ]
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("optarena: error:") and message in err
    assert not db_file.exists()


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--workload", "digits_mlp", "--submission", "nadamw", "--budget", "-1"])
    assert exit_info.value.code == 2
    assert "positive" in capsys.readouterr().err


def test_installed_console_script_runs_a_trial(tmp_path, data_dir):
    executable = shutil.which("optarena")
    command = [executable] if executable else [sys.executable, "-m", "optarena"]
    db = f"sqlite:///{tmp_path / 'script.db'}"
    completed = subprocess.run(
        [
            *command,
            "run",
            "--workload",
            "digits_mlp",
            "--submission",
            "nadamw",
            "--max-steps",
            "100",
            "--db",
            db,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["num_steps"] <= 100 and result["status"] in ("reached", "not_reached")


@pytest.mark.parametrize("url", ["nonsense://", "postgresql+nodriver://host/db"])
def test_bad_store_url_is_bad_input(capsys, url):
    code, out, err = _run(
        capsys, "run", "--workload", "digits_mlp", "--submission", "nadamw", "--db", url
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "cannot open store" in err


@pytest.mark.parametrize("command", [["trials"], ["trial", "1"]])
def test_reading_a_missing_store_is_bad_input_and_creates_nothing(capsys, tmp_path, command):
    db_file = tmp_path / "absent.db"
    code, out, err = _run(capsys, *command, "--db", f"sqlite:///{db_file}")
    assert code == 2 and out == "" and "no store" in err
    assert not db_file.exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("optarena ")


def test_quickstart_runs_the_quick_suite_stores_every_trial_and_feeds_the_leaderboard(
    capsys, tmp_path, data_dir, monkeypatch
):
    from optarena.leaderboard.store import Store
    from optarena.workloads import suites

    # Two built-ins stand for all of them: the trials themselves are tested per submission in
    # test_conformance.py; here, that quickstart runs and stores every built-in it is given.
    monkeypatch.setattr(loader, "builtin_names", lambda: ["nadamw", "prodigy"])
    db = f"sqlite:///{tmp_path / 'quick.db'}"
    code, out, err = _run(capsys, "quickstart", "--seeds", "1", "--db", db, "--data-dir", data_dir)
    assert code == 0, err
    frame = Store(db).trials()
    expected = {(s, w) for s in loader.builtin_names() for w in suites.workloads("quick")}
    assert set(zip(frame["submission"], frame["workload"], strict=True)) == expected
    assert len(frame) == len(expected)
    assert "Summary" in out and all(w in out for w in suites.workloads("quick"))
    progress = [line for line in err.splitlines() if " on " in line and "(seed 0)" in line]
    assert len(progress) == len(expected)  # one line per trial
    labels = {line.split("] ", 1)[1].split(" (seed")[0] for line in progress}
    assert {tuple(label.split(" on ")) for label in labels} == expected
    # The default points are scored as AlgoPerf scores, seeds standing for studies...
    scores = out[out.index("default points: scores") :]
    assert all(name in scores for name in loader.builtin_names())
    assert re.search(r"\b[01]\.\d{4}\b", scores), scores

    # ... into a snapshot that the leaderboard shows, labelled as default points.
    code, out, err = _run(capsys, "leaderboard", "--json", "--db", db)
    assert code == 0, err
    board = json.loads(out)
    assert {row["submission"] for row in board["scores"]} == set(loader.builtin_names())
    assert {row["ruleset"] for row in board["scores"]} == {"default"}
    assert all(0.0 <= row["score"] <= 1.0 for row in board["scores"])
    assert board["num_trials"] == len(expected)
    code, out, _ = _run(capsys, "leaderboard", "--db", db)
    assert code == 0 and "default points: scores" in out and "not training algorithms" in out

    # A second run of the main job finds every trial stored and runs nothing.
    code, out, err = _run(capsys, "quickstart", "--seeds", "1", "--db", db, "--data-dir", data_dir)
    assert code == 0, err
    assert len(Store(db).trials()) == len(expected)
    assert f"({len(expected)} of them stored before)" in out

    # `optarena score` then scores every benchmark trial stored: the default points here.
    code, out, err = _run(capsys, "score", "--json", "--replicates", "20", "--db", db)
    assert code == 0, err
    scored = json.loads(out)
    assert scored["snapshot_id"] == 3
    assert {row["submission"] for row in scored["scores"]} == set(loader.builtin_names())
    assert {row["workload"] for row in scored["workloads"]} == set(suites.workloads("quick"))


def test_quickstart_fails_when_a_trial_does_not_run(capsys, tmp_path, data_dir, monkeypatch):
    """A built-in that cannot train means a broken installation: the main job says so, exit 1."""
    broken = tmp_path / "broken_update.py"
    broken.write_text(
        BROKEN_UPDATE.replace(
            "make_optimizer=make_optimizer", "make_optimizer=make_optimizer, self_tuning=True"
        )
    )
    monkeypatch.setattr(loader, "builtin_names", lambda: [str(broken)])
    db = f"sqlite:///{tmp_path / 'broken.db'}"
    code, _, err = _run(
        capsys, "quickstart", "--seeds", "1", "--executor", "in-process", "--db", db,
        "--data-dir", data_dir,
    )  # fmt: skip
    assert code == 1
    assert "2 of 2 trials did not run to an outcome (error)" in err
    assert "see `optarena trial 1`" in err


def test_quickstart_unknown_suite_is_bad_input(capsys, tmp_path):
    db_file = tmp_path / "none.db"
    code, _, err = _run(capsys, "quickstart", "--suite", "nope", "--db", f"sqlite:///{db_file}")
    assert code == 2 and "unknown suite" in err and not db_file.exists()


def test_data_prepare_rebuilds_a_deleted_data_directory(capsys, tmp_path):
    data_dir = tmp_path / "data"
    for _ in range(2):  # prepared, then deleted and prepared again
        code, out, _ = _run(capsys, "data", "prepare", "digits_mlp", "--data-dir", str(data_dir))
        assert code == 0
        assert "1197 train, 300 validation, 300 test" in out
        assert (data_dir / "optarena_digits").is_dir()
        shutil.rmtree(data_dir)
    code, _, err = _run(capsys, "data", "prepare", "no_such", "--data-dir", str(data_dir))
    assert code == 2 and "unknown workload" in err


@pytest.mark.parametrize(
    "command",
    [
        ["data", "prepare", "mnist_cnn"],
        ["run", "--workload", "mnist_cnn", "--submission", "nadamw"],
    ],
)
def test_absent_catalog_dataset_says_how_to_get_it(capsys, tmp_path, command):
    db_file = tmp_path / "never.db"
    argv = [*command, "--data-dir", str(tmp_path / "empty")]
    if command[0] == "run":
        argv += ["--db", f"sqlite:///{db_file}"]
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and "not prepared" in err and "optarena[real-data]" in err
    assert not db_file.exists()
