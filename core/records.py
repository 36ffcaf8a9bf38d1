"""The plain records a trial is described by, shared by the harness, the store and scoring.

Three things, each one record: what a trial is (`Trial`: the submission's identity, the
workload's spec, the settings it runs with and, for a benchmark trial, its place in the
benchmark), what it produced (`TrialResult` with its `EvalPoint`s) and where it ran
(`Provenance`, with start and end in `FinishedTrial`). Executors yield `FinishedTrial`s; the
store takes them whole. Nothing here imports JAX or SQLAlchemy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from optarena.workloads.spec import WorkloadSpec


class Ruleset(StrEnum):
    """How a benchmark chooses hyperparameters: AlgoPerf's two rulesets, and the main job's."""

    EXTERNAL = "external"
    """Hyperparameters sampled from the submission's search space; several trials per study."""
    SELF = "self"
    """No hyperparameters (``make_optimizer(None, info)``), a longer budget, one trial per study."""
    DEFAULT_POINT = "default"
    """Each submission at its default point, seeds as studies: the main job (`optarena
    quickstart`). It ranks default points against calibrated targets, not algorithms."""


class TrialStatus(StrEnum):
    """How a trial ended."""

    REACHED = "reached"
    """The validation target was met within the budget."""
    NOT_REACHED = "not_reached"
    """The budget (or a step cap) ran out first."""
    DIVERGED = "diverged"
    """The training or validation loss became NaN or infinite."""
    ERROR = "error"
    """The trial raised (the submission's code, or anything else in the trial's process)."""
    TIMEOUT = "timeout"
    """The trial ran past its wall-clock limit (budget times a safety margin, plus setup) and
    was killed."""
    OOM = "oom"
    """The trial ran out of memory: a ``MemoryError``, XLA's ``RESOURCE_EXHAUSTED``, or its
    process killed by the kernel before it returned a result."""


FAILED_STATUSES = frozenset({TrialStatus.ERROR, TrialStatus.TIMEOUT, TrialStatus.OOM})
"""Statuses of trials that did not run to an outcome; like ``diverged`` they never reach a
target, so their time to target is infinite."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SubmissionRef:
    """Which code a trial ran: the submission's name, where it came from and its source hash.

    ``reference`` loads the same submission again from any working directory (a built-in or
    plugin name, or an absolute ``.py`` path); ``origin`` is what the store shows
    (``builtin:NAME``, ``entry_point:MODULE``, or the path).
    """

    name: str
    reference: str
    origin: str
    source_sha256: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialConfig:
    """The settings that, with the workload and the submission, fully determine a trial."""

    seed: int
    hparams: Mapping[str, Any] | None
    budget_sec: float
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if not self.budget_sec > 0:
            raise ValueError(f"budget_sec must be positive, got {self.budget_sec=}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {self.max_steps=}")
        for name, value in (self.hparams or {}).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"hyperparameter {name} must be a finite number, got {value}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchmarkPlace:
    """Where a benchmark trial sits: its ruleset, study and trial index, the benchmark's seed
    (from which its held-out draw, points and trial seed derive) and how many held-out
    variants per base the benchmark drew (not part of the trial's identity: a base trial is
    the same trial whatever the draw around it)."""

    ruleset: Ruleset
    study: int
    trial: int
    benchmark_seed: int
    held_out_variants: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ruleset", Ruleset(self.ruleset))


IDENTITY_FIELDS = (
    "submission_sha256",
    "workload_sha256",
    "ruleset",
    "study",
    "trial",
    "seed",
    "budget_sec",
    "step_cap",
)
"""What makes two benchmark trials the same trial, in the order of `Trial.identity`."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Trial:
    """One trial, as plain data: everything an executor needs to run it anywhere.

    A trial with a ``place`` is a benchmark trial; its `identity` is unique in the store, so a
    rerun of the same benchmark recognises it and an edited submission or spec is a new trial.
    """

    submission: SubmissionRef
    spec: WorkloadSpec
    config: TrialConfig
    place: BenchmarkPlace | None = None

    @property
    def workload(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        where = ""
        if self.place is not None and self.place.ruleset is not Ruleset.DEFAULT_POINT:
            where = f", study {self.place.study} trial {self.place.trial}"
        return f"{self.submission.name} on {self.spec.name}{where} (seed {self.config.seed})"

    @property
    def identity(self) -> tuple[Any, ...]:
        """The values of `IDENTITY_FIELDS`; a step cap of 0 means uncapped (SQL unique
        constraints treat NULLs as all distinct)."""
        if self.place is None:
            raise ValueError(f"{self.label} is not a benchmark trial: it has no identity")
        return (
            self.submission.source_sha256,
            self.spec.sha256(),
            self.place.ruleset.value,
            self.place.study,
            self.place.trial,
            self.config.seed,
            float(self.config.budget_sec),
            self.config.max_steps or 0,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalPoint:
    """One evaluation: where training stood and what the metrics were."""

    step: int
    examples: int
    timed_sec: float
    """Scored training seconds so far: ``step`` times the trial's step time (see
    `optarena.harness.runner`)."""
    train_loss: float
    validation: Mapping[str, float]
    test: Mapping[str, float]
    wall_sec: float = math.nan
    """Wall-clock seconds of the training segments so far (NaN where not recorded)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialResult:
    """The outcome of one trial.

    ``time_to_target_sec`` and ``timed_sec`` are scored seconds: steps times the trial's step
    time ``step_sec``, the median seconds per step over its evaluation segments after the first
    (compile and evaluations excluded). ``wall_time_to_target_sec`` is AlgoPerf's time, the raw
    wall clock: compile plus the training segments up to the target; ``wall_sec`` the segments'
    total.
    """

    status: TrialStatus
    reason: str
    time_to_target_sec: float
    steps_to_target: int | None
    examples_to_target: int | None
    timed_sec: float
    compile_sec: float
    num_steps: int
    batch_size: int
    num_devices: int
    device_kind: str
    flops_per_step: float | None
    eval_points: tuple[EvalPoint, ...]
    wall_time_to_target_sec: float = math.inf
    wall_sec: float = math.nan
    step_sec: float = math.nan

    @property
    def reached(self) -> bool:
        return self.status is TrialStatus.REACHED

    @classmethod
    def failed(
        cls, status: TrialStatus, reason: str, *, timed_sec: float = 0.0, compile_sec: float = 0.0
    ) -> TrialResult:
        """The result of a trial that stopped without an outcome (error, timeout, oom).

        Nothing of its training is known: no steps, no evaluations, time to target infinite.
        """
        if status not in FAILED_STATUSES:
            raise ValueError(f"not a failure status: {status!r}")
        return cls(
            status=status,
            reason=reason,
            time_to_target_sec=math.inf,
            steps_to_target=None,
            examples_to_target=None,
            timed_sec=timed_sec,
            compile_sec=compile_sec,
            num_steps=0,
            batch_size=0,
            num_devices=0,
            device_kind="unknown",
            flops_per_step=None,
            eval_points=(),
        )

    def summary(self) -> dict[str, Any]:
        """The scalar fields, JSON-ready (infinity as ``math.inf``)."""
        fields = dataclasses.asdict(self)
        fields.pop("eval_points")
        fields["status"] = self.status.value
        return fields


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
class FinishedTrial:
    """A trial that ran: what it was, what it produced, where and when (UTC)."""

    trial: Trial
    result: TrialResult
    provenance: Provenance
    started_at: dt.datetime
    finished_at: dt.datetime

    @property
    def wall_sec(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()
