"""Schedule-Free Prodigy: Prodigy's estimated step size inside schedule-free averaging.

``optax.contrib.prodigy`` (without momentum, as schedule-free requires of its base) sets the
step from its running estimate of the distance to the solution; ``optax.contrib.schedule_free``
supplies the momentum by interpolation and the average that is evaluated (``eval_params``).
Only a linear warmup of the learning-rate multiplier over ``warmup_factor * step_hint`` steps
remains. Its five points vary ``beta1``, ``beta2``, weight decay and the warmup around the
authors' defaults; the entry's own points are not reproduced. (It reached no target in
v0.5, scoring 0.)
"""

from __future__ import annotations

import optax
import optax.contrib

from optarena.submissions import Submission, WorkloadInfo

SEARCH_SPACE = [
    {"one_minus_beta1": 0.1, "beta2": 0.999, "weight_decay": 0.0, "warmup_factor": 0.05},
    {"one_minus_beta1": 0.1, "beta2": 0.99, "weight_decay": 0.01, "warmup_factor": 0.05},
    {"one_minus_beta1": 0.05, "beta2": 0.999, "weight_decay": 0.01, "warmup_factor": 0.02},
    {"one_minus_beta1": 0.1, "beta2": 0.999, "weight_decay": 0.1, "warmup_factor": 0.1},
    {"one_minus_beta1": 0.02, "beta2": 0.995, "weight_decay": 0.05, "warmup_factor": 0.05},
]


def schedule_free_prodigy(
    info: WorkloadInfo, one_minus_beta1, beta2, weight_decay, warmup_factor, learning_rate=1.0
) -> optax.GradientTransformation:
    """``schedule_free(prodigy)`` with a warmed-up learning-rate multiplier."""
    warmup = max(int(warmup_factor * info.step_hint), 1)
    schedule = optax.linear_schedule(0.0, learning_rate, warmup)
    base = optax.contrib.prodigy(
        schedule, betas=(0.0, beta2), weight_decay=weight_decay, safeguard_warmup=True
    )
    return optax.contrib.schedule_free(base, schedule, b1=1.0 - one_minus_beta1)


SUBMISSION = Submission.from_builder(
    schedule_free_prodigy,
    SEARCH_SPACE,
    SEARCH_SPACE[0],
    name="v05_schedule_free_prodigy",
    eval_params=optax.contrib.schedule_free_eval_params,
)
