"""The campaign progress's time left and worker count: pure arithmetic over what started and
finished, the same for every executor."""

from __future__ import annotations

import datetime as dt

import pytest

from optarena import records
from optarena.harness import provenance
from optarena.harness.cli.progress import Eta, time_left
from optarena.records import FinishedTrial, Trial, TrialResult, TrialStatus
from optarena.workloads import registry

SPEC = registry.get("digits_mlp").spec
SUBMISSION = records.SubmissionRef(
    name="sgd", reference="sgd", origin="builtin:sgd", source_sha256="0" * 64
)
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _trial(seed: int, budget_sec: float) -> Trial:
    config = records.TrialConfig(seed=seed, hparams={}, budget_sec=budget_sec)
    return Trial(submission=SUBMISSION, spec=SPEC, config=config)


def _finished(trial: Trial, wall_sec: float) -> FinishedTrial:
    return FinishedTrial(
        trial=trial,
        result=TrialResult.failed(TrialStatus.ERROR, "stand-in"),
        provenance=provenance.collect(),
        started_at=NOW,
        finished_at=NOW + dt.timedelta(seconds=wall_sec),
    )


def test_time_left_shares_the_budget_left_among_the_workers():
    assert time_left(40.0, 1.5, workers=1, trials_left=4) == 60.0
    assert time_left(40.0, 1.5, workers=2, trials_left=4) == 30.0
    assert time_left(40.0, 1.5, workers=4, trials_left=4) == 15.0


def test_time_left_counts_no_more_workers_than_trials_left():
    # Eight slots, one trial left: it takes its own time, not an eighth of it.
    assert time_left(10.0, 2.0, workers=8, trials_left=1) == 20.0
    assert time_left(0.0, 2.0, workers=8, trials_left=0) == 0.0


@pytest.mark.parametrize(
    "arguments",
    [(-1.0, 1.0, 1, 1), (1.0, -1.0, 1, 1), (1.0, 1.0, 0, 1), (1.0, 1.0, 1, -1)],
)
def test_time_left_refuses_impossible_inputs(arguments):
    budget_left, ratio, workers, trials_left = arguments
    with pytest.raises(ValueError, match="workers="):
        time_left(budget_left, ratio, workers=workers, trials_left=trials_left)


def test_one_trial_at_a_time_is_one_worker_at_the_observed_rate():
    trials = [_trial(seed, 10.0) for seed in range(3)]
    eta = Eta(trials)
    assert (eta.running, eta.workers, eta.seconds()) == (0, 1, 30.0)  # whole budgets
    for trial in trials[:2]:
        eta.started(trial)
        assert (eta.running, eta.workers) == (1, 1)
        eta.finished(_finished(trial, wall_sec=5.0))  # half a wall second per budget second
    assert (eta.running, eta.workers, eta.seconds()) == (0, 1, 5.0)


def test_trials_side_by_side_count_as_workers_and_divide_the_time_left():
    trials = [_trial(seed, 10.0) for seed in range(6)]
    eta = Eta(trials)
    eta.started(trials[0])
    eta.started(trials[1])
    assert (eta.running, eta.workers) == (2, 2)
    eta.finished(_finished(trials[0], wall_sec=20.0))  # two wall seconds per budget second
    assert (eta.running, eta.workers) == (1, 2)
    # Five trials of 10 budget seconds left at 2 wall s each, two at a time.
    assert eta.seconds() == 50.0
    eta.started(trials[2])
    eta.started(trials[3])
    assert (eta.running, eta.workers) == (3, 3)
    assert eta.seconds() == pytest.approx(100.0 / 3)


def test_the_last_trial_does_not_share_its_time_with_idle_workers():
    trials = [_trial(seed, 10.0) for seed in range(3)]
    eta = Eta(trials)
    for trial in trials:
        eta.started(trial)
    eta.finished(_finished(trials[0], wall_sec=10.0))
    eta.finished(_finished(trials[1], wall_sec=10.0))
    assert (eta.running, eta.workers) == (1, 3)
    assert eta.seconds() == 10.0


def test_budgets_of_different_sizes_are_weighed_by_budget():
    short, long = _trial(0, 5.0), _trial(1, 20.0)
    eta = Eta([short, long])
    eta.started(short)
    eta.finished(_finished(short, wall_sec=15.0))  # three wall seconds per budget second
    assert eta.seconds() == 60.0
