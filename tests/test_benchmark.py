"""Benchmarks: plans under both rulesets, bad input, stored studies x trials, failure statuses."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from optarena.harness import benchmark, cli, executors, isolation
from optarena.harness.benchmark import BenchmarkConfig, PlanError, Ruleset
from optarena.leaderboard.store import Store
from optarena.submissions import loader
from optarena.workloads import registry


def _plan(ruleset, reference="nadamw", workloads=("digits_mlp",), **overrides):
    config = BenchmarkConfig.for_ruleset(ruleset, **overrides)
    return benchmark.plan(loader.load(reference).info, reference, list(workloads), config)


# ---------------------------------------------------------------- planning


def test_external_plan_samples_each_study_from_its_own_seed():
    trials = _plan("external", workloads=("digits_mlp", "digits_mlp_tanh"), seed=3)
    assert len(trials) == 2 * 3 * 5  # AlgoPerf v0.6 defaults: 3 studies x 5 trials
    assert trials == _plan("external", workloads=("digits_mlp", "digits_mlp_tanh"), seed=3)
    by_study = {
        study: [
            t.config.hparams
            for t in trials
            if t.workload == "digits_mlp" and t.place.study == study
        ]
        for study in range(3)
    }
    points = [tuple(sorted(p.items())) for study in by_study.values() for p in study]
    assert len(set(points)) == 15, "every study draws its own, distinct points"
    # The same points on every workload of a study (one search space, one tuning run per study).
    assert [
        t.config.hparams for t in trials if t.workload == "digits_mlp_tanh" and t.place.study == 1
    ] == (by_study[1])
    space = loader.load("nadamw").submission.search_space
    for point in by_study[0]:
        assert (
            space["learning_rate"]["min"] <= point["learning_rate"] <= space["learning_rate"]["max"]
        )
        assert point["beta2"] in space["beta2"]["feasible_points"]
    seeds = [t.config.seed for t in trials]
    assert len(set(seeds)) == len(seeds)
    assert all(t.config.budget_sec == registry.get(t.workload).spec.budget_sec for t in trials)
    assert _plan("external", seed=4)[0].config.hparams != trials[0].config.hparams
    assert _plan("external", seed=4)[0].config.seed != trials[0].config.seed


def test_more_trials_extend_a_study_without_changing_its_first_points():
    three = _plan("external", studies=2, trials=3)
    five = _plan("external", studies=2, trials=5)
    kept = [(t.place.study, t.place.trial, t.config.seed, t.config.hparams) for t in three]
    assert kept == [
        (t.place.study, t.place.trial, t.config.seed, t.config.hparams)
        for t in five
        if t.place.trial < 3
    ]


def test_self_tuning_plan_has_no_hparams_and_a_longer_budget():
    trials = _plan("self")
    assert [(t.place.study, t.place.trial) for t in trials] == [(0, 0), (1, 0), (2, 0)]
    assert all(t.config.hparams is None and t.place.ruleset is Ruleset.SELF for t in trials)
    assert all(
        t.config.budget_sec == 1.5 * registry.get("digits_mlp").spec.budget_sec for t in trials
    )
    assert (
        _plan("self", budget_factor=3.0)[0].config.budget_sec
        == 3 * registry.get("digits_mlp").spec.budget_sec
    )


def test_held_out_draw_is_a_registered_variant_and_reproducible():
    bases = ["digits_mlp", "mnist1d_cnn"]
    drawn = benchmark.draw_variants(bases, seed=7)
    assert set(drawn) == set(bases)
    for base, (variant,) in drawn.items():
        assert registry.get(variant).spec.base == base
        assert variant in benchmark.held_out_candidates(base)
    assert benchmark.draw_variants(bases, seed=7) == drawn
    assert benchmark.draw_variants(["mnist1d_cnn"], seed=7) == {"mnist1d_cnn": drawn["mnist1d_cnn"]}
    assert benchmark.benchmark_workloads(bases, drawn) == [
        "digits_mlp",
        *drawn["digits_mlp"],
        "mnist1d_cnn",
        *drawn["mnist1d_cnn"],
    ]


def _write(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


FIXED_LIST = """
    import optax
    from optarena.submissions.api import Submission

    SUBMISSION = Submission(
        name="fixed",
        make_optimizer=lambda hparams, info: optax.sgd(hparams["learning_rate"]),
        search_space=[{"learning_rate": 0.1}, {"learning_rate": 0.2}],
    )
"""


def test_a_fixed_list_gives_its_first_points_in_order(tmp_path):
    path = _write(tmp_path, "fixed.py", FIXED_LIST)
    trials = _plan("external", reference=path, studies=2, trials=5)
    assert [(t.place.study, t.config.hparams["learning_rate"]) for t in trials] == [
        (0, 0.1),
        (0, 0.2),
        (1, 0.1),
        (1, 0.2),
    ]
    assert trials[0].submission.reference == str(Path(path).resolve())


def test_plans_that_cannot_be_made_are_plan_errors(tmp_path):
    invalid = _write(
        tmp_path,
        "invalid_space.py",
        FIXED_LIST.replace(
            'search_space=[{"learning_rate": 0.1}, {"learning_rate": 0.2}]',
            'search_space={"learning_rate": {"min": 1.0, "max": 0.1, "scaling": "log"}}',
        ),
    )
    with pytest.raises(PlanError, match="invalid search space of fixed: learning_rate"):
        _plan("external", reference=invalid)
    no_space = _write(
        tmp_path,
        "no_space.py",
        FIXED_LIST.replace(
            'search_space=[{"learning_rate": 0.1}, {"learning_rate": 0.2}]',
            'default_hparams={"learning_rate": 0.1}',
        ),
    )
    with pytest.raises(PlanError, match="no search space"):
        _plan("external", reference=no_space)
    with pytest.raises(PlanError, match="does not declare self_tuning=True"):
        _plan("self", reference=no_space)
    self_tuning = _write(
        tmp_path,
        "self_tuning.py",
        FIXED_LIST.replace(
            'search_space=[{"learning_rate": 0.1}, {"learning_rate": 0.2}]',
            'self_tuning=True, default_hparams={"learning_rate": 0.1}',
        ),
    )
    listed = _write(tmp_path, "listed.py", FIXED_LIST.replace("search_space=", "default_hparams="))
    with pytest.raises(loader.SubmissionError, match="plain JSON data"):
        _plan("self", reference=listed)
    assert len(_plan("self", reference=self_tuning)) == 3


# ---------------------------------------------------------------- the command


def _benchmark(capsys, db: str, data_dir: str, *options: str) -> tuple[int, str, str]:
    code = cli.main(["benchmark", "--db", db, "--data-dir", data_dir, *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


NO_SELF_TUNING = """
    import optax
    from optarena.submissions.api import Submission

    def make_optimizer(hparams, info):
        return optax.sgd(hparams["learning_rate"])

    SUBMISSION = Submission(
        name="needs_hparams",
        make_optimizer=make_optimizer,
        search_space={"learning_rate": {"min": 0.01, "max": 0.1, "scaling": "log"}},
    )
"""


def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, data_dir):
    db_file = tmp_path / "bad.db"
    db = f"sqlite:///{db_file}"
    invalid = _write(
        tmp_path,
        "invalid_space.py",
        FIXED_LIST.replace('[{"learning_rate": 0.1}, {"learning_rate": 0.2}]', '{"lr": [1, 2]}'),
    )
    no_self = _write(tmp_path, "no_self.py", NO_SELF_TUNING)
    cases = {
        ("--submission", "nadamw", "--ruleset", "both", "--suite", "quick"): "unknown ruleset",
        ("--submission", "nadamw", "--ruleset", "self", "--suite", "fast"): "unknown suite",
        ("--submission", "nope", "--ruleset", "self", "--suite", "quick"): "unknown submission",
        ("--submission", invalid, "--ruleset", "external", "--suite", "quick"): (
            "invalid search space"
        ),
        ("--submission", no_self, "--ruleset", "self", "--suite", "quick"): (
            "cannot run under the self-tuning ruleset"
        ),
        (
            "--submission",
            "nadamw",
            "--ruleset",
            "self",
            "--suite",
            "quick",
            "--workloads",
            "digits_mlp_tanh",
        ): "base workloads of suite",
    }
    for options, message in cases.items():
        code, out, err = _benchmark(capsys, db, data_dir, *options)
        assert code == 2, options
        assert out == "" and err.count("\n") == 1 and message in err, err
    assert not db_file.exists()


def test_external_and_self_rulesets_store_studies_x_trials(capsys, tmp_path, data_dir):
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    common = ("--submission", "nadamw", "--suite", "quick", "--workloads", "digits_mlp")
    fast = ("--max-steps", "50", "--executor", "in-process")
    code, out, err = _benchmark(
        capsys, db, data_dir, *common, *fast, "--ruleset", "external", "--studies", "2",
        "--trials", "2", "--seed", "1", "--held-out-variants", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "digits_mlp -> digits_mlp_tanh" in err and "[8/8]" in err
    code, out, err = _benchmark(
        capsys, db, data_dir, *common, *fast, "--ruleset", "self", "--studies", "2",
        "--held-out-variants", "0",
    )  # fmt: skip
    assert code == 0, err

    store = Store(db)
    external = store.benchmark_trials("external")
    assert len(external) == 8
    for workload in ("digits_mlp", "digits_mlp_tanh"):
        rows = external[external["workload"] == workload]
        assert sorted(zip(rows["study"], rows["trial"], strict=True)) == [
            (0, 0),
            (0, 1),
            (1, 0),
            (1, 1),
        ]
        assert set(rows["base_workload"]) == {"digits_mlp"}
    hparams = {
        (row.workload, row.study, row.trial): store.trial(int(row.trial_id))["hparams"]
        for row in external.itertuples()
    }
    studies = [{str(hparams["digits_mlp", s, t]) for t in range(2)} for s in range(2)]
    assert len(studies[0] | studies[1]) == 4, "studies sample distinct points"
    assert hparams["digits_mlp", 1, 0] == hparams["digits_mlp_tanh", 1, 0]
    planned = _plan(
        "external", workloads=("digits_mlp", "digits_mlp_tanh"), studies=2, trials=2, seed=1
    )
    assert {(t.workload, t.place.study, t.place.trial, t.config.seed) for t in planned} == set(
        zip(
            external["workload"],
            external["study"],
            external["trial"],
            external["seed"],
            strict=True,
        )
    )
    assert all(store.trial(int(i))["max_steps"] == 50 for i in external["trial_id"])

    self_tuned = store.benchmark_trials("self")
    assert sorted(self_tuned["study"]) == [0, 1] and set(self_tuned["workload"]) == {"digits_mlp"}
    assert (self_tuned["budget_sec"] == 1.5 * registry.get("digits_mlp").spec.budget_sec).all()
    assert all(store.trial(int(i))["hparams"] is None for i in self_tuned["trial_id"])
    assert self_tuned["seed"].nunique() == 2

    # Rerunning the same command runs nothing and stores nothing new.
    code, out, err = _benchmark(
        capsys, db, data_dir, *common, *fast, "--ruleset", "self", "--studies", "2",
        "--held-out-variants", "0",
    )  # fmt: skip
    assert code == 0 and "2 already stored, 0 to run" in err and "0 trials run" in out
    assert len(store.benchmark_trials()) == 10 and len(store.trials()) == 10


def test_a_submission_edited_after_planning_is_refused(tmp_path, data_dir):
    path = _write(tmp_path, "fixed.py", FIXED_LIST)
    (trial, *_) = _plan("external", reference=path, studies=1, trials=1)
    Path(path).write_text(Path(path).read_text() + "\n# edited\n")
    with pytest.raises(executors.SpecMismatch, match="changed since the benchmark was planned"):
        list(executors.InProcessExecutor(data_dir).run([trial]))


# ---------------------------------------------------------------- failures

BROKEN = """
    import os
    import signal
    import time

    import optax
    from optarena.submissions.api import Submission

    def _broken_update(mode):
        def update(updates, state, params=None):
            # Runs while the train step is traced, inside the trial's process.
            if mode == "error":
                raise ValueError("deliberately broken update")
            if mode == "memory":
                raise MemoryError("deliberately out of memory")
            if mode == "xla_memory":
                raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 1.00TiB")
            if mode == "killed":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "hang":
                time.sleep(3600)
            return updates, state

        return optax.GradientTransformation(lambda params: optax.EmptyState(), update)

    def make_optimizer(hparams, info):
        mode = hparams["mode"]
        if mode == "ok":
            return optax.adam(1e-3)
        if mode == "nan":
            return optax.chain(optax.sgd(1.0), optax.scale(float("nan")))
        return optax.chain(optax.adam(1e-3), _broken_update(mode))

    SUBMISSION = Submission(
        name="broken",
        make_optimizer=make_optimizer,
        search_space=[
            {"mode": mode} for mode in ("ok", "error", "nan", "killed", "hang")
        ],
    )
"""


def test_every_failure_status_is_stored_and_the_benchmark_goes_on(capsys, tmp_path, data_dir):
    path = _write(tmp_path, "broken.py", BROKEN)
    db = f"sqlite:///{tmp_path / 'failures.db'}"
    # A 2 s budget: room for the intact trial's 50 steps, and a hang is killed after
    # 2 s x 1 + 20 s of wall clock, room for the intact trial to start, compile and train on a
    # loaded machine.
    factor = str(2.0 / registry.get("digits_mlp").spec.budget_sec)
    code, _out, err = _benchmark(
        capsys, db, data_dir, "--submission", path, "--ruleset", "external", "--suite", "quick",
        "--workloads", "digits_mlp", "--studies", "1", "--trials", "5",
        "--max-steps", "50", "--budget-factor", factor, "--timeout-margin", "1",
        "--setup-allowance", "20",
    )  # fmt: skip
    assert code == 0, err
    store = Store(db)
    frame = store.benchmark_trials().sort_values("trial")
    assert frame["trial"].tolist() == list(range(5))
    statuses = frame["status"].tolist()
    # The first point is intact (the pre-flight traces it), the others fail each their way.
    assert statuses[0] in ("reached", "not_reached")
    assert statuses[1:] == ["error", "diverged", "oom", "timeout"]
    reasons = [store.trial(int(i))["reason"] for i in frame["trial_id"]]
    assert "ValueError: deliberately broken update" in reasons[1]
    assert "non-finite" in reasons[2]
    assert "SIGKILL" in reasons[3] and "killed" in reasons[4]
    for column in ("time_to_target_sec", "steps_to_target", "examples_to_target"):
        assert all(math.isinf(v) for v in frame[column][1:])
    ok = store.eval_points(int(frame["trial_id"].iloc[0]))
    cadence = registry.get("digits_mlp").spec.eval_every_steps
    assert [p.step for p in ok] == sorted({*range(cadence, 50, cadence), 50})
    assert all(math.isfinite(p.train_loss) for p in ok)
    assert "[5/5]" in err


def test_memory_errors_are_oom_and_other_exceptions_are_errors(tmp_path, data_dir):
    path = _write(
        tmp_path,
        "broken.py",
        BROKEN.replace(
            '("ok", "error", "nan", "killed", "hang")', '("memory", "xla_memory", "error")'
        ),
    )
    trials = _plan("external", reference=path, studies=1, trials=3, max_steps=1)
    outcomes = list(executors.InProcessExecutor(data_dir).run(trials))
    assert [o.result.status.value for o in outcomes] == ["oom", "oom", "error"]
    assert "MemoryError: deliberately out of memory" in outcomes[0].result.reason
    assert "RESOURCE_EXHAUSTED" in outcomes[1].result.reason
    assert all(math.isinf(o.result.time_to_target_sec) for o in outcomes)


LIBRARY_SCRIPT = """
from optarena.harness import campaign
from optarena.harness.benchmark import BenchmarkConfig
from optarena.harness.executors import make_executor
from optarena.leaderboard.store import Store

store = Store({db!r})
config = BenchmarkConfig.for_ruleset("self", studies=1, max_steps=20)
planned = campaign.prepare("nadamw", "quick", config, store, {data_dir!r}, workloads=["digits_mlp"])
done = campaign.run(planned, make_executor("child-process", {data_dir!r}), store)
print("statuses", *[finished.result.status.value for finished, _ in done])
"""


def test_the_library_runs_child_process_trials_from_a_script_without_a_main_guard(
    tmp_path, data_dir
):
    """Code read from stdin (or a notebook, or an unguarded script) benchmarks as the CLI does:
    the trials' processes never re-run the caller's script."""
    script = LIBRARY_SCRIPT.format(db=f"sqlite:///{tmp_path / 'lib.db'}", data_dir=data_dir)
    completed = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["statuses", "not_reached"], completed.stderr
    assert "Traceback" not in completed.stderr


REPORTS_ITS_PROCESS = """
    import json, os

    import optax
    from optarena.submissions.api import Submission

    def make_optimizer(hparams, info):
        with open(REPORT, "w") as report:
            json.dump({"cores": sorted(os.sched_getaffinity(0)),
                       "xla_flags": os.environ.get("XLA_FLAGS", "")}, report)
        return optax.sgd(0.1)

    SUBMISSION = Submission(name="reports", make_optimizer=make_optimizer, self_tuning=True)
"""
# The report's path is written into the file: a trial's process may come from a fork server
# started before this test, so it does not see variables the test sets.


def test_a_trial_process_runs_on_one_core_with_xla_single_threaded(tmp_path, data_dir):
    report = tmp_path / "process.json"
    path = _write(tmp_path, "reports.py", f"    REPORT = {str(report)!r}\n" + REPORTS_ITS_PROCESS)
    (trial,) = _plan("self", reference=path, studies=1, max_steps=1)
    core = min(os.sched_getaffinity(0))
    executor = executors.ChildProcessExecutor(data_dir, core=core)
    (done,) = list(executor.run([trial]))
    assert done.result.status.value == "not_reached", done.result.reason
    seen = json.loads(report.read_text())
    assert seen["cores"] == [core]
    assert set(isolation.TRIAL_XLA_FLAGS) <= set(seen["xla_flags"].split())
