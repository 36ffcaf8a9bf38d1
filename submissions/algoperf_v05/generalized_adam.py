"""Generalized Adam (Google's v0.5 entry): one Adam-style rule, tuned over whether to use
Nesterov momentum and whether to precondition.

With preconditioning a point is AdamW (``nesterov`` off) or NAdamW (on); without it is SGD
with heavy-ball or Nesterov momentum (``1 - beta1`` of 1 is plain SGD). Every variant has
decoupled weight decay and the baseline's warmup + cosine schedule. The entry's own five points
are not reproduced: the list below covers its four corners from the baseline's best point and
an SGD point with Nesterov momentum.
"""

from __future__ import annotations

import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.algoperf_v05.spaces import SELF_TUNING_POINT
from optarena.submissions.schedules import warmup_cosine

SGD_POINT = {
    "learning_rate": 0.1,
    "one_minus_beta1": 0.1,
    "weight_decay": 5e-4,
    "warmup_factor": 0.05,
}

SEARCH_SPACE = [
    {**SELF_TUNING_POINT, "nesterov": True, "preconditioning": True},
    {**SELF_TUNING_POINT, "nesterov": False, "preconditioning": True},
    {**SGD_POINT, "nesterov": True, "preconditioning": False},
    {**SGD_POINT, "nesterov": False, "preconditioning": False},
    {**SELF_TUNING_POINT, "learning_rate": 0.003, "nesterov": True, "preconditioning": True},
]


def generalized_adam(
    info: WorkloadInfo,
    learning_rate,
    one_minus_beta1,
    weight_decay,
    warmup_factor,
    beta2=0.999,
    nesterov=True,
    preconditioning=True,
) -> optax.GradientTransformation:
    """Adam(W), NAdam(W) or SGD with (Nesterov) momentum, on a warmup + cosine schedule."""
    beta1 = 1.0 - one_minus_beta1
    if preconditioning:
        direction = optax.scale_by_adam(beta1, beta2, eps=1e-8, nesterov=bool(nesterov))
    else:
        direction = optax.trace(decay=beta1, nesterov=bool(nesterov))
    return optax.chain(
        direction,
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(warmup_cosine(learning_rate, warmup_factor, info.step_hint)),
    )


SUBMISSION = Submission.from_builder(
    generalized_adam, SEARCH_SPACE, SEARCH_SPACE[0], name="v05_generalized_adam"
)
