"""The SQL store: round trips, provenance, versioned rows, atomic writes, clear errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy

from optarena.leaderboard.store import Store, StoreError
from optarena.records import (
    BenchmarkPlace,
    EvalPoint,
    FinishedTrial,
    Provenance,
    SubmissionRef,
    Trial,
    TrialConfig,
    TrialResult,
    TrialStatus,
)
from optarena.workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="toy",
    family="linear",
    dataset="toy_data",
    model="linear",
    loss="mse",
    metric="error_rate",
    mode=MetricMode.MIN,
    validation_target=0.1,
    test_target=0.12,
    budget_sec=10.0,
    step_hint=100,
    eval_every_steps=10,
    batch_size=8,
    eval_batch_size=16,
    num_train_examples=64,
)
PROVENANCE = Provenance(
    optarena_version="0.1.0",
    git_commit="abc123",
    jax_version="0.10.2",
    flax_version="0.12.8",
    optax_version="0.2.8",
    python_version="3.11.7",
    platform="Linux",
)
SUBMISSION = SubmissionRef(
    name="sgd", reference="sgd", origin="builtin:sgd", source_sha256="0" * 64
)
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _result(status=TrialStatus.REACHED, time_to_target=1.5, points=None) -> TrialResult:
    points = points or (
        EvalPoint(
            step=10,
            examples=80,
            timed_sec=0.75,
            train_loss=0.9,
            validation={"error_rate": 0.2, "loss": 0.8},
            test={"error_rate": 0.25},
        ),
        EvalPoint(
            step=20,
            examples=160,
            timed_sec=1.5,
            train_loss=0.4,
            validation={"error_rate": 0.1, "loss": 0.3},
            test={"error_rate": 0.11},
        ),
    )
    reached = math.isfinite(time_to_target)
    return TrialResult(
        status=status,
        reason="why",
        time_to_target_sec=time_to_target,
        steps_to_target=20 if reached else None,
        examples_to_target=160 if reached else None,
        timed_sec=1.5,
        compile_sec=0.25,
        num_steps=20,
        batch_size=8,
        num_devices=1,
        device_kind="cpu",
        flops_per_step=1234.0,
        eval_points=tuple(points),
    )


def _finished(
    result: TrialResult,
    *,
    spec=SPEC,
    submission=SUBMISSION,
    seed=0,
    hparams=None,
    budget_sec=None,
    max_steps=None,
    place: BenchmarkPlace | None = None,
) -> FinishedTrial:
    """A finished trial of ``submission`` on ``spec``, as an executor yields it."""
    trial = Trial(
        submission=submission,
        spec=spec,
        config=TrialConfig(
            seed=seed,
            hparams={"learning_rate": 0.1} if hparams is None else hparams,
            budget_sec=spec.budget_sec if budget_sec is None else budget_sec,
            max_steps=max_steps,
        ),
        place=place,
    )
    return FinishedTrial(
        trial=trial,
        result=result,
        provenance=PROVENANCE,
        started_at=NOW,
        finished_at=NOW + dt.timedelta(seconds=3),
    )


def _add(store: Store, result: TrialResult, *, spec=SPEC, submission=SUBMISSION, seed=0) -> int:
    return store.add(_finished(result, spec=spec, submission=submission, seed=seed))


@pytest.fixture
def store(store_url, tmp_path) -> Store:
    """A new store, on SQLite (its file in a folder not created yet) and on PostgreSQL."""
    if store_url.startswith("sqlite:"):
        store_url = f"sqlite:///{tmp_path / 'nested' / 'trials.db'}"
    return Store(store_url)


def test_trial_round_trip_keeps_results_provenance_and_eval_points(store):
    result = _result()
    trial_id = _add(store, result)

    frame = store.trials()
    assert frame["id"].tolist() == [trial_id]
    row = frame.iloc[0]
    assert (row.submission, row.workload, row.status) == ("sgd", "toy", "reached")
    assert row.time_to_target_sec == 1.5 and row.steps_to_target == 20

    stored = store.trial(trial_id)
    assert stored["hparams"] == {"learning_rate": 0.1}
    assert stored["spec"] == SPEC.to_dict()
    assert stored["source_sha256"] == SUBMISSION.source_sha256
    for field, value in dataclasses.asdict(PROVENANCE).items():
        assert stored[field] == value
    assert stored["flops_per_step"] == 1234.0
    assert store.eval_points(trial_id) == list(result.eval_points)


def test_missed_target_and_non_finite_values_read_back_as_inf_and_nan(store):
    points = (
        EvalPoint(
            step=10,
            examples=80,
            timed_sec=0.5,
            train_loss=math.nan,
            validation={"error_rate": math.nan, "loss": math.inf},
            test={"error_rate": 0.9},
        ),
    )
    trial_id = _add(store, _result(TrialStatus.DIVERGED, math.inf, points))
    assert store.trials().iloc[0].time_to_target_sec == math.inf
    assert store.trial(trial_id)["time_to_target_sec"] == math.inf
    (point,) = store.eval_points(trial_id)
    assert math.isnan(point.train_loss)
    assert math.isnan(point.validation["error_rate"]) and math.isnan(point.validation["loss"])
    assert point.test == {"error_rate": 0.9}


def test_same_sources_share_rows_and_edits_get_new_ones(store):
    _add(store, _result())
    _add(store, _result(), seed=1)
    _add(store, _result(), spec=dataclasses.replace(SPEC, validation_target=0.05))
    _add(store, _result(), submission=dataclasses.replace(SUBMISSION, source_sha256="1" * 64))
    engine = sqlalchemy.create_engine(store.url)
    with engine.connect() as connection:
        count = lambda table: connection.execute(  # noqa: E731
            sqlalchemy.text(f"select count(*) from {table}")
        ).scalar()
        assert (count("trials"), count("workloads"), count("submissions")) == (4, 2, 2)
    engine.dispose()
    assert len(store.trials(submission="sgd", workload="toy")) == 4
    assert len(store.trials(workload="other")) == 0


def test_failed_write_stores_nothing_and_keeps_earlier_trials(store):
    first = _add(store, _result())
    broken = dataclasses.replace(
        _result(),
        eval_points=(
            *_result().eval_points,
            EvalPoint(
                step=None,
                examples=0,
                timed_sec=0.0,
                train_loss=0.0,  # violates NOT NULL
                validation={},
                test={},
            ),
        ),
    )
    with pytest.raises(StoreError):
        _add(store, broken, seed=7)
    frame = store.trials()
    assert frame["id"].tolist() == [first]
    assert len(store.eval_points(first)) == 2
    engine = sqlalchemy.create_engine(store.url)
    with engine.connect() as connection:
        points = connection.execute(sqlalchemy.text("select count(*) from eval_points")).scalar()
    engine.dispose()
    assert points == 2


def test_reopening_the_store_sees_stored_trials(store_url):
    url = store_url
    trial_id = _add(Store(url), _result())
    assert Store(url).trials()["id"].tolist() == [trial_id]


@pytest.mark.parametrize("url", ["nonsense://", "postgresql+nodriver://x/y", "::::"])
def test_bad_url_is_one_clear_error(url):
    with pytest.raises(StoreError) as error:
        Store(url)
    assert "\n" not in str(error.value) and "cannot open store" in str(error.value)


WRITER = """
import dataclasses, datetime as dt, sys
sys.path.insert(0, {tests!r})
from test_store import _finished, _result
from optarena.records import EvalPoint
from optarena.leaderboard.store import Store

points = tuple(
    EvalPoint(step=i, examples=i, timed_sec=float(i), train_loss=1.0,
              validation={{"error_rate": 0.5}}, test={{"error_rate": 0.5}})
    for i in range({points})
)
store = Store({url!r})
now = dt.datetime.now(dt.UTC)
seed = 0
while True:
    store.add(_finished(dataclasses.replace(_result(), eval_points=points), seed=seed))
    seed += 1
    print(seed, flush=True)
"""


def test_sigkill_during_writes_leaves_only_complete_trials(store_url):
    points = 300
    url = store_url
    script = WRITER.format(tests=str(Path(__file__).parent), points=points, url=url)
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # let a few trials land, then kill it in the middle of the next ones
            assert writer.stdout.readline(), "the writer died before storing a trial"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    store = Store(url)
    frame = store.trials()
    assert len(frame) >= 3
    assert frame["seed"].tolist() == list(range(len(frame)))
    for trial_id in frame["id"]:
        assert len(store.eval_points(int(trial_id))) == points
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            assert connection.execute(sqlalchemy.text("pragma integrity_check")).scalar() == "ok"
        orphans = connection.execute(
            sqlalchemy.text(
                "select count(*) from eval_points where trial_id not in (select id from trials)"
            )
        ).scalar()
    engine.dispose()
    assert orphans == 0


def test_a_digest_seals_the_trials_up_to_an_id_and_nothing_else(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'new.db'}")
    nothing = store.digest(0)
    first = _add(store, _result())
    assert store.digest(0) == nothing, "no trial sealed: the same before and after a write"
    sealed = store.digest(first)
    _add(store, _result(), seed=1)
    assert store.digest(first) == sealed, "a later trial leaves an earlier seal as it was"
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE trials SET status = 'diverged' WHERE id = 1")
    assert store.digest(first) != sealed
