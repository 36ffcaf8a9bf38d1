"""The SQL store: trials with their eval points and provenance, behind a small typed API.

The default is a SQLite file; a PostgreSQL server works too (``postgresql+psycopg://...``,
with the ``postgres`` extra), and other SQLAlchemy URLs may. The store takes a `FinishedTrial`
whole: a trial and all of its eval points (and, for a benchmark trial, its identity) are
written in one transaction, so a killed process never leaves a trial that looks complete.
Opening a store creates whatever tables of the schema (`optarena.leaderboard.models`) it
lacks, once, and never alters what exists. A store opened for writing is connected at its
first use, so a command that fails before its first trial leaves no database file behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import create_engine, delete, func, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateColumn

from optarena.errors import UserError
from optarena.leaderboard.models import (
    Base,
    BenchmarkTrialRow,
    EvalPointRow,
    SubmissionRow,
    TrialRow,
    WorkloadRow,
)
from optarena.records import IDENTITY_FIELDS, EvalPoint, FinishedTrial, Trial

DB_ENV = "OPTARENA_DB"
DEFAULT_DB_FILE = "optarena.db"


class StoreError(UserError, RuntimeError):
    """The store cannot be opened or written."""


class UnknownTrialError(UserError, KeyError):
    """No stored trial has the id asked for."""

    def __str__(self) -> str:
        return str(self.args[0])


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
    "wall_time_to_target_sec",
    "steps_to_target",
    "examples_to_target",
    "flops_per_step",
    "budget_sec",
    "finished_at",
    "held_out_variants",
)
"""The columns of `Store.benchmark_trials`, in order."""


def _typed_benchmark_frame(frame: pd.DataFrame) -> pd.DataFrame:
    # held_out_variants is unknown (<NA>) for trials stored before it was recorded.
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
            "held_out_variants": "Int64",
        }
    )
    for column in ("time_to_target_sec", "steps_to_target", "examples_to_target"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float).fillna(math.inf)
    # Unknown (NULL) for trials stored before it was recorded: NaN where the target was
    # reached, infinite where it was missed.
    wall = pd.to_numeric(frame["wall_time_to_target_sec"], errors="coerce").astype(float)
    missed = frame["time_to_target_sec"] == math.inf
    frame["wall_time_to_target_sec"] = wall.where(~(missed & wall.isna()), math.inf)
    frame["flops_per_step"] = pd.to_numeric(frame["flops_per_step"], errors="coerce").astype(float)
    frame["budget_sec"] = frame["budget_sec"].astype(float)
    frame["finished_at"] = pd.to_datetime(frame["finished_at"], utc=True)
    return frame.loc[:, list(BENCHMARK_COLUMNS)].reset_index(drop=True)


def check_url(url: str | None = None) -> str:
    """Validate a store URL (syntax and driver) without connecting or creating anything.

    Returns the URL that `Store` would open; raises `StoreError` with one line otherwise.
    """
    url = url or default_url()
    try:
        make_url(url).get_dialect().import_dbapi()
    except (ArgumentError, SQLAlchemyError, ImportError) as error:
        raise StoreError(_message(f"cannot open store {_shown(url)!r}", error)) from error
    return url


def _shown(url: str) -> str:
    """``url`` as messages show it: its password, if it has one, as ``***``."""
    with contextlib.suppress(ArgumentError, ValueError):
        parsed = make_url(url)
        if parsed.password is not None:
            return parsed.render_as_string(hide_password=True)
    return url


def _message(what: str, error: BaseException) -> str:
    """One line: ``what`` and the first line of ``error``, with a hint for a missing driver."""
    line = f"{what}: {error}".splitlines()[0]
    if isinstance(error, ImportError) and "psycopg" in str(error):
        line += " (for PostgreSQL: pip install 'optarena[postgres]', and postgresql+psycopg://)"
    return line


CONNECT_TIMEOUT_SEC = 10
"""How long a PostgreSQL connection may take before the command fails (unless the URL's
``connect_timeout`` says otherwise): an unreachable server is an error, not a hang."""


def _engine(url: str) -> Engine:
    """The engine for ``url``; on PostgreSQL, times come back in UTC (the session's zone, unless
    the URL sets ``options``) and connecting gives up after `CONNECT_TIMEOUT_SEC`."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return create_engine(parsed)
    defaults = {"connect_timeout": CONNECT_TIMEOUT_SEC, "options": "-c TimeZone=UTC"}
    connect_args = {key: value for key, value in defaults.items() if key not in parsed.query}
    return create_engine(parsed, connect_args=connect_args)


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _in_utc(value: Any) -> Any:
    """A time with a zone in UTC (PostgreSQL gives it in the session's zone), else ``value``."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    return value


SCHEMA_ATTEMPTS = 5


def _create_schema(engine: Engine) -> None:
    """Create the missing tables and columns, safe when several processes open the same
    fresh store at once: each step checks what exists first, so the one that loses a race
    (a table or column that appeared between its check and its create) tries again and finds
    it there. A server that cannot be reached fails at once, not once per attempt."""
    engine.connect().close()
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            Base.metadata.create_all(engine)
            _add_missing_columns(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _add_missing_columns(engine: Engine) -> None:
    """Add the schema's nullable columns that a store written by an older optarena lacks."""
    inspector = inspect(engine)
    with engine.begin() as connection:
        for table in Base.metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present and column.nullable:
                    ddl = CreateColumn(column).compile(dialect=engine.dialect)
                    connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))


class Store:
    """A connection to the leaderboard database."""

    def __init__(self, url: str | None = None, *, create: bool = True):
        """Open the store at ``url``; with ``create=False`` it must already exist (for reading).

        The URL is checked now; a store that may be created is connected at its first use.
        ``url`` (the attribute) is the URL as messages show it, without its password.
        """
        self._url = check_url(url)
        self.url = _shown(self._url)
        self._engine: Engine | None = None
        if not create:
            if not self.exists():
                raise StoreError(f"no store at {self.url!r} yet: run a trial first")
            if not inspect(self.engine).has_table(TrialRow.__tablename__):
                raise StoreError(f"{self.url!r} is not an optarena store (it has no trials table)")

    def _sqlite_file(self) -> Path | None:
        parsed = make_url(self._url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        database = parsed.database
        if parsed.query.get("uri") == "true" and database.startswith("file:"):
            # SQLite's URI form, file:PATH (its own query, mode=ro say, already split off).
            database = database.removeprefix("file:")
        return Path(database).expanduser()

    def exists(self) -> bool:
        """Whether there is a database to read (a SQLite file that exists, or any server)."""
        file = self._sqlite_file()
        return file is None or file.exists()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for the other modules of `leaderboard/`; connecting creates
        the schema's missing tables."""
        if self._engine is None:
            try:
                file = self._sqlite_file()
                if file is not None:
                    file.parent.mkdir(parents=True, exist_ok=True)
                engine = _engine(self._url)
                _create_schema(engine)
            except (ArgumentError, SQLAlchemyError, ImportError, OSError) as error:
                raise StoreError(_message(f"cannot open store {self.url!r}", error)) from error
            self._engine = engine
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose writes are committed together when the block ends, or not at all
        when it raises; pass it as ``session=`` to the writers and readers that take one."""
        try:
            with Session(self.engine) as session, session.begin():
                yield session
        except SQLAlchemyError as error:
            raise StoreError(f"cannot write to {self.url}: {error}".splitlines()[0]) from error

    def add(self, finished: FinishedTrial, *, session: Session | None = None) -> int:
        """Store one finished trial, its eval points and, for a benchmark trial, its identity,
        in one transaction; returns the trial id.

        When a benchmark trial with the same identity is already stored (another process
        stored it first), nothing is written and the stored trial's id is returned. When
        another process created the same submission or workload row at the same moment, the
        transaction is tried again, and then finds that row. With ``session`` (from
        `transaction`), the trial is written in that transaction instead, without retry.
        """
        trial = finished.trial
        if session is not None:
            try:
                return self._write(session, finished)
            except SQLAlchemyError as error:
                raise StoreError(
                    f"cannot write trial to {self.url}: {error}".splitlines()[0]
                ) from error
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                with Session(self.engine) as own, own.begin():
                    return self._write(own, finished)
            except IntegrityError:
                existing = self.stored_id(trial) if trial.place is not None else None
                if existing is not None:
                    return existing
                if attempt == SCHEMA_ATTEMPTS - 1:
                    raise StoreError(f"cannot write trial to {self.url}: integrity error") from None
            except SQLAlchemyError as error:
                raise StoreError(
                    f"cannot write trial to {self.url}: {error}".splitlines()[0]
                ) from error
        raise AssertionError("unreachable")

    def _write(self, session: Session, finished: FinishedTrial) -> int:
        trial = finished.trial
        if _is_postgresql(session):
            # Trial ids must be given in the order trials are committed, as SQLite's one
            # writer at a time gives them: `digest` (the campaign's check that stored trials
            # stay as they were) reads the trials up to the largest id it saw, so a smaller
            # id committed later would look like an edit. PostgreSQL's sequences hand ids out
            # at insert time, so writers of trials take turns until they commit (readers, and
            # rows that only refer to trials, are not held up). Each writer then also finds
            # the submission and workload rows that the writers before it created.
            lock = f"LOCK TABLE {TrialRow.__tablename__} IN SHARE ROW EXCLUSIVE MODE"
            session.execute(text(lock))
        row = self._trial_row(session, finished)
        session.add(row)
        if trial.place is not None:
            session.add(
                BenchmarkTrialRow(
                    trial_row=row,
                    benchmark_seed=trial.place.benchmark_seed,
                    held_out_variants=trial.place.held_out_variants,
                    **dict(zip(IDENTITY_FIELDS, trial.identity, strict=True)),
                )
            )
        session.flush()
        return row.id

    def check_writable(self) -> None:
        """Open the store (creating its schema) and write to it, changing nothing, so that a
        store that cannot be written fails now, before any trial runs, not after one ends.
        A SQLite file that does not exist yet is not created: its folder must be writable."""
        file = self._sqlite_file()
        if file is not None and not file.exists():
            folder = next((p for p in file.resolve().parents if p.exists()), Path("/"))
            if not os.access(folder, os.W_OK):
                raise StoreError(f"cannot write to store {self.url!r}: {folder} is read-only")
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(EvalPointRow).where(EvalPointRow.id < 0))
        except SQLAlchemyError as error:
            raise StoreError(
                f"cannot write to store {self.url!r}: {error}".splitlines()[0]
            ) from error

    def last_trial_id(self) -> int:
        """The largest stored trial id (0 for a store that holds none or does not exist)."""
        if not self.exists():
            return 0
        with Session(self.engine) as session:
            return session.scalar(select(func.max(TrialRow.id))) or 0

    def digest(self, up_to_trial_id: int) -> str:
        """sha256 of every row that says what the trials up to ``up_to_trial_id`` were and
        gave: the trials, their evaluation points and benchmark identities, and the submission
        and workload rows they point to.

        Rows are only ever added to a store, by any number of writers, so the digest of the
        trials up to an id stays the same until something edits or deletes what was stored
        (`optarena.harness.campaign` checks it around every trial).
        """
        digest = hashlib.sha256()
        # No trial to seal: the same digest whether the store exists yet or not, so that
        # trials sealed on a store another trial then creates still match.
        if up_to_trial_id < 1 or not self.exists():
            return digest.hexdigest()
        stored = select(TrialRow.id).where(TrialRow.id <= up_to_trial_id)
        tables = (
            (SubmissionRow, SubmissionRow.id, TrialRow.submission_id),
            (WorkloadRow, WorkloadRow.id, TrialRow.workload_id),
            (TrialRow, TrialRow.id, TrialRow.id),
            (EvalPointRow, EvalPointRow.trial_id, TrialRow.id),
            (BenchmarkTrialRow, BenchmarkTrialRow.trial_id, TrialRow.id),
        )
        with self.engine.connect() as connection:
            for model, key, trial_column in tables:
                table = model.__table__
                used = select(trial_column).where(TrialRow.id.in_(stored))
                query = select(table).where(key.in_(used)).order_by(*table.primary_key.columns)
                digest.update(table.name.encode())
                for row in connection.execute(query):
                    digest.update(repr(tuple(_in_utc(value) for value in row)).encode())
        return digest.hexdigest()

    def stored_id(self, trial: Trial) -> int | None:
        """The id of the stored benchmark trial with ``trial``'s identity, if there is one."""
        return self.stored_ids([trial]).get(trial.identity)

    def stored_ids(self, trials: Iterable[Trial]) -> dict[tuple[Any, ...], int]:
        """Identity -> stored trial id, for the benchmark trials of ``trials`` that are stored
        (a store that does not exist yet holds none, and is not created)."""
        if not self.exists():
            return {}
        found = {}
        with Session(self.engine) as session:
            for trial in trials:
                trial_id = session.scalar(
                    select(BenchmarkTrialRow.trial_id).filter_by(
                        **dict(zip(IDENTITY_FIELDS, trial.identity, strict=True))
                    )
                )
                if trial_id is not None:
                    found[trial.identity] = trial_id
        return found

    @staticmethod
    def _trial_row(session: Session, finished: FinishedTrial) -> TrialRow:
        trial, result = finished.trial, finished.result
        return TrialRow(
            submission=Store._submission_row(session, trial),
            workload=Store._workload_row(session, trial),
            seed=trial.config.seed,
            hparams=dict(trial.config.hparams) if trial.config.hparams is not None else None,
            budget_sec=trial.config.budget_sec,
            max_steps=trial.config.max_steps,
            status=result.status.value,
            reason=result.reason,
            time_to_target_sec=_finite_or_none(result.time_to_target_sec),
            steps_to_target=result.steps_to_target,
            examples_to_target=result.examples_to_target,
            timed_sec=result.timed_sec,
            compile_sec=result.compile_sec,
            wall_time_to_target_sec=_finite_or_none(result.wall_time_to_target_sec),
            wall_sec=_finite_or_none(result.wall_sec),
            step_sec=_finite_or_none(result.step_sec),
            num_steps=result.num_steps,
            batch_size=result.batch_size,
            num_devices=result.num_devices,
            device_kind=result.device_kind,
            flops_per_step=result.flops_per_step,
            started_at=finished.started_at,
            finished_at=finished.finished_at,
            **dataclasses.asdict(finished.provenance),
            eval_points=[
                EvalPointRow(
                    step=p.step,
                    examples=p.examples,
                    timed_sec=p.timed_sec,
                    wall_sec=_finite_or_none(p.wall_sec),
                    train_loss=_finite_or_none(p.train_loss),
                    validation=_json_metrics(p.validation),
                    test=_json_metrics(p.test),
                )
                for p in result.eval_points
            ],
        )

    @staticmethod
    def _submission_row(session: Session, trial: Trial) -> SubmissionRow:
        ref = trial.submission
        row = session.scalar(
            select(SubmissionRow).filter_by(name=ref.name, source_sha256=ref.source_sha256)
        )
        return row or SubmissionRow(
            name=ref.name, origin=ref.origin, source_sha256=ref.source_sha256
        )

    @staticmethod
    def _workload_row(session: Session, trial: Trial) -> WorkloadRow:
        spec = trial.spec
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
                TrialRow.wall_sec,
                TrialRow.step_sec,
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
        with self.engine.connect() as connection:
            frame = pd.read_sql(query, connection)
        frame["time_to_target_sec"] = frame["time_to_target_sec"].astype(float).fillna(math.inf)
        return frame

    def benchmark_trials(self, ruleset: str | None = None) -> pd.DataFrame:
        """Stored benchmark trials, one row each, oldest first (columns: `BENCHMARK_COLUMNS`).

        A missed target (any status but ``reached``) reads as ``inf`` in the three
        ``*_to_target`` columns, unknown FLOPs as NaN; ``finished_at`` is in UTC.
        """
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
                TrialRow.wall_time_to_target_sec,
                TrialRow.steps_to_target,
                TrialRow.examples_to_target,
                TrialRow.flops_per_step,
                TrialRow.budget_sec,
                TrialRow.finished_at,
                BenchmarkTrialRow.held_out_variants,
            )
            .join(BenchmarkTrialRow.trial_row)
            .join(TrialRow.submission)
            .join(TrialRow.workload)
            .order_by(BenchmarkTrialRow.trial_id)
        )
        if ruleset is not None:
            query = query.where(BenchmarkTrialRow.ruleset == ruleset)
        with self.engine.connect() as connection:
            frame = pd.read_sql(query, connection)
        return _typed_benchmark_frame(frame)

    def trial(self, trial_id: int) -> dict[str, Any]:
        """Everything stored about one trial, provenance, hyperparameters and spec included."""
        with Session(self.engine) as session:
            row = session.get(TrialRow, trial_id)
            if row is None:
                raise UnknownTrialError(f"no trial with id {trial_id} in {self.url}")
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

        with Session(self.engine) as session:
            rows = session.scalars(
                select(EvalPointRow).filter_by(trial_id=trial_id).order_by(EvalPointRow.step)
            )
            return [
                EvalPoint(
                    step=r.step,
                    examples=r.examples,
                    timed_sec=r.timed_sec,
                    wall_sec=math.nan if r.wall_sec is None else r.wall_sec,
                    train_loss=math.nan if r.train_loss is None else r.train_loss,
                    validation=restore(r.validation),
                    test=restore(r.test),
                )
                for r in rows
            ]
