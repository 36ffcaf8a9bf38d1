"""The plain-data half of a workload: what is trained, how it is judged, how long it may take.

A `WorkloadSpec` holds no JAX objects so that it can be stored with every trial,
hashed, compared and shown without importing an accelerator stack.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from enum import StrEnum
from typing import Any


class MetricMode(StrEnum):
    """Whether smaller or larger metric values are better: declared per workload, never guessed."""

    MIN = "min"
    MAX = "max"


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkloadSpec:
    """Everything the rules need to know about a workload, as plain data.

    Attributes:
      name: registry name, e.g. ``"digits_mlp"``.
      base: ``None`` for a base workload, else the name of the base this held-out variant modifies.
      family: model family, e.g. ``"mlp"``, ``"cnn"``, ``"transformer"``.
      dataset: name of the TFDS builder that provides the data.
      model: one-line description of the model.
      loss: one-line description of the training loss.
      metric: name of the target metric, a key of the workload's evaluation output.
      mode: whether the metric is minimized or maximized.
      validation_target: the validation metric value that counts as reaching the target.
      test_target: the test metric value reported next to it (never used for stopping).
      budget_sec: external-tuning time budget in timed seconds.
      step_hint: the step count a schedule may assume (AlgoPerf's ``step_hint``).
      eval_every_steps: evaluation cadence in train steps (deterministic, never in seconds).
      batch_size: default global batch size.
      eval_batch_size: batch size used to evaluate a split.
      num_train_examples: examples in the training split.
      offline: whether the data can be made here (generated or bundled); catalog datasets
        that need a download are not.
      calibrated: whether target, budget and ``step_hint`` come from baseline runs on this
        workload's real data.
      metric_bound: the best value the metric can take, if it has one (0 for an error rate);
        no target sits there, where a trial either is perfect or never reaches it.
    """

    name: str
    base: str | None = None
    family: str
    dataset: str
    model: str
    loss: str
    metric: str
    mode: MetricMode
    validation_target: float
    test_target: float
    budget_sec: float
    step_hint: int
    eval_every_steps: int
    batch_size: int
    eval_batch_size: int
    num_train_examples: int
    offline: bool = True
    calibrated: bool = True
    metric_bound: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(
                f"workload name must be alphanumeric with underscores, got {self.name=}"
            )
        if self.mode not in tuple(MetricMode):
            raise ValueError(
                f"mode must be one of {[m.value for m in MetricMode]}, got {self.mode=}"
            )
        object.__setattr__(self, "mode", MetricMode(self.mode))
        for field in ("validation_target", "test_target", "budget_sec"):
            if not math.isfinite(getattr(self, field)):
                raise ValueError(f"{field} must be finite, got {getattr(self, field)!r}")
        if self.budget_sec <= 0:
            raise ValueError(f"budget_sec must be positive, got {self.budget_sec=}")
        for field in (
            "step_hint",
            "eval_every_steps",
            "batch_size",
            "eval_batch_size",
            "num_train_examples",
        ):
            if getattr(self, field) <= 0:
                raise ValueError(f"{field} must be positive, got {getattr(self, field)!r}")

    def reached(self, value: float, *, target: float | None = None) -> bool:
        """Whether ``value`` meets ``target`` (default: the validation target), non-strictly.

        Non-finite values never meet a target.
        """
        target = self.validation_target if target is None else target
        if not math.isfinite(value):
            return False
        return value <= target if self.mode is MetricMode.MIN else value >= target

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the one stored with every trial."""
        data = dataclasses.asdict(self)
        data["mode"] = self.mode.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkloadSpec:
        return cls(**data)

    def sha256(self) -> str:
        """Stable hash of the spec: any edit of a target, budget or model gives a new hash."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
