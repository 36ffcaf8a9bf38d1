"""What a trial produces, as plain data: no JAX here, so the store and scoring can read it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any


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
class EvalPoint:
    """One evaluation: where training stood and what the metrics were."""

    step: int
    examples: int
    timed_sec: float
    train_loss: float
    validation: Mapping[str, float]
    test: Mapping[str, float]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialResult:
    """The outcome of one trial; times are timed seconds (compile included, evals excluded)."""

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

    @property
    def reached(self) -> bool:
        return self.status is TrialStatus.REACHED

    @classmethod
    def failed(cls, status: TrialStatus, reason: str, *, timed_sec: float = 0.0) -> TrialResult:
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
            compile_sec=0.0,
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


NOT_REACHED_TIME = math.inf
