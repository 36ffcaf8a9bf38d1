"""A result is checked against its own evaluation points before it is stored."""

from __future__ import annotations

import dataclasses
import math

import optax
import pytest

from optarena.harness import evidence, runner
from optarena.records import SubmissionRef, Trial, TrialConfig, TrialResult, TrialStatus
from optarena.submissions.api import Submission
from optarena.workloads import registry

SGD = Submission(name="sgd_test", make_optimizer=lambda hparams, info: optax.sgd(0.1))


def _trial_and_result(data_dir, fake_clock, **spec_changes) -> tuple[Trial, TrialResult]:
    workload = registry.get("digits_mlp")
    spec = dataclasses.replace(workload.spec, eval_every_steps=10, **spec_changes)
    workload = dataclasses.replace(workload, spec=spec)
    config = TrialConfig(seed=0, hparams=None, budget_sec=1e6, max_steps=400)
    result = runner.run_trial(workload, SGD, config, data_dir=data_dir, clock=fake_clock)
    ref = SubmissionRef(name="sgd_test", reference="sgd_test", origin="test", source_sha256="0")
    return Trial(submission=ref, spec=spec, config=config), result


@pytest.fixture(scope="module")
def reached(data_dir):
    from conftest import FakeClock

    trial, result = _trial_and_result(data_dir, FakeClock(), validation_target=0.25)
    assert result.status is TrialStatus.REACHED and len(result.eval_points) > 1, result.reason
    return trial, result


def test_an_honest_result_agrees_with_its_evidence(reached, data_dir, fake_clock):
    assert evidence.mismatch(*reached) is None
    trial, not_reached = _trial_and_result(data_dir, fake_clock, validation_target=-1.0)
    assert not_reached.status is TrialStatus.NOT_REACHED
    assert evidence.mismatch(trial, not_reached) is None
    assert evidence.mismatch(trial, TrialResult.failed(TrialStatus.ERROR, "boom")) is None


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: {"time_to_target_sec": r.time_to_target_sec / 10}, "time to target"),
        (lambda r: {"steps_to_target": 1}, "time to target"),
        (lambda r: {"timed_sec": r.timed_sec / 10}, "steps x"),
        (lambda r: {"status": TrialStatus.NOT_REACHED}, "has a time to target"),
        (lambda r: {"eval_points": r.eval_points[:-1]}, "no evaluation within the budget"),
        (lambda r: {"eval_points": r.eval_points[::-1]}, "do not increase"),
        (lambda r: {"num_steps": 5}, "after the last step"),
        (lambda r: {"batch_size": r.batch_size * 2}, "examples at batch size"),
        (
            lambda r: {
                "eval_points": tuple(
                    dataclasses.replace(p, wall_sec=p.timed_sec / 3) for p in r.eval_points
                )
            },
            "of wall clock",
        ),
    ],
    ids=[
        "time", "steps", "timed", "status", "dropped_point", "order", "num_steps", "batch",
        "wall",
    ],
)  # fmt: skip
def test_a_result_that_contradicts_its_evidence_is_caught(reached, change, says):
    trial, result = reached
    changed = dataclasses.replace(result, **change(result))
    found = evidence.mismatch(trial, changed)
    assert found is not None and says in found, found


def test_a_result_that_stops_short_of_budget_and_cap_is_caught(reached):
    trial, result = reached
    stopped = dataclasses.replace(
        result,
        status=TrialStatus.NOT_REACHED,
        time_to_target_sec=math.inf,
        steps_to_target=None,
        examples_to_target=None,
        eval_points=result.eval_points[:1],
        num_steps=result.eval_points[0].step,
        timed_sec=result.eval_points[0].step * result.step_sec,
    )
    found = evidence.mismatch(trial, stopped)
    assert found is not None and "neither the budget nor a step cap" in found
