"""The submission contract: an optax factory plus, optionally, a search space and hooks.

A submission module exposes ``SUBMISSION = Submission(...)``. The harness owns
gradients, jit, sharding and ``optax.apply_updates``; a submission only says how
to turn hyperparameters into an ``optax.GradientTransformation``. `with_defaults`
turns a builder taking the hyperparameters as keyword arguments into that factory.
"""

from __future__ import annotations

import dataclasses
import inspect
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

    @classmethod
    def from_builder(
        cls,
        build: Callable[..., optax.GradientTransformation],
        search_space: SearchSpace | None = None,
        default_hparams: Hparams | None = None,
        **fields: Any,
    ) -> Submission:
        """The submission whose ``make_optimizer`` is ``with_defaults(build, default_hparams)``,
        named after ``build`` unless ``fields`` give a ``name``.

        ``fields`` are the other fields (``name``, ``self_tuning``, hooks), so that a submission
        is a builder and this one line.
        """
        fields.setdefault("name", getattr(build, "__name__", ""))
        return cls(
            make_optimizer=with_defaults(build, default_hparams or {}),
            search_space=search_space,
            default_hparams=default_hparams,
            **fields,
        )

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


def with_defaults(
    build: Callable[..., optax.GradientTransformation], defaults: Hparams
) -> Callable[[Hparams | None, WorkloadInfo], optax.GradientTransformation]:
    """A ``make_optimizer`` that calls ``build(info, **point)``, where ``point`` is ``defaults``
    updated by the trial's hyperparameters (``defaults`` alone when they are ``None``).

    This is the one place where a point is completed, so that a builder names its
    hyperparameters as arguments and never merges dictionaries. A name that ``build`` does not
    take, or one it needs that neither gives, raises a ``ValueError`` naming it instead of being
    dropped or failing inside ``build``; a builder with ``**kwargs`` takes any name.
    """
    parameters = list(inspect.signature(build).parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(f"build must take the WorkloadInfo as its first argument, got {build!r}")
    parameters = parameters[1:]
    named = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = {p.name for p in parameters if p.name in named and p.default is p.empty}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters)
    where = getattr(build, "__name__", repr(build))

    def check_names(point: Hparams) -> None:
        unknown = [] if open_ended else sorted(set(point) - set(named))
        if unknown:
            raise ValueError(
                f"{where}: unknown hyperparameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(named) or 'none'}"
            )

    check_names(defaults)

    def make_optimizer(hparams: Hparams | None, info: WorkloadInfo) -> optax.GradientTransformation:
        point = {**defaults, **(hparams or {})}
        check_names(point)
        missing = sorted(required - set(point))
        if missing:
            raise ValueError(f"{where}: no value for hyperparameter(s) {', '.join(missing)}")
        return build(info, **point)

    make_optimizer.__doc__ = build.__doc__
    return make_optimizer
