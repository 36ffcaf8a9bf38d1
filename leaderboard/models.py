"""Every table the store keeps, as SQLAlchemy 2 typed models, in one metadata.

Trials (`SubmissionRow`, `WorkloadRow`, `TrialRow`, `EvalPointRow`, `BenchmarkTrialRow`),
score snapshots (written by `optarena score`: every scoring is kept, dated) and the nightly
job's history. `Store` creates whatever is missing of this schema when it opens a store:
missing tables, and missing nullable columns (added with ``ALTER TABLE ... ADD COLUMN``), never
altering or dropping what exists, so older stores gain the newer tables and columns (NULL in
their old rows) and keep their data.
Non-finite numbers are stored as NULL. ORM objects stay inside `leaderboard/`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from optarena.records import IDENTITY_FIELDS


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, str: String(255)}  # noqa: RUF012


class SubmissionRow(Base):
    """One version of a submission: a name and the hash of its source."""

    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("name", "source_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    origin: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str] = mapped_column(String(64))


class WorkloadRow(Base):
    """One version of a workload spec; an edited spec is a new row, so old trials keep theirs."""

    __tablename__ = "workloads"
    __table_args__ = (UniqueConstraint("name", "spec_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    base: Mapped[str | None]
    spec_sha256: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]]


class TrialRow(Base):
    """One trial and its provenance. ``time_to_target_sec`` is NULL when the target was missed."""

    __tablename__ = "trials"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    workload_id: Mapped[int] = mapped_column(ForeignKey("workloads.id"), index=True)
    seed: Mapped[int]
    hparams: Mapped[dict[str, Any] | None]
    budget_sec: Mapped[float] = mapped_column(Float)
    max_steps: Mapped[int | None]

    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    time_to_target_sec: Mapped[float | None] = mapped_column(Float)
    steps_to_target: Mapped[int | None]
    examples_to_target: Mapped[int | None]
    timed_sec: Mapped[float] = mapped_column(Float)
    compile_sec: Mapped[float] = mapped_column(Float)
    wall_time_to_target_sec: Mapped[float | None] = mapped_column(Float)
    """AlgoPerf's wall-clock time to target (compile included); NULL when missed or unknown."""
    wall_sec: Mapped[float | None] = mapped_column(Float)
    step_sec: Mapped[float | None] = mapped_column(Float)
    num_steps: Mapped[int]
    batch_size: Mapped[int]
    num_devices: Mapped[int]
    device_kind: Mapped[str]
    flops_per_step: Mapped[float | None] = mapped_column(Float)

    optarena_version: Mapped[str]
    git_commit: Mapped[str | None]
    jax_version: Mapped[str]
    flax_version: Mapped[str]
    optax_version: Mapped[str]
    python_version: Mapped[str]
    platform: Mapped[str]
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    submission: Mapped[SubmissionRow] = relationship()
    workload: Mapped[WorkloadRow] = relationship()
    eval_points: Mapped[list[EvalPointRow]] = relationship(
        back_populates="trial", order_by="EvalPointRow.step", cascade="all, delete-orphan"
    )


class EvalPointRow(Base):
    """One evaluation of a trial; metric values that were not finite are stored as NULL."""

    __tablename__ = "eval_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    step: Mapped[int]
    examples: Mapped[int]
    timed_sec: Mapped[float] = mapped_column(Float)
    wall_sec: Mapped[float | None] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    validation: Mapped[dict[str, Any]]
    test: Mapped[dict[str, Any]]

    trial: Mapped[TrialRow] = relationship(back_populates="eval_points")


class BenchmarkTrialRow(Base):
    """A trial run by ``optarena benchmark``: its place in the benchmark and its identity.

    The full record (outcome, provenance, eval points) is the `TrialRow` it points to. The
    identity is unique: the submission's source hash, the workload spec's hash, the ruleset,
    the study and trial indices, the seed, and the limits it ran under (budget, and
    ``step_cap``, 0 when uncapped: SQL unique constraints treat NULLs as all distinct). An
    edited submission or spec is a new identity, and a rerun can never store a duplicate.
    This is a table of its own so that stores created before benchmarks existed gain it
    (``create_all`` adds missing tables, never columns).
    """

    __tablename__ = "benchmark_trials"
    __table_args__ = (UniqueConstraint(*IDENTITY_FIELDS, name="uq_benchmark_trial_identity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), unique=True)
    submission_sha256: Mapped[str] = mapped_column(String(64))
    workload_sha256: Mapped[str] = mapped_column(String(64))
    ruleset: Mapped[str] = mapped_column(String(32))
    study: Mapped[int]
    trial: Mapped[int]
    seed: Mapped[int]
    budget_sec: Mapped[float] = mapped_column(Float)
    step_cap: Mapped[int]
    benchmark_seed: Mapped[int]
    held_out_variants: Mapped[int | None]
    """Held-out variants per base the benchmark that ran it drew (NULL: stored before the
    number was an option, when it was one)."""

    trial_row: Mapped[TrialRow] = relationship()


# ------------------------------------------------------------ score snapshots


class SnapshotRow(Base):
    """One scoring of everything stored: when, from which inputs, with which settings."""

    __tablename__ = "score_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    inputs_sha256: Mapped[str] = mapped_column(String(64))
    num_trials: Mapped[int]
    bootstrap_replicates: Mapped[int]
    bootstrap_seed: Mapped[int]
    interval_level: Mapped[float] = mapped_column(Float)
    optarena_version: Mapped[str]
    time_basis: Mapped[str | None] = mapped_column(String(16))
    """Which time the snapshot scored: ``scored`` or ``wall`` (NULL: from before the choice,
    the wall clock with compile)."""

    scores: Mapped[list[SnapshotScoreRow]] = relationship(cascade="all, delete-orphan")
    workloads: Mapped[list[SnapshotWorkloadRow]] = relationship(cascade="all, delete-orphan")
    pairs: Mapped[list[SnapshotPairRow]] = relationship(cascade="all, delete-orphan")
    stability: Mapped[list[SnapshotStabilityRow]] = relationship(cascade="all, delete-orphan")
    trials: Mapped[list[SnapshotTrialRow]] = relationship(cascade="all, delete-orphan")


class SnapshotScoreRow(Base):
    """A submission's scores in one ruleset: wall-clock (with its interval), steps, FLOPs."""

    __tablename__ = "snapshot_scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("score_snapshots.id"), index=True)
    ruleset: Mapped[str]
    submission: Mapped[str]
    submission_sha256s: Mapped[str] = mapped_column(Text)
    rank: Mapped[int]
    score: Mapped[float] = mapped_column(Float)
    score_low: Mapped[float | None] = mapped_column(Float)
    score_high: Mapped[float | None] = mapped_column(Float)
    steps_score: Mapped[float | None] = mapped_column(Float)
    flops_score: Mapped[float | None] = mapped_column(Float)
    num_workloads: Mapped[int]


class SnapshotWorkloadRow(Base):
    """A submission's time on one base workload: the median over studies, after the rules,
    and normalized by the fastest."""

    __tablename__ = "snapshot_workloads"

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("score_snapshots.id"), index=True)
    ruleset: Mapped[str]
    submission: Mapped[str]
    workload: Mapped[str]
    workload_sha256s: Mapped[str] = mapped_column(Text)
    time_to_target_sec: Mapped[float | None] = mapped_column(Float)
    penalized_time_sec: Mapped[float | None] = mapped_column(Float)
    ratio: Mapped[float | None] = mapped_column(Float)
    mark: Mapped[str] = mapped_column(String(32))
    num_trials: Mapped[int]
    trials_reached: Mapped[int]


class SnapshotPairRow(Base):
    """The bootstrap probability that ``submission`` scores strictly higher than ``opponent``."""

    __tablename__ = "snapshot_pairs"

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("score_snapshots.id"), index=True)
    ruleset: Mapped[str]
    submission: Mapped[str]
    opponent: Mapped[str]
    p_outscores: Mapped[float] = mapped_column(Float)


class SnapshotStabilityRow(Base):
    """The ranking with one base workload (and its variants) left out."""

    __tablename__ = "snapshot_rank_stability"

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("score_snapshots.id"), index=True)
    ruleset: Mapped[str]
    left_out: Mapped[str]
    ranking: Mapped[str] = mapped_column(Text)
    order_changed: Mapped[bool]
    kendall_tau: Mapped[float | None] = mapped_column(Float)


class SnapshotTrialRow(Base):
    """A trial that went into the snapshot, as it was scored."""

    __tablename__ = "snapshot_trials"

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("score_snapshots.id"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    ruleset: Mapped[str]
    submission: Mapped[str]
    workload: Mapped[str]
    base_workload: Mapped[str]
    study: Mapped[int]
    trial: Mapped[int]
    seed: Mapped[int]
    status: Mapped[str] = mapped_column(String(32))
    time_to_target_sec: Mapped[float | None] = mapped_column(Float)
    steps_to_target: Mapped[float | None] = mapped_column(Float)
    flops_per_step: Mapped[float | None] = mapped_column(Float)


# ------------------------------------------------------------ the nightly job


class NightlyRunRow(Base):
    """One night: when, with which settings, the snapshot it saved and what it found."""

    __tablename__ = "nightly_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    comparison_key: Mapped[str] = mapped_column(String(64), index=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("score_snapshots.id"))
    previous_run_id: Mapped[int | None]
    tolerance: Mapped[float] = mapped_column(Float)
    regressions: Mapped[int]
    report_dir: Mapped[str] = mapped_column(Text)

    timing: Mapped[list[NightlyTimingRow]] = relationship(cascade="all, delete-orphan")
    trials: Mapped[list[NightlyTrialRow]] = relationship(cascade="all, delete-orphan")


class NightlyTimingRow(Base):
    """One of the reference submission's fixed trials, re-timed on a night."""

    __tablename__ = "nightly_timing"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("nightly_runs.id"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"))
    workload: Mapped[str]
    seed: Mapped[int]


class NightlyTrialRow(Base):
    """A benchmark trial run (not reused) on a night."""

    __tablename__ = "nightly_trials"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("nightly_runs.id"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), unique=True)
