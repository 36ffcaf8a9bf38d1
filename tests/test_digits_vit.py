"""What conformance cannot see in `digits_vit`: how images become tokens, the fixed position
embeddings, the zero-initialized head, pre- against post-LayerNorm blocks, and the error rate
against scikit-learn's."""

from __future__ import annotations

import fast
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as sk_metrics
from sklearn.datasets import load_digits

from optarena.workloads import data, digits_vit, digits_vit_post_ln

PATCH = digits_vit.ViT().patch
TOKENS_PER_SIDE = digits_vit.IMAGE_SIDE // PATCH


@pytest.fixture(scope="module")
def validation(data_dir):
    return digits_vit.WORKLOAD.load_split("validation", data_dir)


def perturbed_params(workload, seed: int = 1, scale: float = 0.3):
    """Initial parameters plus Gaussian noise, so that the zero-initialized head predicts."""
    params, model_state = fast.init(workload, jax.random.PRNGKey(0))
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    noisy = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(tree, noisy), model_state


def test_flattened_digits_are_sklearn_images_in_row_major_order(validation):
    """The model reshapes each 64-vector to 8x8: every validation image must be one of
    scikit-learn's 8x8 images (scaled to [0, 1]) read row by row, with its label."""
    digits = load_digits()
    known = {
        (image.astype(np.float32) / 16.0).tobytes(): label
        for image, label in zip(digits.images, digits.target, strict=True)
    }
    images = validation["image"].reshape(-1, digits_vit.IMAGE_SIDE, digits_vit.IMAGE_SIDE)
    for image, label in zip(images, validation["label"], strict=True):
        assert known[image.tobytes()] == label


def test_a_pixel_changes_only_the_token_of_its_patch():
    """Patch embedding: pixel (row, col) belongs to token (row // 2) * 4 + col // 2 alone."""
    model = digits_vit.ViT()
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64)), train=False)

    def tokens(image):
        _, state = model.apply(
            variables, image[None], train=False, capture_intermediates=True, mutable=True
        )
        embedded = state["intermediates"]["Conv_0"]["__call__"][0]
        return embedded.reshape(TOKENS_PER_SIDE * TOKENS_PER_SIDE, -1)

    base = np.random.default_rng(0).uniform(size=64).astype(np.float32)
    reference = tokens(base)
    for row, col in [(0, 0), (0, 7), (3, 2), (5, 6), (7, 7)]:
        image = base.copy()
        image[row * digits_vit.IMAGE_SIDE + col] += 1.0
        changed = np.flatnonzero(np.abs(tokens(image) - reference).max(axis=1) > 1e-6)
        assert changed.tolist() == [(row // PATCH) * TOKENS_PER_SIDE + col // PATCH]


def test_position_embeddings_are_sines_and_cosines_of_row_and_column():
    """Each quarter of the features is sin or cos of the column or row at 16 frequencies:
    paired quarters lie on the unit circle, the first frequency is 1, and every position
    gets its own embedding."""
    height, width, features = 4, 4, 64
    quarter = features // 4
    pe = digits_vit.posemb_sincos_2d(height, width, features)
    assert pe.shape == (height * width, features)
    sin_col, cos_col, sin_row, cos_row = np.split(pe, 4, axis=1)
    np.testing.assert_allclose(sin_col**2 + cos_col**2, 1.0, rtol=1e-6)
    np.testing.assert_allclose(sin_row**2 + cos_row**2, 1.0, rtol=1e-6)
    rows, cols = np.divmod(np.arange(height * width), width)
    np.testing.assert_allclose(sin_col[:, 0], np.sin(cols), rtol=1e-6)
    np.testing.assert_allclose(cos_row[:, 0], np.cos(rows), rtol=1e-6)
    np.testing.assert_allclose(sin_row[:, quarter - 1], np.sin(rows * 1e-4), rtol=1e-5)
    assert len({row.tobytes() for row in pe}) == height * width


def test_position_embeddings_need_features_in_fours():
    with pytest.raises(ValueError, match="features=30"):
        digits_vit.posemb_sincos_2d(4, 4, 30)


@pytest.mark.parametrize("workload", [digits_vit.WORKLOAD, digits_vit_post_ln.WORKLOAD])
def test_zero_initialized_head_starts_at_the_uniform_loss(workload, validation):
    """A zero head gives equal logits, hence a cross-entropy of ln 10 on any batch."""
    params, model_state = fast.init(workload, jax.random.PRNGKey(0))
    batch = {key: value[:32] for key, value in validation.items()}
    loss, _ = workload.loss(params, model_state, batch, jax.random.PRNGKey(1), train=False)
    np.testing.assert_allclose(float(loss), np.log(10.0), rtol=1e-6)


def block_output(post_layer_norm: bool) -> np.ndarray:
    block = digits_vit.EncoderBlock(num_heads=4, mlp_width=64, post_layer_norm=post_layer_norm)
    x = 3.0 + 2.0 * jax.random.normal(jax.random.PRNGKey(0), (2, 16, 32))
    variables = block.init(jax.random.PRNGKey(1), x)
    return np.asarray(block.apply(variables, x))


def test_post_ln_blocks_normalize_their_output_and_pre_ln_blocks_do_not():
    """Post-LN: each token leaves a block with mean 0 and variance 1 (LayerNorm at init);
    pre-LN: the residual stream keeps the input's scale."""
    post = block_output(post_layer_norm=True)
    np.testing.assert_allclose(post.mean(axis=-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(post.var(axis=-1), 1.0, rtol=1e-3)
    pre = block_output(post_layer_norm=False)
    assert np.abs(pre.mean(axis=-1)).mean() > 1.0


def test_only_the_pre_ln_model_has_a_final_layer_norm():
    """AlgoPerf's post-LN ViT drops the encoder's final LayerNorm."""
    pre, _ = jax.eval_shape(digits_vit.WORKLOAD.init, jax.random.PRNGKey(0))
    post, _ = jax.eval_shape(digits_vit_post_ln.WORKLOAD.init, jax.random.PRNGKey(0))
    assert "LayerNorm_0" in pre
    assert "LayerNorm_0" not in post
    assert set(pre) - set(post) == {"LayerNorm_0"}


@pytest.mark.parametrize("batch_size", [300, 64, 7])
def test_error_rate_and_loss_match_sklearn_at_any_eval_batch_size(batch_size, validation):
    """Summed over zero-padded batches, the split's error rate and loss are scikit-learn's."""
    workload = digits_vit.WORKLOAD
    params, model_state = perturbed_params(workload)
    sums_fn = fast.fast_jit(workload.eval_sums)
    partial = [
        sums_fn(params, model_state, batch) for batch in data.eval_batches(validation, batch_size)
    ]
    totals = {key: sum(float(p[key]) for p in partial) for key in partial[0]}
    result = workload.metrics(totals)

    logits = np.asarray(
        digits_vit.ViT().apply({"params": params}, validation["image"], train=False), np.float64
    )
    labels = validation["label"]
    expected_error = 1.0 - sk_metrics.accuracy_score(labels, logits.argmax(axis=-1))
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    expected_loss = sk_metrics.log_loss(labels, probabilities, labels=np.arange(10))
    assert 0.0 < expected_error < 1.0
    assert result["error_rate"] == pytest.approx(expected_error, abs=1e-9)
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-4)
    assert totals["count"] == len(labels)
