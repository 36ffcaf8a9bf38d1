"""CASPR (Duvvuri et al., 2024): Shampoo's statistics combined as a Kronecker *sum*.

For a matrix gradient ``G`` with Shampoo's statistics ``L`` and ``R`` (see
`optarena.submissions.shampoo`) and their damped inverse fourth roots ``Lr`` and ``Rr``::

    J = Lr G + G Rr
    direction = Lr J + J Rr          ( = (Lr (+) Rr)^2 vec(G), a Kronecker sum )

which preconditions each axis on its own and both together, where Shampoo takes the product
``Lr G Rr``. As in the entry, the direction is grafted onto Adam's step length, followed by
momentum, decoupled weight decay and the baseline's warmup + cosine schedule; parameters of
rank below 2 train with AdamW. The entry's adaptive choice of which matrices to precondition
is not reproduced (every matrix with both sides up to 1024 is), and it is tuned over the
baseline's five points.
"""

from __future__ import annotations

import jax
import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.algoperf_v05.spaces import BASELINE_POINTS, SELF_TUNING_POINT
from optarena.submissions.schedules import warmup_cosine
from optarena.submissions.shampoo import (
    MATRIX_EPS,
    PRECONDITION_EVERY,
    KroneckerFactors,
    adam_grafted,
    scale_by_shampoo,
)


def scale_by_caspr(
    beta2: float = 0.999,
    eps: float = 1e-6,
    precondition_every: int = 1,
    max_dim: int = 1024,
) -> optax.GradientTransformation:
    """CASPR's direction from `scale_by_shampoo`'s statistics and roots (same arguments and
    state); a matrix with a side longer than ``max_dim`` keeps Shampoo's one-sided direction."""
    shampoo = scale_by_shampoo(beta2, eps, precondition_every, max_dim)

    def update_fn(updates, state, params=None):
        one_sided, state = shampoo.update(updates, state, params)

        def combine(grad, fallback, factors: KroneckerFactors):
            left, right = factors.left_root, factors.right_root
            if not (left.size and right.size):
                return fallback
            matrix = grad.reshape(left.shape[0], right.shape[0])
            joint = left @ matrix + matrix @ right
            return (left @ joint + joint @ right).reshape(grad.shape)

        return jax.tree.map(combine, updates, one_sided, state.factors), state

    return optax.GradientTransformation(shampoo.init, update_fn)


def caspr_adaptive(
    info: WorkloadInfo, learning_rate, one_minus_beta1, beta2, weight_decay, warmup_factor
) -> optax.GradientTransformation:
    """Adam-grafted CASPR on matrices, AdamW elsewhere, on a warmup + cosine schedule."""
    schedule = warmup_cosine(learning_rate, warmup_factor, info.step_hint)
    caspr = scale_by_caspr(beta2, MATRIX_EPS, precondition_every=PRECONDITION_EVERY)
    return adam_grafted(caspr, schedule, 1.0 - one_minus_beta1, beta2, weight_decay)


SUBMISSION = Submission.from_builder(
    caspr_adaptive, BASELINE_POINTS, SELF_TUNING_POINT, name="v05_caspr_adaptive"
)
