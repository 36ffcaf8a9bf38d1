"""The trial runner's timing and stopping rules, checked with an injected fake clock."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import io_callback

from optarena.harness import optimizer_program, runner
from optarena.records import TrialStatus
from optarena.submissions.api import Submission
from optarena.workloads import registry
from optarena.workloads.spec import MetricMode

WORKLOAD_NAME = "digits_mlp"
CADENCE = 10
UNREACHABLE = -1.0  # an error rate below 0 is never reached


def sgd_submission(learning_rate: float = 0.1, **hooks) -> Submission:
    return Submission(
        name="sgd_test",
        make_optimizer=lambda hparams, info: optax.sgd(learning_rate),
        **hooks,
    )


def workload(**spec_changes):
    """digits_mlp with a short evaluation cadence and the given spec changes."""
    base = registry.get(WORKLOAD_NAME)
    assert base.spec.mode is MetricMode.MIN and base.spec.metric == "error_rate"
    changes = {"eval_every_steps": CADENCE, "validation_target": UNREACHABLE, **spec_changes}
    return dataclasses.replace(base, spec=dataclasses.replace(base.spec, **changes))


def run(work, submission, clock, *, seed=0, budget_sec=1e6, max_steps=2 * CADENCE, **kwargs):
    config = runner.TrialConfig(seed=seed, hparams=None, budget_sec=budget_sec, max_steps=max_steps)
    return runner.run_trial(work, submission, config, clock=clock, **kwargs)


def test_trial_config_rejects_bad_limits():
    with pytest.raises(ValueError, match="budget_sec"):
        runner.TrialConfig(seed=0, hparams=None, budget_sec=0.0)
    with pytest.raises(ValueError, match="max_steps"):
        runner.TrialConfig(seed=0, hparams=None, budget_sec=1.0, max_steps=0)


def test_compile_time_is_recorded_but_not_scored(data_dir, fake_clock):
    result = run(workload(), sgd_submission(), fake_clock, data_dir=data_dir)
    assert result.compile_sec == fake_clock.tick
    # A segment of CADENCE steps reads the clock CADENCE + 2 times (start, each step, end).
    step_sec = (CADENCE + 1) * fake_clock.tick / CADENCE
    assert result.step_sec == step_sec
    assert result.timed_sec == result.num_steps * step_sec == result.eval_points[-1].timed_sec
    assert result.eval_points[0].timed_sec == CADENCE * step_sec
    assert result.wall_sec == result.eval_points[-1].wall_sec == 2 * (CADENCE + 1) * fake_clock.tick


def test_a_compile_over_its_limit_is_a_failed_trial(data_dir, make_clock):
    result = run(
        workload(), sgd_submission(), make_clock(tick=1.0), data_dir=data_dir, compile_limit_sec=0.5
    )
    assert result.status is TrialStatus.TIMEOUT and "compiling the train step took 1.0 s" in (
        result.reason
    )
    assert result.compile_sec == 1.0 and result.num_steps == 0
    assert result.time_to_target_sec == math.inf


def test_load_on_some_segments_moves_the_wall_clock_not_the_scored_time(data_dir, make_clock):
    """A busy machine during a minority of segments: the median segment is untouched."""
    quiet_clock, loaded_clock = make_clock(), make_clock()
    quiet = run(workload(), sgd_submission(), quiet_clock, data_dir=data_dir, max_steps=5 * CADENCE)

    def load_during_the_second_and_fourth_segments(point):
        loaded_clock.tick = quiet_clock.tick * (25.0 if point.step in (CADENCE, 3 * CADENCE) else 1)

    loaded = run(
        workload(),
        sgd_submission(),
        loaded_clock,
        data_dir=data_dir,
        max_steps=5 * CADENCE,
        on_eval=load_during_the_second_and_fourth_segments,
    )
    assert loaded.wall_sec > 10 * quiet.wall_sec
    assert loaded.timed_sec == quiet.timed_sec and loaded.step_sec == quiet.step_sec
    # Where the loaded segments are a minority (1 of 3, 2 of 5), the median does not move.
    for index in (2, 4):
        assert loaded.eval_points[index].timed_sec == quiet.eval_points[index].timed_sec


def test_the_first_segment_counts_only_while_it_is_the_only_one(data_dir, make_clock):
    """The compiled step's first run (allocations, cold caches) is slow; once a second segment
    exists it no longer sets the step time."""
    quiet_clock, warming_clock = make_clock(), make_clock()
    quiet = run(workload(), sgd_submission(), quiet_clock, data_dir=data_dir)
    warming_clock.tick = quiet_clock.tick * 5

    def warm_after_the_first_segment(point):
        warming_clock.tick = quiet_clock.tick

    warming = run(
        workload(), sgd_submission(), warming_clock, data_dir=data_dir,
        on_eval=warm_after_the_first_segment,
    )  # fmt: skip
    assert warming.eval_points[0].timed_sec > 4 * quiet.eval_points[0].timed_sec
    assert warming.step_sec == quiet.step_sec and warming.timed_sec == quiet.timed_sec
    assert warming.wall_sec > quiet.wall_sec


def test_max_steps_stop(data_dir, fake_clock):
    seen = []
    result = run(workload(), sgd_submission(), fake_clock, data_dir=data_dir, on_eval=seen.append)
    assert result.status is TrialStatus.NOT_REACHED
    assert "max_steps" in result.reason
    assert result.num_steps == 2 * CADENCE
    assert [p.step for p in result.eval_points] == [CADENCE, 2 * CADENCE]
    assert tuple(seen) == result.eval_points
    assert [p.examples for p in result.eval_points] == [
        p.step * result.batch_size for p in result.eval_points
    ]
    times = [p.timed_sec for p in result.eval_points]
    assert times == sorted(times) and times[-1] == result.timed_sec
    assert result.time_to_target_sec == math.inf
    assert result.steps_to_target is None and result.examples_to_target is None
    assert result.num_devices == 1
    assert result.batch_size == registry.get(WORKLOAD_NAME).spec.batch_size
    assert all(math.isfinite(p.train_loss) for p in result.eval_points)


def test_evaluation_time_is_excluded(data_dir, make_clock):
    plain_clock, slow_eval_clock = make_clock(), make_clock()
    plain = run(workload(), sgd_submission(), plain_clock, data_dir=data_dir, budget_sec=100.0)

    def slow_eval(point):
        slow_eval_clock.advance(1000.0)

    slow = run(
        workload(),
        sgd_submission(),
        slow_eval_clock,
        data_dir=data_dir,
        budget_sec=100.0,
        on_eval=slow_eval,
    )
    assert slow_eval_clock.now > 1000.0 * len(slow.eval_points)
    assert slow.status is TrialStatus.NOT_REACHED and "max_steps" in slow.reason, slow.reason
    assert slow.num_steps == plain.num_steps == 2 * CADENCE
    assert slow.timed_sec == plain.timed_sec
    assert slow.timed_sec < 1000.0
    assert [p.timed_sec for p in slow.eval_points] == [p.timed_sec for p in plain.eval_points]


def test_eval_params_time_is_counted(data_dir, make_clock, monkeypatch):
    # An exported program cannot call back into Python, so the hook that moves the fake clock
    # is put in where the measuring process loads the programs.
    clock = make_clock()
    hook_sec = 100.0

    def eval_params(opt_state, params):
        def spend():
            clock.advance(hook_sec)
            return jnp.zeros((), jnp.float32)

        zero = io_callback(spend, jax.ShapeDtypeStruct((), jnp.float32))
        return jax.tree.map(lambda p: p + zero, params)

    load = optimizer_program.load
    monkeypatch.setattr(
        optimizer_program, "load", lambda program, params: (load(program, params)[0], eval_params)
    )
    result = run(workload(), sgd_submission(), clock, data_dir=data_dir)
    evals = len(result.eval_points)
    assert evals == 2
    assert hook_sec * evals <= result.timed_sec < hook_sec * (evals + 1)
    assert result.eval_points[0].timed_sec >= hook_sec


@pytest.mark.parametrize("hook", ["update", "eval_params"])
def test_a_host_callback_cannot_be_exported(data_dir, fake_clock, hook):
    def call_home(x):
        return x + io_callback(lambda: np.float32(0), jax.ShapeDtypeStruct((), jnp.float32))

    def update(updates, state, params=None):
        return jax.tree.map(call_home, updates), state

    def eval_params(opt_state, params):
        return jax.tree.map(call_home, params)

    submission = (
        Submission(
            name="calls_home",
            make_optimizer=lambda hparams, info: optax.GradientTransformation(
                lambda params: optax.EmptyState(), update
            ),
        )
        if hook == "update"
        else sgd_submission(eval_params=eval_params)
    )
    with pytest.raises(runner.SubmissionFailure, match="cannot export"):
        run(workload(), submission, fake_clock, data_dir=data_dir)


def test_target_stop(data_dir, fake_clock):
    # SGD reaches a 25% error rate on digits within a few hundred steps, usually after a few
    # evaluations (an untrained model is near 90%).
    target = 0.25
    seen = []
    result = run(
        workload(validation_target=target),
        sgd_submission(),
        fake_clock,
        data_dir=data_dir,
        max_steps=30 * CADENCE,
        on_eval=seen.append,
    )
    assert result.status is TrialStatus.REACHED, result.reason
    assert result.reached
    last = result.eval_points[-1]
    assert last.validation["error_rate"] <= target
    assert all(p.validation["error_rate"] > target for p in result.eval_points[:-1])
    assert math.isfinite(result.time_to_target_sec)
    assert result.time_to_target_sec == last.timed_sec == result.timed_sec
    assert result.steps_to_target == last.step == result.num_steps
    assert result.steps_to_target % CADENCE == 0
    assert result.examples_to_target == result.steps_to_target * result.batch_size
    assert tuple(seen) == result.eval_points


def test_budget_stop(data_dir, make_clock):
    clock = make_clock(tick=1.0)  # 1.1 scored seconds per step: 11 per segment
    budget = 25.0
    result = run(
        workload(), sgd_submission(), clock, data_dir=data_dir, budget_sec=budget, max_steps=1000
    )
    assert result.status is TrialStatus.NOT_REACHED
    assert "budget" in result.reason
    assert result.time_to_target_sec == math.inf
    assert result.steps_to_target is None and result.examples_to_target is None
    assert [p.timed_sec for p in result.eval_points] == pytest.approx([11.0, 22.0, 33.0])
    assert result.timed_sec >= budget and result.num_steps == 3 * CADENCE


def test_a_step_too_slow_for_its_budget_stops_inside_a_segment(data_dir, make_clock):
    """The wall clock cuts a segment at WALL_ALLOWANCE times the budget left."""
    clock = make_clock(tick=1.0)
    result = run(
        workload(), sgd_submission(), clock, data_dir=data_dir, budget_sec=2.0, max_steps=1000
    )
    assert result.status is TrialStatus.NOT_REACHED and "budget" in result.reason
    assert 0 < result.num_steps < CADENCE
    assert result.num_steps == int(runner.WALL_ALLOWANCE * 2.0)
    assert len(result.eval_points) == 1


def test_target_met_after_the_budget_does_not_count(data_dir, make_clock):
    clock = make_clock(tick=1.0)
    # Any error rate meets a target of 1.0, but the only evaluation comes after the budget.
    result = run(
        workload(validation_target=1.0),
        sgd_submission(),
        clock,
        data_dir=data_dir,
        budget_sec=5.0,
        max_steps=1000,
    )
    assert result.status is TrialStatus.NOT_REACHED, result.reason
    assert result.time_to_target_sec == math.inf


@pytest.mark.parametrize(
    "make_optimizer",
    [
        pytest.param(lambda hparams, info: optax.sgd(1e30), id="huge_learning_rate"),
        pytest.param(lambda hparams, info: optax.scale(math.nan), id="nan_updates"),
    ],
)
def test_divergence(data_dir, fake_clock, make_optimizer):
    broken = Submission(name="broken", make_optimizer=make_optimizer)
    result = run(workload(), broken, fake_clock, data_dir=data_dir, max_steps=5 * CADENCE)
    assert result.status is TrialStatus.DIVERGED, result.reason
    assert not result.reached
    assert result.time_to_target_sec == math.inf
    assert result.steps_to_target is None
    assert result.num_steps <= 5 * CADENCE


def test_factory_that_raises_is_a_submission_failure(data_dir, fake_clock):
    def make_optimizer(hparams, info):
        raise RuntimeError("boom")

    with pytest.raises(runner.SubmissionFailure, match="boom"):
        run(
            workload(),
            Submission(name="raises", make_optimizer=make_optimizer),
            fake_clock,
            data_dir=data_dir,
        )


@pytest.mark.parametrize(
    "returned",
    [
        pytest.param(None, id="none"),
        pytest.param((lambda params: None, lambda updates, state, params: None), id="tuple"),
        pytest.param(optax.sgd, id="uncalled_factory"),
    ],
)
def test_factory_that_returns_no_transformation_is_a_submission_failure(
    data_dir, fake_clock, returned
):
    submission = Submission(name="wrong", make_optimizer=lambda hparams, info: returned)
    with pytest.raises(runner.SubmissionFailure, match="GradientTransformation"):
        run(workload(), submission, fake_clock, data_dir=data_dir)


@pytest.mark.parametrize("batch_size", [lambda info: 0, lambda info: 1 / 0])
def test_bad_batch_size_hook_is_a_submission_failure(data_dir, fake_clock, batch_size):
    submission = sgd_submission(batch_size=batch_size)
    with pytest.raises(runner.SubmissionFailure):
        run(workload(), submission, fake_clock, data_dir=data_dir)


def test_batch_size_hook_sets_the_batch(data_dir, fake_clock):
    submission = sgd_submission(batch_size=lambda info: 32)
    result = run(workload(), submission, fake_clock, data_dir=data_dir, max_steps=CADENCE)
    assert result.batch_size == 32
    assert result.eval_points[-1].examples == CADENCE * 32


def test_update_that_fails_to_trace_is_a_submission_failure(data_dir, fake_clock):
    def update(updates, state, params=None):
        raise ValueError("cannot trace this update")

    broken = Submission(
        name="broken_update",
        make_optimizer=lambda hparams, info: optax.GradientTransformation(
            lambda params: optax.EmptyState(), update
        ),
    )
    with pytest.raises(runner.SubmissionFailure, match="cannot trace this update"):
        run(workload(), broken, fake_clock, data_dir=data_dir)


def test_eval_params_that_raises_is_a_submission_failure(data_dir, fake_clock):
    def eval_params(opt_state, params):
        raise RuntimeError("no averaged point")

    with pytest.raises(runner.SubmissionFailure, match="no averaged point"):
        run(workload(), sgd_submission(eval_params=eval_params), fake_clock, data_dir=data_dir)


def test_a_cache_compiles_a_program_once_and_changes_no_result(data_dir, fake_clock):
    work, cache = workload(), runner.WorkloadCache()

    def curve(result):
        return [(p.step, p.train_loss, p.validation, p.test) for p in result.eval_points]

    first = run(work, sgd_submission(), fake_clock, seed=0, data_dir=data_dir, cache=cache)
    kept = cache.compiled_programs
    assert kept >= 2  # the optimizer's init and the train step
    again = run(work, sgd_submission(), fake_clock, seed=1, data_dir=data_dir, cache=cache)
    assert cache.compiled_programs == kept, "another seed runs the same programs"
    alone = run(work, sgd_submission(), fake_clock, seed=1, data_dir=data_dir)
    assert curve(again) == curve(alone) != curve(first)
    run(work, sgd_submission(learning_rate=0.05), fake_clock, data_dir=data_dir, cache=cache)
    assert cache.compiled_programs > kept, "another learning rate is another program"


@pytest.mark.parametrize("name", ["mnist1d_cnn", "digits_vit", "click_dlrm"])
def test_a_trial_s_fast_compiled_init_gives_the_default_build_s_parameters(name):
    """A trial's init is compiled with `runner.INIT_COMPILER_OPTIONS`: the parameters (a
    convolution, attention and embedding family here) are bit for bit XLA's default build's,
    so calibration records made either way agree."""
    init = registry.get(name).init
    key = jax.random.PRNGKey(3)
    fast = jax.jit(init, compiler_options=runner.INIT_COMPILER_OPTIONS)(key)
    default = jax.jit(init)(key)
    assert jax.tree.structure(fast) == jax.tree.structure(default)
    jax.tree.map(np.testing.assert_array_equal, fast, default)
