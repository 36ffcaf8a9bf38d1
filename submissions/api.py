"""The submission contract: an optax factory plus, optionally, a search space and hooks.

A submission module exposes ``SUBMISSION = Submission(...)``. The harness owns
gradients, jit, sharding and ``optax.apply_updates``; a submission only says how
to turn hyperparameters into an ``optax.GradientTransformation``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optax

Hparams = Mapping[str, Any]
"""One point of a search space: hyperparameter name -> value."""

SearchSpace = Mapping[str, Mapping[str, Any]] | Sequence[Hparams]
"""AlgoPerf's form: ``{name: {"min", "max", "scaling"}}`` / ``{name: {"feasible_points"}}``,
or a list of fixed points."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkloadInfo:
    """What the rules let a submission know about a workload: never its name.

    Attributes:
      step_hint: steps a schedule may plan for (AlgoPerf's ``step_hint``).
      budget_sec: the trial's time budget in timed seconds.
      batch_size: the global batch size the trial runs with.
      num_train_examples: size of the training split.
      num_devices: devices the batch is sharded over.
    """

    step_hint: int
    budget_sec: float
    batch_size: int
    num_train_examples: int
    num_devices: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Submission:
    """A training algorithm, as the harness sees it.

    Attributes:
      name: short identifier shown on the leaderboard.
      make_optimizer: ``(hparams | None, info) -> optax.GradientTransformation``; ``hparams`` is
        ``None`` under the self-tuning ruleset.
      search_space: external-tuning search space, ``None`` for a self-tuning-only submission.
      default_hparams: the point ``optarena run`` uses when no hyperparameters are given.
      self_tuning: ``True`` when ``make_optimizer(None, info)`` builds the submission's complete
        recipe with nothing left to tune, so that it can enter the self-tuning ruleset (which
        calls it that way). Without a search space it is the only way a ruleset can run the
        submission; ``optarena check`` reports a submission that has neither.
      batch_size: optional ``(info) -> int`` choosing the global batch size.
      eval_params: optional ``(opt_state, params) -> params`` giving the parameters to evaluate
        (e.g. the averaged point of schedule-free methods); its time counts as training time.
    """

    name: str
    make_optimizer: Callable[[Hparams | None, WorkloadInfo], optax.GradientTransformation]
    search_space: SearchSpace | None = None
    default_hparams: Hparams | None = None
    self_tuning: bool = False
    batch_size: Callable[[WorkloadInfo], int] | None = None
    eval_params: Callable[[Any, Any], Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"submission name must be a non-empty string, got {self.name!r}")
        if not callable(self.make_optimizer):
            raise TypeError(f"make_optimizer must be callable, got {self.make_optimizer!r}")
        if not isinstance(self.self_tuning, bool):
            raise TypeError(f"self_tuning must be True or False, got {self.self_tuning!r}")
        for hook in ("batch_size", "eval_params"):
            value = getattr(self, hook)
            if value is not None and not callable(value):
                raise TypeError(f"{hook} must be callable or None, got {value!r}")
