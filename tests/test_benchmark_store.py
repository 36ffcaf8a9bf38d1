"""Benchmark trials in the store: identity, no duplicates, the scoring frame, old stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pandas as pd
import pytest
import sqlalchemy
from test_store import NOW, SPEC, SUBMISSION, _add, _finished, _result

from optarena.leaderboard.models import Base, BenchmarkTrialRow
from optarena.leaderboard.store import BENCHMARK_COLUMNS, Store
from optarena.records import (
    IDENTITY_FIELDS,
    BenchmarkPlace,
    FinishedTrial,
    TrialResult,
    TrialStatus,
)

VARIANT = dataclasses.replace(SPEC, name="toy_variant", base="toy", validation_target=0.2)


def _benchmark(result=None, *, spec=SPEC, submission=SUBMISSION, **changes) -> FinishedTrial:
    """A finished benchmark trial; ``changes`` set its place and settings."""
    place = {"ruleset": "external", "study": 0, "trial": 0, "held_out_variants": 0}
    config = {"seed": 11, "max_steps": None, "budget_sec": spec.budget_sec}
    place.update({k: v for k, v in changes.items() if k in place})
    config.update({k: v for k, v in changes.items() if k in config})
    return _finished(
        result or _result(),
        spec=spec,
        submission=submission,
        place=BenchmarkPlace(benchmark_seed=5, **place),
        **config,
    )


def _add_benchmark(store, result, *, spec=SPEC, submission=SUBMISSION, **changes) -> int:
    return store.add(_benchmark(result, spec=spec, submission=submission, **changes))


@pytest.fixture
def store(store_url) -> Store:
    """A new store, on SQLite and on PostgreSQL."""
    return Store(store_url)


def test_frame_has_the_contract_columns_types_and_infinities(store):
    reached = _add_benchmark(store, _result())
    failed = _add_benchmark(
        store,
        TrialResult.failed(TrialStatus.TIMEOUT, "killed after 12 s"),
        spec=VARIANT,
        ruleset="self",
        study=2,
        trial=0,
        seed=99,
        held_out_variants=1,
    )
    frame = store.benchmark_trials()
    assert tuple(frame.columns) == BENCHMARK_COLUMNS
    assert frame["held_out_variants"].tolist() == [0, 1]
    assert frame["trial_id"].tolist() == [reached, failed]
    first, second = frame.iloc[0], frame.iloc[1]
    assert (first.ruleset, first.submission, first.workload, first.base_workload) == (
        "external",
        "sgd",
        "toy",
        "toy",
    )
    assert (second.workload, second.base_workload, second.study, second.seed) == (
        "toy_variant",
        "toy",
        2,
        99,
    )
    assert first.submission_sha256 == SUBMISSION.source_sha256
    assert second.workload_sha256 == VARIANT.sha256()
    assert (first.status, first.time_to_target_sec, first.steps_to_target) == ("reached", 1.5, 20)
    assert first.examples_to_target == 160 and first.flops_per_step == 1234.0
    assert second.status == "timeout"
    for column in ("time_to_target_sec", "steps_to_target", "examples_to_target"):
        assert frame[column].dtype == float and second[column] == math.inf
    assert math.isnan(second.flops_per_step) and second.budget_sec == SPEC.budget_sec
    assert str(frame["finished_at"].dt.tz) == "UTC"
    assert frame["finished_at"].iloc[0] == pd.Timestamp(NOW + dt.timedelta(seconds=3))
    assert frame["study"].dtype == "int64" and frame["trial_id"].dtype == "int64"

    assert store.benchmark_trials("self")["trial_id"].tolist() == [failed]
    assert store.benchmark_trials("external")["trial_id"].tolist() == [reached]
    assert store.trial(failed)["reason"] == "killed after 12 s"


def test_the_same_identity_is_stored_once_and_edits_are_new_trials(store):
    first = _add_benchmark(store, _result())
    assert store.stored_id(_benchmark().trial) == first
    assert _add_benchmark(store, _result(time_to_target=0.5)) == first
    assert len(store.benchmark_trials()) == 1 and len(store.trials()) == 1
    assert store.benchmark_trials().iloc[0].time_to_target_sec == 1.5

    edited = dataclasses.replace(SUBMISSION, source_sha256="1" * 64)
    assert store.stored_id(_benchmark(submission=edited).trial) is None
    for changes in (
        {"submission": edited},
        {"spec": dataclasses.replace(SPEC, validation_target=0.05)},
        {"ruleset": "self"},
        {"study": 1},
        {"trial": 1},
        {"seed": 12},
        {"budget_sec": 15.0},
        {"max_steps": 100},
    ):
        assert _add_benchmark(store, _result(), **changes) != first
    assert len(store.benchmark_trials()) == 9


def test_the_unique_constraint_holds_in_sql(store):
    _add_benchmark(store, _result())
    engine = sqlalchemy.create_engine(store.url)
    with engine.begin() as connection, pytest.raises(sqlalchemy.exc.IntegrityError):
        connection.execute(
            sqlalchemy.insert(BenchmarkTrialRow).values(
                trial_id=_add(store, _result()),
                benchmark_seed=5,
                **dict(zip(IDENTITY_FIELDS, _benchmark().trial.identity, strict=True)),
            )
        )
    engine.dispose()
    assert len(store.benchmark_trials()) == 1


def test_a_store_from_before_benchmarks_keeps_working(store_url):
    url = store_url
    engine = sqlalchemy.create_engine(url)
    old_tables = [t for name, t in Base.metadata.tables.items() if name != "benchmark_trials"]
    Base.metadata.create_all(engine, tables=old_tables)
    engine.dispose()
    old = Store(url, create=False)
    old_id = _add(old, _result())
    frame = old.benchmark_trials()
    assert tuple(frame.columns) == BENCHMARK_COLUMNS and frame.empty
    assert old.stored_id(_benchmark().trial) is None

    store = Store(url)  # opening for writing adds the new table, keeping the old trials
    new_id = _add_benchmark(store, _result())
    assert store.trials()["id"].tolist() == [old_id, new_id]
    assert store.benchmark_trials()["trial_id"].tolist() == [new_id]
