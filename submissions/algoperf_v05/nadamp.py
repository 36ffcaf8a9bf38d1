"""NadamP: NAdamW with one more tunable hyperparameter, the power ``p`` of its denominator.

The update is NAdamW's with the bias-corrected second moment raised to ``p`` instead of 1/2,
as in partially adaptive Adam (Padam, Chen et al., 2020)::

    m <- beta1 m + (1 - beta1) g          v <- beta2 v + (1 - beta2) g^2
    m_hat = beta1 m / (1 - beta1^(t+1)) + (1 - beta1) g / (1 - beta1^t)    (Nesterov)
    v_hat = v / (1 - beta2^t)
    direction = m_hat / (v_hat^p + eps)

``p = 1/2`` is NAdamW exactly. Decoupled weight decay and the baseline's warmup + cosine
schedule follow. The entry's own five points are not reproduced: the baseline's points with
``p`` 1/2, one of them at ``p = 0.45``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.algoperf_v05.spaces import BASELINE_POINTS, SELF_TUNING_POINT
from optarena.submissions.schedules import warmup_cosine


class ScaleByNadamPState(NamedTuple):
    """Step ``count`` and the first (``mu``) and second (``nu``) moments."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def scale_by_nadamp(
    b1: float = 0.9, b2: float = 0.999, p: float = 0.5, eps: float = 1e-8
) -> optax.GradientTransformation:
    """NAdam's direction with the second moment raised to ``p`` (1/2: ``scale_by_adam`` with
    ``nesterov=True``)."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p=}")

    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return ScaleByNadamPState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        mu = optax.tree.update_moment(updates, state.mu, b1, 1)
        nu = optax.tree.update_moment(updates, state.nu, b2, 2)
        count = optax.safe_increment(state.count)
        mu_hat = jax.tree.map(
            lambda m, g: b1 * m / (1.0 - b1 ** (count + 1)) + (1.0 - b1) * g / (1.0 - b1**count),
            mu,
            updates,
        )
        nu_hat = optax.tree.bias_correction(nu, b2, count)
        direction = jax.tree.map(lambda m, v: m / (v**p + eps), mu_hat, nu_hat)
        return direction, ScaleByNadamPState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def nadamp(
    info: WorkloadInfo,
    learning_rate,
    one_minus_beta1,
    beta2,
    weight_decay,
    warmup_factor,
    p=0.5,
) -> optax.GradientTransformation:
    """`scale_by_nadamp`, decoupled weight decay, warmup + cosine schedule."""
    return optax.chain(
        scale_by_nadamp(1.0 - one_minus_beta1, beta2, p),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(warmup_cosine(learning_rate, warmup_factor, info.step_hint)),
    )


SEARCH_SPACE = [
    {**point, "p": 0.45 if index == 2 else 0.5} for index, point in enumerate(BASELINE_POINTS)
]

SUBMISSION = Submission.from_builder(
    nadamp, SEARCH_SPACE, {**SELF_TUNING_POINT, "p": 0.5}, name="v05_nadamp"
)
