"""The nightly job's history in the store: each night's settings, snapshot and timing check.

Three tables (models in `optarena.leaderboard.models`): ``nightly_runs`` (one row per night),
``nightly_timing`` (the reference submission's fixed trials re-timed that night) and
``nightly_trials`` (the benchmark trials that night ran, as opposed to reused), which says on
which night's machine each trial was timed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from optarena.leaderboard.models import (
    NightlyRunRow,
    NightlyTimingRow,
    NightlyTrialRow,
    TrialRow,
)
from optarena.leaderboard.store import Store, StoreError


@dataclasses.dataclass(frozen=True)
class NightlyRun:
    """A stored night, as plain data."""

    id: int
    started_at: dt.datetime
    snapshot_id: int
    tolerance: float
    regressions: int
    report_dir: str
    settings: Mapping[str, Any]


def record_run(
    store: Store,
    *,
    started_at: dt.datetime,
    comparison_key: str,
    settings: Mapping[str, Any],
    snapshot_id: int,
    previous_run_id: int | None,
    tolerance: float,
    regressions: int,
    report_dir: str,
    timing: Iterable[tuple[int, str, int]],
    run_trial_ids: Iterable[int],
    session: Session | None = None,
) -> int:
    """Store one night in one transaction (``session``'s, from `Store.transaction`, if given);
    ``timing`` holds (trial id, workload, seed)."""
    row = NightlyRunRow(
        started_at=started_at,
        finished_at=dt.datetime.now(dt.UTC),
        comparison_key=comparison_key,
        settings=dict(settings),
        snapshot_id=snapshot_id,
        previous_run_id=previous_run_id,
        tolerance=tolerance,
        regressions=regressions,
        report_dir=report_dir,
        timing=[NightlyTimingRow(trial_id=t, workload=w, seed=s) for t, w, s in timing],
        trials=[NightlyTrialRow(trial_id=int(t)) for t in run_trial_ids],
    )
    try:
        if session is not None:
            session.add(row)
            session.flush()
            return row.id
        with Session(store.engine) as own, own.begin():
            own.add(row)
            own.flush()
            return row.id
    except SQLAlchemyError as error:
        raise StoreError(
            f"cannot record the night in {store.url}: {error}".splitlines()[0]
        ) from error


def previous_run(store: Store, comparison_key: str) -> NightlyRun | None:
    """The latest stored night with the same comparison key, if any."""
    with Session(store.engine) as session:
        row = session.scalar(
            select(NightlyRunRow)
            .where(NightlyRunRow.comparison_key == comparison_key)
            .order_by(NightlyRunRow.id.desc())
            .limit(1)
        )
        if row is None:
            return None
        return NightlyRun(
            id=row.id,
            started_at=row.started_at,
            snapshot_id=row.snapshot_id,
            tolerance=row.tolerance,
            regressions=row.regressions,
            report_dir=row.report_dir,
            settings=dict(row.settings),
        )


def report_dirs(store: Store) -> list[str]:
    """The report folder of every stored night, oldest night first (none for a store that
    does not exist yet, which is not created)."""
    if not store.exists():
        return []
    query = select(NightlyRunRow.report_dir).order_by(NightlyRunRow.id)
    with Session(store.engine) as session:
        return list(session.scalars(query))


def timing_trials(store: Store, run_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """The re-timed reference trials: run_id, trial_id, workload, seed, time_to_target_sec
    (``inf`` when missed), steps_to_target (NaN when missed), timed_sec, num_steps."""
    columns = [
        "run_id",
        "trial_id",
        "workload",
        "seed",
        "time_to_target_sec",
        "steps_to_target",
        "timed_sec",
        "num_steps",
    ]
    query = select(
        NightlyTimingRow.run_id,
        NightlyTimingRow.trial_id,
        NightlyTimingRow.workload,
        NightlyTimingRow.seed,
        TrialRow.time_to_target_sec,
        TrialRow.steps_to_target,
        TrialRow.timed_sec,
        TrialRow.num_steps,
    ).join(TrialRow, TrialRow.id == NightlyTimingRow.trial_id)
    if run_ids is not None:
        query = query.where(NightlyTimingRow.run_id.in_([int(i) for i in run_ids]))
    with store.engine.connect() as connection:
        frame = pd.read_sql(query.order_by(NightlyTimingRow.id), connection)
    frame["time_to_target_sec"] = frame["time_to_target_sec"].astype(float).fillna(math.inf)
    frame["steps_to_target"] = frame["steps_to_target"].astype(float)
    return frame[columns]


def nights_of_trials(store: Store) -> pd.Series:
    """Which night ran each benchmark trial that a nightly run ran: trial_id -> run_id."""
    query = select(NightlyTrialRow.trial_id, NightlyTrialRow.run_id)
    with store.engine.connect() as connection:
        frame = pd.read_sql(query, connection)
    return frame.set_index("trial_id")["run_id"]
