"""SQLAlchemy 2 typed models of what the leaderboard keeps; ORM objects stay in `leaderboard/`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


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
    __table_args__ = (
        UniqueConstraint(
            "submission_sha256",
            "workload_sha256",
            "ruleset",
            "study",
            "trial",
            "seed",
            "budget_sec",
            "step_cap",
            name="uq_benchmark_trial_identity",
        ),
    )

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

    trial_row: Mapped[TrialRow] = relationship()
