"""AdamW with gradient clipping on a warmup + cosine schedule that ends at a floor.

The optimizer is composed from optax pieces: clipping by global norm, Adam's scaling,
decoupled weight decay, and the learning rate from `schedules.warmup_cosine_floor`. The
default point is a complete recipe (AlgoPerf's NAdamW defaults, plus a floor at 1% of the
peak), so the submission also enters the self-tuning ruleset.
"""

from __future__ import annotations

import optax

from optarena.submissions import Hparams, SearchSpace, Submission, WorkloadInfo

from .schedules import warmup_cosine_floor

# External tuning draws points from this space (AlgoPerf's form): a log scale for the learning
# rate, ``1 - beta`` and the weight decay, a few feasible points for the rest.
SEARCH_SPACE: SearchSpace = {
    "learning_rate": {"min": 3e-4, "max": 3e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 0.02, "max": 0.2, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 1e-3, "max": 1.0, "scaling": "log"},
    "warmup_factor": {"feasible_points": [0.02, 0.05, 0.1]},
    "final_fraction": {"feasible_points": [0.0, 0.01, 0.1]},
}

# The point `optarena run` and the self-tuning ruleset use; every trial's point is completed
# from it, so ``grad_clip``, which the space leaves out, is 1.0 in every trial.
DEFAULT_HPARAMS: Hparams = {
    "learning_rate": 3e-3,
    "one_minus_beta1": 0.1,
    "beta2": 0.999,
    "weight_decay": 0.01,
    "warmup_factor": 0.05,
    "final_fraction": 0.01,
    "grad_clip": 1.0,
}


def example_adamw(
    info: WorkloadInfo,
    learning_rate: float,
    one_minus_beta1: float,
    beta2: float,
    weight_decay: float,
    warmup_factor: float,
    final_fraction: float,
    grad_clip: float,
) -> optax.GradientTransformation:
    """Build the optimizer for one trial.

    Args:
      info: what the rules let a submission know: ``step_hint`` (the steps a schedule may
        plan for), ``budget_sec``, ``batch_size``, ``num_train_examples``, ``num_devices``;
        never the workload's name or its data.
      learning_rate, one_minus_beta1, beta2, weight_decay, warmup_factor, final_fraction,
        grad_clip: one point of ``SEARCH_SPACE``, completed from ``DEFAULT_HPARAMS``.
    """
    schedule = warmup_cosine_floor(learning_rate, warmup_factor, final_fraction, info.step_hint)
    return optax.chain(
        optax.clip_by_global_norm(grad_clip),
        optax.scale_by_adam(b1=1.0 - one_minus_beta1, b2=beta2, eps=1e-8),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(schedule),
    )


# The name must be the entry point's name in pyproject.toml.
SUBMISSION = Submission.from_builder(
    example_adamw, SEARCH_SPACE, DEFAULT_HPARAMS, name="example_adamw", self_tuning=True
)
