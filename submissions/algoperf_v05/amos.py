"""Amos (Tian and Parikh, 2022): Adam-style scaling with adaptive weight decay and learning-rate
decay toward a model-oriented scale.

Each parameter has a target scale ``eta`` for its entries; for a step ``t`` with global
learning rate ``xi`` and gradient ``g``::

    v <- beta v + (1 - beta) g^2                 r = (1 - beta^t) / max(v, tiny)
    gamma = c(b) xi^2 r g^2                      c(b) = (1 + sqrt(xi) b / 4)^(-1/2)
    update = d(b) (-xi eta sqrt(r) g - (gamma / 2 + l2) theta)
                                                 d(b) = (1 + sqrt(xi eta) b / 4)^(-1)
    b <- b + gamma (1 + b)

so the step shrinks by itself (``d``) as the accumulated decay ``b`` grows: no schedule is
needed beyond a short linear warmup of ``xi``. Momentum, when set, is an EMA of the updates.
optarena gives a submission no per-parameter metadata, so ``eta`` comes from the shape: the
initialization scale ``1 / sqrt(fan_in)`` of a kernel (fan-in: every axis but the last), and
1/2 for vectors and scalars. The entry's own points are not reproduced: five points around
the paper's recommended settings.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optarena.submissions import Submission, WorkloadInfo

VECTOR_ETA = 0.5

SEARCH_SPACE = [
    {"learning_rate": 0.01, "beta": 0.98, "momentum": 0.9, "warmup_factor": 0.05},
    {"learning_rate": 0.02, "beta": 0.98, "momentum": 0.9, "warmup_factor": 0.05},
    {"learning_rate": 0.005, "beta": 0.999, "momentum": 0.9, "warmup_factor": 0.05},
    {"learning_rate": 0.01, "beta": 0.999, "momentum": 0.0, "warmup_factor": 0.02},
    {"learning_rate": 0.04, "beta": 0.99, "momentum": 0.9, "warmup_factor": 0.1},
]


class ScaleByAmosState(NamedTuple):
    """Step ``count``, second moments ``v`` and accumulated decay ``b``, per parameter."""

    count: jax.Array
    v: optax.Updates
    b: optax.Updates


def shape_eta(shape: tuple[int, ...]) -> float:
    """The expected scale of a parameter's entries, from its shape alone."""
    if len(shape) < 2:
        return VECTOR_ETA
    return 1.0 / math.sqrt(math.prod(shape[:-1]))


def scale_by_amos(
    learning_rate: float | optax.Schedule,
    beta: float = 0.999,
    extra_l2: float = 0.0,
    eta_fn=shape_eta,
    tiny: float = 2.0**-125,
) -> optax.GradientTransformation:
    """The Amos update (already scaled by the learning rate: chain nothing after it but
    momentum). ``eta_fn`` maps a parameter's shape to its target scale."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta=}")

    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return ScaleByAmosState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update_fn(updates, state, params):
        if params is None:
            raise ValueError("scale_by_amos needs the parameters")
        count = optax.safe_increment(state.count)
        xi = learning_rate(count) if callable(learning_rate) else learning_rate
        correction = 1.0 - beta**count

        def one(grad, v, b, theta):
            g2 = jnp.square(grad)
            v = beta * v + (1.0 - beta) * g2
            r = correction / jnp.maximum(v, tiny)
            gamma = jax.lax.rsqrt(1.0 + 0.25 * jnp.sqrt(xi) * b) * jnp.square(xi) * r * g2
            step_lr = xi * eta_fn(theta.shape)
            decay = 1.0 / (1.0 + 0.25 * jnp.sqrt(step_lr) * b)
            update = decay * (-step_lr * jnp.sqrt(r) * grad - (0.5 * gamma + extra_l2) * theta)
            return update, v, b + gamma * (1.0 + b)

        triples = jax.tree.map(one, updates, state.v, state.b, params)
        pick = [jax.tree.map(lambda _, t, i=i: t[i], updates, triples) for i in range(3)]
        return pick[0], ScaleByAmosState(count, pick[1], pick[2])

    return optax.GradientTransformation(init_fn, update_fn)


def amos(
    info: WorkloadInfo, learning_rate, beta, momentum, warmup_factor
) -> optax.GradientTransformation:
    """`scale_by_amos` with ``xi`` warmed up linearly, then an EMA of the updates."""
    warmup = max(int(warmup_factor * info.step_hint), 1)
    xi = optax.linear_schedule(learning_rate / warmup, learning_rate, warmup)
    tx = scale_by_amos(xi, beta)
    return optax.chain(tx, optax.ema(momentum, debias=False)) if momentum else tx


SUBMISSION = Submission.from_builder(amos, SEARCH_SPACE, SEARCH_SPACE[0], name="v05_amos")
