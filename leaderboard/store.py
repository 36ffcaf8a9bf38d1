"""The SQL store: trials with their eval points and provenance, behind a small typed API.

Any SQLAlchemy URL works; the default is a SQLite file. A trial and all of its
eval points are written in one transaction, so a killed process never leaves a
trial that looks complete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from optarena.harness.results import EvalPoint, TrialResult
from optarena.leaderboard.models import (
    Base,
    BenchmarkTrialRow,
    EvalPointRow,
    SubmissionRow,
    TrialRow,
    WorkloadRow,
)
from optarena.workloads.spec import WorkloadSpec

DB_ENV = "OPTARENA_DB"
DEFAULT_DB_FILE = "optarena.db"


class StoreError(RuntimeError):
    """The store cannot be opened or written."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where and with what a trial ran."""

    optarena_version: str
    git_commit: str | None
    jax_version: str
    flax_version: str
    optax_version: str
    python_version: str
    platform: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialSubmissionInfo:
    """Identity of the submission that ran a trial."""

    name: str
    origin: str
    source_sha256: str


def default_url() -> str:
    """``$OPTARENA_DB`` if set, else the SQLite file ``optarena.db`` in the working directory."""
    return os.environ.get(DB_ENV) or f"sqlite:///{DEFAULT_DB_FILE}"


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _json_metrics(metrics: Mapping[str, float]) -> dict[str, float | None]:
    return {key: _finite_or_none(float(value)) for key, value in metrics.items()}


BENCHMARK_COLUMNS = (
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
    "examples_to_target",
    "flops_per_step",
    "budget_sec",
    "finished_at",
)
"""The columns of `Store.benchmark_trials`, in order."""


def _typed_benchmark_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype(
        {
            "trial_id": "int64",
            "ruleset": "object",
            "submission": "object",
            "submission_sha256": "object",
            "workload": "object",
            "base_workload": "object",
            "workload_sha256": "object",
            "study": "int64",
            "trial": "int64",
            "seed": "int64",
            "status": "object",
        }
    )
    for column in ("time_to_target_sec", "steps_to_target", "examples_to_target"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float).fillna(math.inf)
    frame["flops_per_step"] = pd.to_numeric(frame["flops_per_step"], errors="coerce").astype(float)
    frame["budget_sec"] = frame["budget_sec"].astype(float)
    frame["finished_at"] = pd.to_datetime(frame["finished_at"], utc=True)
    return frame.loc[:, list(BENCHMARK_COLUMNS)].reset_index(drop=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchmarkIdentity:
    """What makes two benchmark trials the same trial (unique in the store).

    ``max_steps`` is the step cap the trial ran under, ``None`` when uncapped.
    """

    submission_sha256: str
    workload_sha256: str
    ruleset: str
    study: int
    trial: int
    seed: int
    budget_sec: float
    max_steps: int | None

    def columns(self) -> dict[str, Any]:
        """The identity as `BenchmarkTrialRow` columns (an uncapped trial has ``step_cap`` 0)."""
        fields = dataclasses.asdict(self)
        fields["step_cap"] = fields.pop("max_steps") or 0
        return fields


def check_url(url: str | None = None) -> str:
    """Validate a store URL (syntax and driver) without connecting or creating anything.

    Returns the URL that `Store` would open; raises `StoreError` with one line otherwise.
    """
    url = url or default_url()
    try:
        make_url(url).get_dialect()
    except (ArgumentError, SQLAlchemyError, ImportError) as error:
        raise StoreError(f"cannot open store {url!r}: {error}".splitlines()[0]) from error
    return url


class Store:
    """A connection to the leaderboard database; creates the tables it needs."""

    def __init__(self, url: str | None = None, *, create: bool = True):
        """Open the store at ``url``; with ``create=False`` it must already exist (for reading)."""
        url = url or default_url()
        try:
            parsed = make_url(url)
            sqlite_file = (
                Path(parsed.database).expanduser()
                if parsed.get_backend_name() == "sqlite"
                and parsed.database not in (None, "", ":memory:")
                else None
            )
            if sqlite_file is not None and not create and not sqlite_file.exists():
                raise StoreError(f"no store at {url!r} yet: run a trial first")
            if sqlite_file is not None:
                sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            self._engine: Engine = create_engine(parsed)
            if create:
                Base.metadata.create_all(self._engine)
            elif not inspect(self._engine).has_table(TrialRow.__tablename__):
                raise StoreError(f"{url!r} is not an optarena store (it has no trials table)")
        except (ArgumentError, SQLAlchemyError, ImportError, OSError) as error:
            raise StoreError(f"cannot open store {url!r}: {error}".splitlines()[0]) from error
        self.url = url

    def close(self) -> None:
        self._engine.dispose()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for the other modules of `leaderboard/`."""
        return self._engine

    def add_trial(
        self,
        *,
        submission: TrialSubmissionInfo,
        spec: WorkloadSpec,
        seed: int,
        hparams: Mapping[str, Any] | None,
        budget_sec: float,
        max_steps: int | None,
        result: TrialResult,
        provenance: Provenance,
        started_at: dt.datetime,
        finished_at: dt.datetime,
    ) -> int:
        """Store one finished trial and its eval points atomically; returns the trial id."""
        try:
            with Session(self._engine) as session, session.begin():
                trial = self._trial_row(
                    session,
                    submission=submission,
                    spec=spec,
                    seed=seed,
                    hparams=hparams,
                    budget_sec=budget_sec,
                    max_steps=max_steps,
                    result=result,
                    provenance=provenance,
                    started_at=started_at,
                    finished_at=finished_at,
                )
                session.add(trial)
                session.flush()
                return trial.id
        except SQLAlchemyError as error:
            raise StoreError(
                f"cannot write trial to {self.url}: {error}".splitlines()[0]
            ) from error

    def add_benchmark_trial(
        self,
        *,
        identity: BenchmarkIdentity,
        benchmark_seed: int,
        submission: TrialSubmissionInfo,
        spec: WorkloadSpec,
        hparams: Mapping[str, Any] | None,
        result: TrialResult,
        provenance: Provenance,
        started_at: dt.datetime,
        finished_at: dt.datetime,
    ) -> int:
        """Store one benchmark trial, its eval points and its identity in one transaction.

        Returns the trial id. When a trial with the same identity is already stored (another
        process stored it first), nothing is written and the stored trial's id is returned.
        """
        if (submission.source_sha256, spec.sha256()) != (
            identity.submission_sha256,
            identity.workload_sha256,
        ):
            raise ValueError("the identity's hashes differ from the submission's and spec's")
        try:
            with Session(self._engine) as session, session.begin():
                trial = self._trial_row(
                    session,
                    submission=submission,
                    spec=spec,
                    seed=identity.seed,
                    hparams=hparams,
                    budget_sec=identity.budget_sec,
                    max_steps=identity.max_steps,
                    result=result,
                    provenance=provenance,
                    started_at=started_at,
                    finished_at=finished_at,
                )
                session.add(
                    BenchmarkTrialRow(
                        trial_row=trial,
                        benchmark_seed=benchmark_seed,
                        **identity.columns(),
                    )
                )
                session.flush()
                return trial.id
        except IntegrityError:
            existing = self.benchmark_trial_id(identity)
            if existing is None:
                raise StoreError(f"cannot write trial to {self.url}: integrity error") from None
            return existing
        except SQLAlchemyError as error:
            raise StoreError(
                f"cannot write trial to {self.url}: {error}".splitlines()[0]
            ) from error

    def benchmark_trial_id(self, identity: BenchmarkIdentity) -> int | None:
        """The id of the stored benchmark trial with this identity, if there is one."""
        if not self._has_benchmark_table():
            return None
        with Session(self._engine) as session:
            return session.scalar(
                select(BenchmarkTrialRow.trial_id).filter_by(**identity.columns())
            )

    def _has_benchmark_table(self) -> bool:
        return inspect(self._engine).has_table(BenchmarkTrialRow.__tablename__)

    @staticmethod
    def _trial_row(
        session: Session,
        *,
        submission: TrialSubmissionInfo,
        spec: WorkloadSpec,
        seed: int,
        hparams: Mapping[str, Any] | None,
        budget_sec: float,
        max_steps: int | None,
        result: TrialResult,
        provenance: Provenance,
        started_at: dt.datetime,
        finished_at: dt.datetime,
    ) -> TrialRow:
        return TrialRow(
            submission=Store._submission_row(session, submission),
            workload=Store._workload_row(session, spec),
            seed=seed,
            hparams=dict(hparams) if hparams is not None else None,
            budget_sec=budget_sec,
            max_steps=max_steps,
            status=result.status.value,
            reason=result.reason,
            time_to_target_sec=_finite_or_none(result.time_to_target_sec),
            steps_to_target=result.steps_to_target,
            examples_to_target=result.examples_to_target,
            timed_sec=result.timed_sec,
            compile_sec=result.compile_sec,
            num_steps=result.num_steps,
            batch_size=result.batch_size,
            num_devices=result.num_devices,
            device_kind=result.device_kind,
            flops_per_step=result.flops_per_step,
            started_at=started_at,
            finished_at=finished_at,
            **dataclasses.asdict(provenance),
            eval_points=[
                EvalPointRow(
                    step=p.step,
                    examples=p.examples,
                    timed_sec=p.timed_sec,
                    train_loss=_finite_or_none(p.train_loss),
                    validation=_json_metrics(p.validation),
                    test=_json_metrics(p.test),
                )
                for p in result.eval_points
            ],
        )

    @staticmethod
    def _submission_row(session: Session, info: TrialSubmissionInfo) -> SubmissionRow:
        row = session.scalar(
            select(SubmissionRow).filter_by(name=info.name, source_sha256=info.source_sha256)
        )
        return row or SubmissionRow(
            name=info.name, origin=info.origin, source_sha256=info.source_sha256
        )

    @staticmethod
    def _workload_row(session: Session, spec: WorkloadSpec) -> WorkloadRow:
        digest = spec.sha256()
        row = session.scalar(select(WorkloadRow).filter_by(name=spec.name, spec_sha256=digest))
        return row or WorkloadRow(
            name=spec.name, base=spec.base, spec_sha256=digest, spec=spec.to_dict()
        )

    def trials(self, *, workload: str | None = None, submission: str | None = None) -> pd.DataFrame:
        """Stored trials, one row each, oldest first; a missed target reads as ``inf``."""
        query = (
            select(
                TrialRow.id,
                SubmissionRow.name.label("submission"),
                WorkloadRow.name.label("workload"),
                TrialRow.status,
                TrialRow.seed,
                TrialRow.time_to_target_sec,
                TrialRow.steps_to_target,
                TrialRow.examples_to_target,
                TrialRow.timed_sec,
                TrialRow.compile_sec,
                TrialRow.num_steps,
                TrialRow.batch_size,
                TrialRow.num_devices,
                TrialRow.device_kind,
                TrialRow.budget_sec,
                TrialRow.reason,
                TrialRow.started_at,
                SubmissionRow.source_sha256,
                WorkloadRow.spec_sha256,
            )
            .join(TrialRow.submission)
            .join(TrialRow.workload)
            .order_by(TrialRow.id)
        )
        if workload is not None:
            query = query.where(WorkloadRow.name == workload)
        if submission is not None:
            query = query.where(SubmissionRow.name == submission)
        with self._engine.connect() as connection:
            frame = pd.read_sql(query, connection)
        frame["time_to_target_sec"] = frame["time_to_target_sec"].astype(float).fillna(math.inf)
        return frame

    def benchmark_trials(self, ruleset: str | None = None) -> pd.DataFrame:
        """Stored benchmark trials, one row each, oldest first (columns: `BENCHMARK_COLUMNS`).

        A missed target (any status but ``reached``) reads as ``inf`` in the three
        ``*_to_target`` columns, unknown FLOPs as NaN; ``finished_at`` is in UTC.
        """
        if not self._has_benchmark_table():
            return _typed_benchmark_frame(pd.DataFrame(columns=list(BENCHMARK_COLUMNS)))
        query = (
            select(
                BenchmarkTrialRow.trial_id,
                BenchmarkTrialRow.ruleset,
                SubmissionRow.name.label("submission"),
                BenchmarkTrialRow.submission_sha256,
                WorkloadRow.name.label("workload"),
                func.coalesce(WorkloadRow.base, WorkloadRow.name).label("base_workload"),
                BenchmarkTrialRow.workload_sha256,
                BenchmarkTrialRow.study,
                BenchmarkTrialRow.trial,
                BenchmarkTrialRow.seed,
                TrialRow.status,
                TrialRow.time_to_target_sec,
                TrialRow.steps_to_target,
                TrialRow.examples_to_target,
                TrialRow.flops_per_step,
                TrialRow.budget_sec,
                TrialRow.finished_at,
            )
            .join(BenchmarkTrialRow.trial_row)
            .join(TrialRow.submission)
            .join(TrialRow.workload)
            .order_by(BenchmarkTrialRow.trial_id)
        )
        if ruleset is not None:
            query = query.where(BenchmarkTrialRow.ruleset == ruleset)
        with self._engine.connect() as connection:
            frame = pd.read_sql(query, connection)
        return _typed_benchmark_frame(frame)

    def trial(self, trial_id: int) -> dict[str, Any]:
        """Everything stored about one trial, provenance, hyperparameters and spec included."""
        with Session(self._engine) as session:
            row = session.get(TrialRow, trial_id)
            if row is None:
                raise KeyError(f"no trial with id {trial_id}")
            fields = {c.key: getattr(row, c.key) for c in TrialRow.__table__.columns}
            fields["time_to_target_sec"] = (
                math.inf if row.time_to_target_sec is None else row.time_to_target_sec
            )
            fields["submission"] = row.submission.name
            fields["submission_origin"] = row.submission.origin
            fields["source_sha256"] = row.submission.source_sha256
            fields["workload"] = row.workload.name
            fields["spec"] = dict(row.workload.spec)
            return fields

    def eval_points(self, trial_id: int) -> list[EvalPoint]:
        """The eval points of one trial in step order (``nan`` where a value was not finite)."""

        def restore(metrics: Mapping[str, float | None]) -> dict[str, float]:
            return {k: math.nan if v is None else float(v) for k, v in metrics.items()}

        with Session(self._engine) as session:
            rows = session.scalars(
                select(EvalPointRow).filter_by(trial_id=trial_id).order_by(EvalPointRow.step)
            )
            return [
                EvalPoint(
                    step=r.step,
                    examples=r.examples,
                    timed_sec=r.timed_sec,
                    train_loss=math.nan if r.train_loss is None else r.train_loss,
                    validation=restore(r.validation),
                    test=restore(r.test),
                )
                for r in rows
            ]
