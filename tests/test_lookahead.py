"""Lookahead: the next trial is traced and compiled on another core while a trial is measured.

The measuring process then loads the compiled programs instead of compiling them. What a trial
computes must not change, a failure of the next trial's code must cost that trial alone, and
whatever that code does while the trial before it is measured must be caught as if it had
happened during its own trial. Inside a test worker pinned to one core there is no spare core,
so these tests give the executor the worker's own core as its lookahead core.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from optarena.harness import benchmark, cli, executors, isolation, runner, tracing
from optarena.harness.benchmark import BenchmarkConfig
from optarena.leaderboard.store import Store
from optarena.records import TrialConfig
from optarena.submissions import loader
from optarena.workloads import registry


def _curve(result) -> list[tuple]:
    return [(p.step, p.train_loss, p.validation, p.test) for p in result.eval_points]


def test_programs_compiled_ahead_are_loaded_and_train_bit_for_bit_the_same(data_dir):
    # Schedule-Free AdamW has all three programs: init, update and eval_params.
    workload = registry.get("digits_mlp")
    submission = loader.load("schedule_free_adamw").submission
    config = TrialConfig(seed=5, hparams=None, budget_sec=1e6, max_steps=60)
    program = tracing.trace(workload, submission, None, config.budget_sec, 1)
    ahead = runner.precompile(
        workload, program, config, data_dir=data_dir, cache=runner.WorkloadCache()
    )
    assert len(ahead) == 3 and len({a.key for a in ahead}) == 3
    loading = runner.WorkloadCache()
    loading.add_ahead(ahead)
    loaded = runner.run_program(workload, program, config, data_dir=data_dir, cache=loading)
    assert loading.loaded_ahead == 3, "every program compiled ahead is loaded, none compiled"
    compiled = runner.run_program(
        workload, program, config, data_dir=data_dir, cache=runner.WorkloadCache()
    )
    assert loaded.num_steps == compiled.num_steps == 60
    assert _curve(loaded) == _curve(compiled)
    # The compile seconds recorded are those spent ahead, not the load's.
    assert loaded.compile_sec >= min(a.compile_sec for a in ahead)


def test_programs_compiled_for_other_options_or_shapes_are_not_loaded(data_dir):
    workload = registry.get("digits_mlp")
    submission = loader.load("nadamw").submission
    config = TrialConfig(seed=0, hparams=None, budget_sec=1e6, max_steps=20)
    program = tracing.trace(workload, submission, None, config.budget_sec, 1)
    fast = runner.WorkloadCache(runner.FAST_COMPILE)
    ahead = runner.precompile(workload, program, config, data_dir=data_dir, cache=fast)
    default = runner.WorkloadCache()
    default.add_ahead(ahead)
    runner.run_program(workload, program, config, data_dir=data_dir, cache=default)
    assert default.loaded_ahead == 0, "a program compiled with other options is compiled again"


LATE_FAILURE = """
    import pathlib
    import optax
    from optarena.submissions.api import Submission

    CALLS = pathlib.Path({calls!r})

    def make_optimizer(hparams, info):
        CALLS.write_text(CALLS.read_text() + "x" if CALLS.exists() else "x")
        if len(CALLS.read_text()) == {fail_at}:
            {attack}
        return optax.adam(3e-3)

    SUBMISSION = Submission(name="late", make_optimizer=make_optimizer, self_tuning=True)
"""


def _late(tmp_path: Path, attack: str, fail_at: int) -> str:
    path = tmp_path / "late.py"
    body = LATE_FAILURE.format(calls=str(tmp_path / "calls"), fail_at=fail_at, attack=attack)
    path.write_text(textwrap.dedent(body))
    return str(path)


def _trials(reference: str, studies: int) -> list:
    config = BenchmarkConfig.for_ruleset(
        "self", studies=studies, max_steps=40, budget_factor=100, seed=1
    )
    return benchmark.plan(loader.load(reference).info, reference, ["digits_mlp"], config)


def test_lookahead_runs_every_trial_as_it_runs_without_it(tmp_path, data_dir):
    core = min(os.sched_getaffinity(0))
    trials = _trials("nadamw", 3)
    ahead = executors.ChildProcessExecutor(data_dir, core=core, lookahead_core=core)
    serial = executors.ChildProcessExecutor(data_dir, core=core, lookahead=False)
    with_lookahead = list(ahead.run(trials))
    without = list(serial.run(trials))
    assert [d.trial for d in with_lookahead] == trials
    assert [d.result.status for d in with_lookahead] == [d.result.status for d in without]
    assert [_curve(d.result) for d in with_lookahead] == [_curve(d.result) for d in without]


def test_a_next_trial_whose_factory_fails_costs_that_trial_alone(tmp_path, data_dir):
    core = min(os.sched_getaffinity(0))
    # The second call is the second trial's, traced ahead while the first one is measured.
    path = _late(tmp_path, "raise RuntimeError('broken on the second point')", fail_at=2)
    trials = _trials(path, 3)
    executor = executors.ChildProcessExecutor(data_dir, core=core, lookahead_core=core)
    done = list(executor.run(trials))
    assert [d.result.status.value for d in done] == ["not_reached", "error", "not_reached"]
    assert "broken on the second point" in done[1].result.reason


def test_a_store_edit_by_the_next_trial_s_code_is_caught(capsys, monkeypatch, tmp_path, data_dir):
    """The third call of the factory (after the pre-flight and the first trial) is the second
    trial's, traced ahead while the first trial is measured: its edit must not slip between
    that trial's check and the next one's seal."""
    monkeypatch.setattr(isolation, "spare_core", lambda core: core)
    db = tmp_path / "store.db"
    vandal = (
        f"connection = __import__('sqlite3').connect({str(db)!r}); "
        "connection.execute(\"UPDATE trials SET status = 'diverged'\"); "
        "connection.commit()"
    )
    options = [
        "benchmark", "--db", f"sqlite:///{db}", "--data-dir", data_dir, "--ruleset", "self",
        "--suite", "quick", "--workloads", "digits_mlp", "--studies", "3",
        "--max-steps", "40", "--budget-factor", "100",
    ]  # fmt: skip
    assert cli.main([*options, "--submission", "nadamw"]) == 0
    capsys.readouterr()
    code = cli.main([*options, "--submission", _late(tmp_path, vandal, fail_at=3)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "edited or deleted" in err.strip().splitlines()[-1], err
    frame = Store(f"sqlite:///{db}").benchmark_trials()
    caught = frame[frame["submission"] == "late"]
    assert caught["status"].tolist() == ["error"], "the trial it ran beside is the one caught"


def test_there_is_no_lookahead_core_without_a_spare_core():
    core = min(os.sched_getaffinity(0))
    spare = isolation.spare_core(core)
    assert spare is None or (spare != core and spare in os.sched_getaffinity(0))
    assert isolation.spare_core(None) is None
    if len(os.sched_getaffinity(0)) == 1:
        assert spare is None
        assert executors.ChildProcessExecutor("unused", core=core).lookahead_core is None
