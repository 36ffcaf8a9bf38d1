"""Shampoo's Kronecker-factored preconditioner against a dense full-matrix reference in numpy."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
import scipy.linalg

from optarena.submissions import shampoo

BETA2 = 0.9
EPS = 1e-3


def dense_reference(gradients: list[np.ndarray], beta2: float, eps: float) -> list[np.ndarray]:
    """Shampoo's directions computed from the dense ``mn x mn`` preconditioner.

    ``(L kron R)^(-1/4)`` applied to the row-major ``vec(G)`` is what the Kronecker form
    ``L^(-1/4) G R^(-1/4)`` computes without ever forming the product; here the product is formed
    and its power taken by scipy, independently of the eigendecomposition in `shampoo`.
    """
    rows, cols = gradients[0].shape
    left, right = np.zeros((rows, rows)), np.zeros((cols, cols))
    directions = []
    for grad in gradients:
        left = beta2 * left + (1 - beta2) * grad @ grad.T
        right = beta2 * right + (1 - beta2) * grad.T @ grad
        damped_left = left + eps * np.linalg.eigvalsh(left).max() * np.eye(rows)
        damped_right = right + eps * np.linalg.eigvalsh(right).max() * np.eye(cols)
        full = np.kron(damped_left, damped_right)
        root = np.real(scipy.linalg.fractional_matrix_power(full, -0.25))
        directions.append((root @ grad.reshape(-1)).reshape(rows, cols))
    return directions


def run(tx: optax.GradientTransformation, params: dict, gradients: list[dict]) -> list[dict]:
    state = tx.init(params)
    update_fn = jax.jit(tx.update)
    out = []
    for grad in gradients:
        update, state = update_fn(grad, state, params)
        out.append({k: np.asarray(v, np.float64) for k, v in update.items()})
    return out


def test_kronecker_preconditioner_matches_the_dense_reference():
    rng = np.random.default_rng(0)
    shapes = {"matrix": (3, 4), "conv": (2, 3, 5)}  # a rank-3 kernel is a 6 x 5 matrix
    params = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    gradients = [
        {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()} for _ in range(4)
    ]
    tx = shampoo.scale_by_shampoo(beta2=BETA2, eps=EPS, precondition_every=1)
    got = run(tx, params, gradients)
    for key, shape in shapes.items():
        matrices = [g[key].astype(np.float64).reshape(-1, shape[-1]) for g in gradients]
        expected = dense_reference(matrices, BETA2, EPS)
        for step, (g, e) in enumerate(zip(got, expected, strict=True)):
            np.testing.assert_allclose(
                g[key].reshape(e.shape), e, rtol=2e-3, atol=1e-5, err_msg=f"{key} step {step}"
            )


def test_roots_are_reused_between_refreshes():
    rng = np.random.default_rng(1)
    params = {"matrix": np.zeros((3, 4), np.float32)}
    gradients = [{"matrix": rng.normal(size=(3, 4)).astype(np.float32)} for _ in range(3)]
    every_two = run(shampoo.scale_by_shampoo(BETA2, EPS, precondition_every=2), params, gradients)
    every_one = run(shampoo.scale_by_shampoo(BETA2, EPS, precondition_every=1), params, gradients)
    np.testing.assert_allclose(every_two[0]["matrix"], every_one[0]["matrix"], rtol=1e-5)
    # The second update applies the first update's roots to the second gradient ...
    g0, g1 = (g["matrix"].astype(np.float64) for g in gradients[:2])
    left, right = (1 - BETA2) * g0 @ g0.T, (1 - BETA2) * g0.T @ g0
    left_root = scipy.linalg.fractional_matrix_power(
        left + EPS * np.linalg.eigvalsh(left).max() * np.eye(3), -0.25
    )
    right_root = scipy.linalg.fractional_matrix_power(
        right + EPS * np.linalg.eigvalsh(right).max() * np.eye(4), -0.25
    )
    stale = np.real(left_root @ g1 @ right_root)
    np.testing.assert_allclose(every_two[1]["matrix"], stale, rtol=2e-3, atol=1e-5)
    assert not np.allclose(every_two[1]["matrix"], every_one[1]["matrix"], rtol=1e-2)
    # ... and the third refreshes them from all statistics so far.
    np.testing.assert_allclose(every_two[2]["matrix"], every_one[2]["matrix"], rtol=1e-4)


def test_a_side_longer_than_max_dim_is_not_preconditioned():
    rng = np.random.default_rng(2)
    params = {"tall": np.zeros((6, 2), np.float32)}
    gradients = [{"tall": rng.normal(size=(6, 2)).astype(np.float32)} for _ in range(2)]
    got = run(shampoo.scale_by_shampoo(BETA2, EPS, max_dim=4), params, gradients)
    # Only the 2 x 2 right factor applies: the direction is G R^(-1/4).
    right = np.zeros((2, 2))
    for grad, update in zip(gradients, got, strict=True):
        g = grad["tall"].astype(np.float64)
        right = BETA2 * right + (1 - BETA2) * g.T @ g
        damped = right + EPS * np.linalg.eigvalsh(right).max() * np.eye(2)
        expected = g @ np.real(scipy.linalg.fractional_matrix_power(damped, -0.25))
        np.testing.assert_allclose(update["tall"], expected, rtol=2e-3, atol=1e-5)


def test_graft_takes_the_step_length_of_one_and_the_direction_of_the_other():
    grads = {"w": np.array([[3.0, 4.0]], np.float32)}
    tx = shampoo.graft(magnitude=optax.scale(2.0), direction=optax.scale(-1.0))
    update, _ = tx.update(grads, tx.init(grads), grads)
    # Length of 2 * g (= 10), direction of -g.
    np.testing.assert_allclose(update["w"], [[-6.0, -8.0]], rtol=1e-6)


@pytest.mark.parametrize("kwargs", [{"beta2": 1.0}, {"eps": 0.0}, {"precondition_every": 0}])
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        shampoo.scale_by_shampoo(**kwargs)


def test_rank_one_parameters_are_rejected():
    tx = shampoo.scale_by_shampoo()
    with pytest.raises(ValueError, match="rank >= 2"):
        tx.init({"bias": np.zeros(3, np.float32)})
