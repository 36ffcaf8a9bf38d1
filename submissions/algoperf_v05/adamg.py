"""AdamG (Pang et al., 2024): Adam with the "golden step size", parameter-free (self-tuning).

The numerator of Adam's step is rescaled per coordinate by ``r``, a moving average of the
golden step size ``p v^q`` of AdaGrad-Norm, and the base step decays as ``1 / sqrt(t)``::

    v <- beta2 v + (1 - beta2) g^2
    r <- beta3 r + (1 - beta3) p v^q
    m <- beta1 m + (1 - beta1) r g
    update = -min(1, 1 / sqrt(t)) (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

with the paper's defaults ``p = 0.2``, ``q = 0.24``, ``beta1 = 0.95``, ``beta2 = 0.999``,
``beta3 = 0.95``. Nothing is tuned.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optarena.submissions import Submission, WorkloadInfo


class ScaleByAdamGState(NamedTuple):
    """Step ``count``, first moment ``mu``, second moment ``nu`` and golden step ``r``."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    r: optax.Updates


def scale_by_adamg(
    b1: float = 0.95,
    b2: float = 0.999,
    b3: float = 0.95,
    p: float = 0.2,
    q: float = 0.24,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    """AdamG's direction, before the ``min(1, 1 / sqrt(t))`` step size."""

    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return ScaleByAdamGState(jnp.zeros([], jnp.int32), zeros, zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        nu = optax.tree.update_moment(updates, state.nu, b2, 2)
        r = jax.tree.map(lambda r, v: b3 * r + (1.0 - b3) * p * v**q, state.r, nu)
        mu = jax.tree.map(lambda m, r, g: b1 * m + (1.0 - b1) * r * g, state.mu, r, updates)
        mu_hat = optax.tree.bias_correction(mu, b1, count)
        nu_hat = optax.tree.bias_correction(nu, b2, count)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu_hat, nu_hat)
        return direction, ScaleByAdamGState(count, mu, nu, r)

    return optax.GradientTransformation(init_fn, update_fn)


def golden_step(count: jax.Array) -> jax.Array:
    """``min(1, 1 / sqrt(t))`` for the ``t = count + 1``-th update."""
    return jnp.minimum(1.0, jax.lax.rsqrt(count + 1.0))


def adamg(info: WorkloadInfo) -> optax.GradientTransformation:
    """AdamG with its paper's defaults."""
    del info
    return optax.chain(scale_by_adamg(), optax.scale_by_learning_rate(golden_step))


SUBMISSION = Submission.from_builder(adamg, name="v05_adamg", self_tuning=True)
