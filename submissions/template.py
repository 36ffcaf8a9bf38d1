"""A submission to copy: rename the file and ``name``, then edit the builder.

    cp submissions/template.py my_optimizer.py
    optarena check my_optimizer.py
    optarena run --workload digits_mlp --submission my_optimizer.py

A submission is this one file: a builder that composes an optax optimizer, a search space for
the external-tuning ruleset and, optionally, hooks. The harness owns gradients, ``jit``,
sharding and ``optax.apply_updates``; compose your optimizer from optax pieces
(``optax.chain``, ``optax.scale_by_adam``, ``optax.contrib``, ...) or write a
``GradientTransformation`` whose ``init`` and ``update`` are pure functions of arrays.
"""

from __future__ import annotations

import optax

from optarena.submissions import Hparams, SearchSpace, Submission, WorkloadInfo, with_defaults
from optarena.submissions.schedules import warmup_cosine

# External tuning draws points from this space (AlgoPerf's form): log scale for learning
# rates and weight decay, ``1 - beta`` on a log scale, a few feasible points for the rest.
SEARCH_SPACE: SearchSpace = {
    "learning_rate": {"min": 3e-4, "max": 3e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 0.02, "max": 0.2, "scaling": "log"},
    "weight_decay": {"min": 1e-3, "max": 1.0, "scaling": "log"},
    "warmup_factor": {"feasible_points": [0.02, 0.05, 0.1]},
}

# The point `optarena run` uses, and what a trial's point is completed from.
DEFAULT_HPARAMS: Hparams = {
    "learning_rate": 3e-3,
    "one_minus_beta1": 0.1,
    "weight_decay": 0.01,
    "warmup_factor": 0.05,
}


def my_optimizer(
    info: WorkloadInfo, learning_rate, one_minus_beta1, weight_decay, warmup_factor
) -> optax.GradientTransformation:
    """Build the optimizer for one trial.

    Args:
      info: what the rules let you know: ``step_hint`` (steps a schedule may plan for),
        ``budget_sec``, ``batch_size``, ``num_train_examples``, ``num_devices``; never the
        workload's name or its data.
      learning_rate, one_minus_beta1, weight_decay, warmup_factor: one point of
        ``SEARCH_SPACE``, completed from ``DEFAULT_HPARAMS`` (all of it under the self-tuning
        ruleset, which gives no point).
    """
    return optax.chain(
        optax.scale_by_adam(b1=1.0 - one_minus_beta1),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(warmup_cosine(learning_rate, warmup_factor, info.step_hint)),
    )


SUBMISSION = Submission(
    name="my_optimizer",
    # with_defaults fills a trial's point from DEFAULT_HPARAMS and rejects unknown names.
    make_optimizer=with_defaults(my_optimizer, DEFAULT_HPARAMS),
    search_space=SEARCH_SPACE,
    default_hparams=DEFAULT_HPARAMS,
    # True if the default point is a complete recipe (enters the self-tuning ruleset).
    self_tuning=False,
    # Optional hooks:
    # batch_size=lambda info: 256,                  # choose the global batch size
    # eval_params=lambda opt_state, params: params, # evaluate e.g. an averaged point
)
