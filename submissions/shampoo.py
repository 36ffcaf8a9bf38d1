"""Shampoo (Gupta et al., 2018) with Adam grafting, as optax transformations.

No maintained JAX Shampoo, SOAP or PSGD installs with the JAX this project uses, so the one
piece optax lacks, the Kronecker-factored preconditioner, is written here as an optax
``GradientTransformation`` (`scale_by_shampoo`); everything around it comes from optax.

For a weight ``W`` seen as an ``m x n`` matrix (a kernel of higher rank is a matrix from its
leading axes to its last one), with gradient ``G``::

    L <- beta2 * L + (1 - beta2) * G G^T            (m x m)
    R <- beta2 * R + (1 - beta2) * G^T G            (n x n)
    direction = (L + eps_L I)^(-1/4) G (R + eps_R I)^(-1/4)

which is the full-matrix preconditioner ``(L kron R)^(-1/4)`` restricted to Kronecker form;
``eps_L = eps * max eigenvalue of L`` (likewise for R). The inverse roots are recomputed by an
eigendecomposition every ``precondition_every`` steps and reused in between. A side longer than
``max_dim`` is left unpreconditioned (identity).

As in Distributed Shampoo, the preconditioned direction is *grafted* onto Adam: per layer it
takes Adam's step length and Shampoo's direction (`graft`), then momentum, decoupled weight
decay and a warmup + cosine learning rate follow (optax). Parameters of rank below 2 (biases,
norms) train with plain AdamW on the same schedule.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.adam_space import DEFAULT_HPARAMS, SEARCH_SPACE
from optarena.submissions.schedules import warmup_cosine


class KroneckerFactors(NamedTuple):
    """One matrix's second-moment statistics and their cached inverse fourth roots.

    A side that is not preconditioned holds ``0 x 0`` arrays.
    """

    left: jax.Array
    right: jax.Array
    left_root: jax.Array
    right_root: jax.Array


class ShampooState(NamedTuple):
    """``count`` of updates so far and, per parameter, its `KroneckerFactors`."""

    count: jax.Array
    factors: Any


def _as_matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"scale_by_shampoo needs parameters of rank >= 2, got shape {shape}")
    return math.prod(shape[:-1]), shape[-1]


def _inverse_fourth_root(stat: jax.Array, eps: float) -> jax.Array:
    """``(stat + eps * max_eig * I)^(-1/4)`` of a symmetric PSD matrix, by eigendecomposition."""
    eigenvalues, eigenvectors = jnp.linalg.eigh(stat)
    eigenvalues = jnp.maximum(eigenvalues, 0.0)
    damping = eps * jnp.maximum(jnp.max(eigenvalues), jnp.finfo(stat.dtype).tiny)
    scale = (eigenvalues + damping) ** -0.25
    return (eigenvectors * scale) @ eigenvectors.T


def scale_by_shampoo(
    beta2: float = 0.999,
    eps: float = 1e-6,
    precondition_every: int = 1,
    max_dim: int = 1024,
) -> optax.GradientTransformation:
    """Precondition each (rank >= 2) gradient by Shampoo's Kronecker-factored inverse roots.

    Args:
      beta2: decay of the exponential moving averages of ``G G^T`` and ``G^T G``.
      eps: damping, relative to each statistic's largest eigenvalue.
      precondition_every: recompute the inverse roots every this many steps (the first
        update always computes them).
      max_dim: sides longer than this are not preconditioned.

    Returns:
      An optax ``GradientTransformation`` whose state is a `ShampooState`.
    """
    if not 0.0 <= beta2 < 1.0:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2=}")
    if not eps > 0.0:
        raise ValueError(f"eps must be positive, got {eps=}")
    if precondition_every < 1:
        raise ValueError(f"precondition_every must be at least 1, got {precondition_every=}")

    def side(size: int, dtype) -> jax.Array:
        return jnp.zeros((size, size) if size <= max_dim else (0, 0), dtype)

    def init_fn(params):
        def factors(param):
            rows, cols = _as_matrix_shape(param.shape)
            return KroneckerFactors(
                left=side(rows, param.dtype),
                right=side(cols, param.dtype),
                left_root=side(rows, param.dtype),
                right_root=side(cols, param.dtype),
            )

        return ShampooState(count=jnp.zeros([], jnp.int32), factors=jax.tree.map(factors, params))

    def update_fn(updates, state, params=None):
        del params
        refresh = state.count % precondition_every == 0

        def precondition(grad, factors: KroneckerFactors):
            matrix = grad.reshape(_as_matrix_shape(grad.shape))
            left, right = factors.left, factors.right
            if left.size:
                left = beta2 * left + (1.0 - beta2) * matrix @ matrix.T
            if right.size:
                right = beta2 * right + (1.0 - beta2) * matrix.T @ matrix

            def roots():
                return (
                    _inverse_fourth_root(left, eps) if left.size else factors.left_root,
                    _inverse_fourth_root(right, eps) if right.size else factors.right_root,
                )

            left_root, right_root = jax.lax.cond(
                refresh, roots, lambda: (factors.left_root, factors.right_root)
            )
            direction = matrix
            if left.size:
                direction = left_root @ direction
            if right.size:
                direction = direction @ right_root
            return direction.reshape(grad.shape), KroneckerFactors(
                left, right, left_root, right_root
            )

        pairs = jax.tree.map(precondition, updates, state.factors)
        directions = jax.tree.map(lambda _, pair: pair[0], updates, pairs)
        factors = jax.tree.map(lambda _, pair: pair[1], updates, pairs)
        return directions, ShampooState(count=state.count + 1, factors=factors)

    return optax.GradientTransformation(init_fn, update_fn)


class GraftState(NamedTuple):
    """The states of the transformation giving the step length and of the one giving the
    direction."""

    magnitude: Any
    direction: Any


def graft(
    magnitude: optax.GradientTransformation, direction: optax.GradientTransformation
) -> optax.GradientTransformation:
    """Per parameter, ``direction``'s update rescaled to the norm of ``magnitude``'s update.

    Grafting (Agarwal et al., 2020) lets a preconditioner choose where to go while a well
    understood optimizer, Adam here, decides how far: its learning rate and schedule carry over.
    """

    def init_fn(params):
        return GraftState(magnitude.init(params), direction.init(params))

    def update_fn(updates, state, params=None):
        steps, magnitude_state = magnitude.update(updates, state.magnitude, params)
        directions, direction_state = direction.update(updates, state.direction, params)

        def rescale(step, toward):
            step_norm = jnp.linalg.norm(step.ravel())
            toward_norm = jnp.linalg.norm(toward.ravel())
            return jnp.where(toward_norm > 0, toward * (step_norm / toward_norm), step)

        grafted = jax.tree.map(rescale, steps, directions)
        return grafted, GraftState(magnitude_state, direction_state)

    return optax.GradientTransformation(init_fn, update_fn)


PRECONDITION_EVERY = 10
MATRIX_EPS = 1e-6


def _rank_labels(params: Any) -> Any:
    return jax.tree.map(lambda p: "shampoo" if p.ndim >= 2 else "adamw", params)


def adam_grafted(
    preconditioner: optax.GradientTransformation,
    schedule: optax.Schedule,
    beta1: float,
    beta2: float,
    weight_decay: float,
) -> optax.GradientTransformation:
    """``preconditioner``'s direction on matrices, with momentum, grafted onto Adam's step
    length, then decoupled weight decay and ``schedule``; AdamW on parameters of rank below 2.

    The recipe around Shampoo's preconditioner, for any preconditioner of rank >= 2 gradients.
    """
    matrices = optax.chain(
        graft(
            magnitude=optax.scale_by_adam(b1=beta1, b2=beta2, eps=1e-8),
            direction=optax.chain(preconditioner, optax.ema(beta1, debias=True)),
        ),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(schedule),
    )
    others = optax.adamw(schedule, b1=beta1, b2=beta2, eps=1e-8, weight_decay=weight_decay)
    return optax.partition({"shampoo": matrices, "adamw": others}, _rank_labels)


def shampoo(
    info: WorkloadInfo, learning_rate, one_minus_beta1, beta2, weight_decay, warmup_factor
) -> optax.GradientTransformation:
    """Adam-grafted Shampoo on matrices, AdamW elsewhere, on a warmup + cosine schedule."""
    return adam_grafted(
        scale_by_shampoo(beta2, MATRIX_EPS, precondition_every=PRECONDITION_EVERY),
        warmup_cosine(learning_rate, warmup_factor, info.step_hint),
        1.0 - one_minus_beta1,
        beta2,
        weight_decay,
    )


SUBMISSION = Submission.from_builder(shampoo, SEARCH_SPACE, DEFAULT_HPARAMS)
