"""SQLAlchemy 2 typed models of score snapshots: every `optarena score` run is kept, dated.

Non-finite numbers are stored as NULL; each workload row's ``mark`` says why a time did not
count (missed target, over 4x the fastest, held-out variant missed, no data).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from optarena.leaderboard.models import Base


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


SNAPSHOT_TABLES = tuple(
    model.__table__
    for model in (
        SnapshotRow,
        SnapshotScoreRow,
        SnapshotWorkloadRow,
        SnapshotPairRow,
        SnapshotStabilityRow,
        SnapshotTrialRow,
    )
)
