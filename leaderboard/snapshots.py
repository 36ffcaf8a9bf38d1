"""Score snapshots in the store: score everything stored, save it dated, read it back.

Snapshots are only ever added, so the history of the leaderboard stays queryable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
from collections.abc import Iterable
from enum import StrEnum

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from optarena.errors import UserError
from optarena.leaderboard.models import (
    EvalPointRow,
    SnapshotPairRow,
    SnapshotRow,
    SnapshotScoreRow,
    SnapshotStabilityRow,
    SnapshotTrialRow,
    SnapshotWorkloadRow,
    TrialRow,
    WorkloadRow,
)
from optarena.leaderboard.store import Store, StoreError
from optarena.scoring.profiles import Mark
from optarena.scoring.report import Report, Settings, score_trials

INPUT_COLUMNS = (
    "trial_id",
    "ruleset",
    "submission",
    "submission_sha256",
    "workload",
    "base_workload",
    "workload_sha256",
    "study",
    "trial",
    "seed",
    "status",
    "time_to_target_sec",
    "steps_to_target",
    "flops_per_step",
)


class TimeBasis(StrEnum):
    """Which time to target a snapshot scores."""

    SCORED = "scored"
    """Steps times the trial's step time, compile excluded: robust to machine load (default)."""
    WALL = "wall"
    """AlgoPerf's raw wall clock, compile included."""


def with_time_basis(trials: pd.DataFrame, basis: TimeBasis | str) -> pd.DataFrame:
    """``trials`` with ``time_to_target_sec`` on ``basis`` (the scored time is the stored one)."""
    if TimeBasis(basis) is TimeBasis.SCORED:
        return trials
    return trials.assign(time_to_target_sec=trials["wall_time_to_target_sec"])


class NoSnapshotError(UserError, LookupError):
    """There is nothing to show or score yet."""


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def inputs_sha256(trials: pd.DataFrame) -> str:
    """A hash of the scored inputs: every trial's identity, hashes and outcome, in id order."""
    columns = [c for c in INPUT_COLUMNS if c in trials.columns]
    canonical = trials[columns].sort_values("trial_id").to_csv(index=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _joined(values: Iterable[str]) -> str:
    return ",".join(sorted(set(values)))


def save_snapshot(
    store: Store,
    trials: pd.DataFrame,
    report: Report,
    settings: Settings,
    *,
    version: str,
    now: dt.datetime | None = None,
    time_basis: TimeBasis | str = TimeBasis.SCORED,
    session: Session | None = None,
) -> int:
    """Store ``report`` (computed from ``trials``) as a new dated snapshot; returns its id.

    With ``session`` (from `Store.transaction`), it is written in that transaction."""
    submission_hashes = trials.groupby(["ruleset", "submission"])["submission_sha256"].agg(_joined)
    workload_hashes = trials.groupby(["ruleset", "base_workload"])["workload_sha256"].agg(_joined)
    snapshot = SnapshotRow(
        created_at=now or dt.datetime.now(dt.UTC),
        inputs_sha256=inputs_sha256(trials),
        num_trials=len(trials),
        bootstrap_replicates=settings.replicates,
        bootstrap_seed=settings.seed,
        interval_level=settings.level,
        optarena_version=version,
        time_basis=TimeBasis(time_basis).value,
        scores=[
            SnapshotScoreRow(
                ruleset=r.ruleset,
                submission=r.submission,
                submission_sha256s=submission_hashes[(r.ruleset, r.submission)],
                rank=int(r.rank),
                score=float(r.score),
                score_low=_finite(r.score_low),
                score_high=_finite(r.score_high),
                steps_score=_finite(r.steps_score),
                flops_score=_finite(r.flops_score),
                num_workloads=int(r.num_workloads),
            )
            for r in report.scores.itertuples(index=False)
        ],
        workloads=[
            SnapshotWorkloadRow(
                ruleset=r.ruleset,
                submission=r.submission,
                workload=r.workload,
                workload_sha256s=workload_hashes.get((r.ruleset, r.workload), ""),
                time_to_target_sec=_finite(r.time_to_target_sec),
                penalized_time_sec=_finite(r.penalized_time_to_target_sec),
                ratio=_finite(r.ratio),
                mark=str(r.mark),
                num_trials=int(r.num_trials),
                trials_reached=int(r.trials_reached),
            )
            for r in report.workloads.itertuples(index=False)
        ],
        pairs=[
            SnapshotPairRow(
                ruleset=r.ruleset,
                submission=r.submission,
                opponent=r.opponent,
                p_outscores=float(r.p_outscores),
            )
            for r in report.pairwise.itertuples(index=False)
        ],
        stability=[
            SnapshotStabilityRow(
                ruleset=r.ruleset,
                left_out=r.left_out,
                ranking=r.ranking,
                order_changed=bool(r.order_changed),
                kendall_tau=_finite(r.kendall_tau),
            )
            for r in report.stability.itertuples(index=False)
        ],
        trials=[
            SnapshotTrialRow(
                trial_id=int(r.trial_id),
                ruleset=r.ruleset,
                submission=r.submission,
                workload=r.workload,
                base_workload=r.base_workload,
                study=int(r.study),
                trial=int(r.trial),
                seed=int(r.seed),
                status=str(r.status),
                time_to_target_sec=_finite(r.time_to_target_sec),
                steps_to_target=_finite(r.steps_to_target),
                flops_per_step=_finite(r.flops_per_step),
            )
            for r in trials.itertuples(index=False)
        ],
    )
    try:
        if session is not None:
            session.add(snapshot)
            session.flush()
            return snapshot.id
        with Session(store.engine) as own, own.begin():
            own.add(snapshot)
            own.flush()
            return snapshot.id
    except SQLAlchemyError as error:
        raise StoreError(
            f"cannot write a snapshot to {store.url}: {error}".splitlines()[0]
        ) from error


def score_store(
    store: Store,
    settings: Settings,
    *,
    version: str,
    trial_ids: Iterable[int] | None = None,
    time_basis: TimeBasis | str = TimeBasis.SCORED,
) -> tuple[int, Report]:
    """Score every benchmark trial in the store (or those of ``trial_ids``) on ``time_basis``
    and save the snapshot: (snapshot id, report)."""
    trials = with_time_basis(store.benchmark_trials(), time_basis)
    if trial_ids is not None:
        wanted = [int(i) for i in trial_ids]
        trials = trials[trials["trial_id"].isin(wanted)].reset_index(drop=True)
    if trials.empty:
        raise NoSnapshotError(f"no benchmark trials in {store.url} to score")
    report = score_trials(trials, settings)
    snapshot_id = save_snapshot(
        store, trials, report, settings, version=version, time_basis=time_basis
    )
    return snapshot_id, report


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A stored snapshot read back; infinite times are ``inf`` again."""

    id: int
    created_at: dt.datetime
    inputs_sha256: str
    interval_level: float
    settings: Settings
    """The bootstrap settings it was scored with, to score its trials again."""
    scores: pd.DataFrame
    workloads: pd.DataFrame
    pairs: pd.DataFrame
    stability: pd.DataFrame
    trials: pd.DataFrame


def _read(session: Session, model, snapshot_id: int, ruleset: str | None) -> pd.DataFrame:
    query = select(model).where(model.snapshot_id == snapshot_id).order_by(model.id)
    if ruleset is not None:
        query = query.where(model.ruleset == ruleset)
    columns = [c for c in model.__table__.columns if c.key not in ("id", "snapshot_id")]
    query = query.with_only_columns(*columns)
    return pd.read_sql(query, session.connection())


def _nulls_as_inf(frame: pd.DataFrame, columns: Iterable[str], keep_nan=None) -> pd.DataFrame:
    for column in columns:
        values = frame[column].astype(float)
        filled = values.fillna(math.inf)
        if keep_nan is not None:
            filled = filled.where(~keep_nan, np.nan)
        frame[column] = filled
    return frame


def load_snapshot(
    store: Store,
    snapshot_id: int | None = None,
    *,
    ruleset: str | None = None,
    session: Session | None = None,
) -> Snapshot:
    """The snapshot ``snapshot_id`` (default: the latest), optionally one ruleset of it; with
    ``session``, read inside that transaction (which sees its own unsaved snapshot)."""
    if session is None:
        with Session(store.engine) as own:
            return _load(store, own, snapshot_id, ruleset)
    return _load(store, session, snapshot_id, ruleset)


def _load(store: Store, session: Session, snapshot_id: int | None, ruleset: str | None) -> Snapshot:
    if snapshot_id is None:
        snapshot_id = session.scalar(select(func.max(SnapshotRow.id)))
    row = None
    if snapshot_id is not None:
        row = session.get(SnapshotRow, snapshot_id, populate_existing=True)
    if row is None:
        raise NoSnapshotError(
            f"no score snapshot {snapshot_id} in {store.url}"
            if snapshot_id is not None
            else f"no score snapshot in {store.url} yet: run `optarena score`"
        )
    settings = Settings(
        replicates=row.bootstrap_replicates, seed=row.bootstrap_seed, level=row.interval_level
    )
    scores = _read(session, SnapshotScoreRow, snapshot_id, ruleset)
    if scores.empty:
        raise NoSnapshotError(f"no ruleset {ruleset!r} in score snapshot {snapshot_id}")
    for column in ("score_low", "score_high", "steps_score", "flops_score"):
        scores[column] = scores[column].astype(float)
    workloads = _read(session, SnapshotWorkloadRow, snapshot_id, ruleset)
    missing = workloads["mark"] == Mark.MISSING
    workloads = _nulls_as_inf(workloads, ["time_to_target_sec"], keep_nan=missing)
    workloads = _nulls_as_inf(workloads, ["penalized_time_sec"])
    workloads["ratio"] = workloads["ratio"].astype(float)
    trials = _nulls_as_inf(
        _read(session, SnapshotTrialRow, snapshot_id, ruleset),
        ["time_to_target_sec", "steps_to_target"],
    )
    trials["flops_per_step"] = trials["flops_per_step"].astype(float)
    stability = _read(session, SnapshotStabilityRow, snapshot_id, ruleset)
    stability["kendall_tau"] = stability["kendall_tau"].astype(float)
    return Snapshot(
        id=row.id,
        created_at=row.created_at,
        inputs_sha256=row.inputs_sha256,
        interval_level=row.interval_level,
        settings=settings,
        scores=scores,
        workloads=workloads,
        pairs=_read(session, SnapshotPairRow, snapshot_id, ruleset),
        stability=stability,
        trials=trials,
    )


def history(store: Store) -> pd.DataFrame:
    """Every snapshot, oldest first: id, created_at, inputs_sha256, num_trials."""
    query = select(
        SnapshotRow.id, SnapshotRow.created_at, SnapshotRow.inputs_sha256, SnapshotRow.num_trials
    ).order_by(SnapshotRow.id)
    with store.engine.connect() as connection:
        return pd.read_sql(query, connection)


def eval_curves(store: Store, trial_ids: Iterable[int]) -> pd.DataFrame:
    """Validation curves of trials: trial_id, workload, metric, mode, validation_target,
    step, timed_sec, value (NaN where the metric was not finite)."""
    ids = sorted({int(i) for i in trial_ids})
    columns = [
        "trial_id",
        "workload",
        "metric",
        "mode",
        "validation_target",
        "step",
        "timed_sec",
        "value",
    ]
    if not ids:
        return pd.DataFrame(columns=columns)
    rows = []
    with Session(store.engine) as session:
        query = (
            select(EvalPointRow, WorkloadRow)
            .join(TrialRow, EvalPointRow.trial_id == TrialRow.id)
            .join(WorkloadRow, TrialRow.workload_id == WorkloadRow.id)
            .where(EvalPointRow.trial_id.in_(ids))
            .order_by(EvalPointRow.trial_id, EvalPointRow.step)
        )
        for point, workload in session.execute(query):
            metric = workload.spec["metric"]
            value = point.validation.get(metric)
            rows.append(
                (
                    point.trial_id,
                    workload.name,
                    metric,
                    workload.spec["mode"],
                    float(workload.spec["validation_target"]),
                    point.step,
                    point.timed_sec,
                    math.nan if value is None else float(value),
                )
            )
    return pd.DataFrame(rows, columns=columns)
