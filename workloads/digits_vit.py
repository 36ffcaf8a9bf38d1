"""Small Vision Transformer on scikit-learn's 8x8 handwritten digits: the ViT workload.

Data: the 1,797 bundled 8x8 grey digits (`OptarenaDigits`), pixels in [0, 1], split by a fixed
permutation into 1,197 train, 300 validation and 300 test images; the label is the digit drawn.
Model: AlgoPerf's ViT shrunk to the image: 2x2 patches embedded by a strided convolution
(16 tokens), fixed 2-D sine-cosine positions, 2 pre-LayerNorm blocks (width 32, 4 heads,
GELU MLP 64), a final LayerNorm, mean pooling over tokens and a zero-initialized linear head.
Loss: softmax cross-entropy. Metric: error rate.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np

from optarena.workloads.base import Workload
from optarena.workloads.classification import make_classification_workload
from optarena.workloads.datasets.digits import OptarenaDigits
from optarena.workloads.spec import MetricMode, WorkloadSpec

IMAGE_SIDE = 8
"""The digits are square images of this many pixels a side, stored flattened."""

SPEC = WorkloadSpec(
    name="digits_vit",
    family="transformer",
    dataset="optarena_digits",
    model="ViT, 2x2 patches, 2 pre-LN blocks, width 32, 4 heads, MLP 64, mean pooling",
    loss="softmax cross-entropy",
    metric="error_rate",
    metric_bound=0.0,
    mode=MetricMode.MIN,
    validation_target=0.0534,
    test_target=0.0734,
    budget_sec=2.65,
    step_hint=1000,
    eval_every_steps=20,
    batch_size=64,
    eval_batch_size=300,
    num_train_examples=1197,
)


def posemb_sincos_2d(height: int, width: int, features: int) -> np.ndarray:
    """Fixed 2-D sine-cosine position embeddings, ``(height * width, features)`` (MoCo v3's).

    A quarter of the features are sines and cosines of the row, a quarter of the column, at
    frequencies spaced geometrically from 1 to 1/10,000.
    """
    if features % 4:
        raise ValueError(f"features must be a multiple of 4, got {features=}")
    rows, cols = np.mgrid[:height, :width]
    omega = 1.0 / 10_000 ** (np.arange(features // 4) / (features // 4 - 1))
    rows = rows.reshape(-1, 1) * omega
    cols = cols.reshape(-1, 1) * omega
    return np.concatenate([np.sin(cols), np.cos(cols), np.sin(rows), np.cos(rows)], axis=1).astype(
        np.float32
    )


class EncoderBlock(nn.Module):
    """Self-attention then an MLP, each in a residual branch, normalized before (pre-LN, the
    base) or after the residual sum (post-LN, as in AlgoPerf's ``use_post_layer_norm``)."""

    num_heads: int
    mlp_width: int
    post_layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        attention = nn.MultiHeadDotProductAttention(num_heads=self.num_heads)
        mlp = nn.Sequential([nn.Dense(self.mlp_width), nn.gelu, nn.Dense(x.shape[-1])])
        for branch in (attention, mlp):
            if self.post_layer_norm:
                x = nn.LayerNorm()(x + branch(x))
            else:
                x = x + branch(nn.LayerNorm()(x))
        return x


class ViT(nn.Module):
    """Patch embedding, fixed positions, encoder blocks, mean pooling and a linear head."""

    patch: int = 2
    width: int = 32
    num_heads: int = 4
    mlp_width: int = 64
    num_layers: int = 2
    num_classes: int = 10
    post_layer_norm: bool = False

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
        del train
        x = images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE, 1)
        x = nn.Conv(self.width, (self.patch, self.patch), strides=self.patch, padding="VALID")(x)
        _, height, width, features = x.shape
        x = x.reshape(-1, height * width, features) + posemb_sincos_2d(height, width, features)
        for _ in range(self.num_layers):
            x = EncoderBlock(self.num_heads, self.mlp_width, self.post_layer_norm)(x)
        if not self.post_layer_norm:
            x = nn.LayerNorm()(x)
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros)(x.mean(axis=1))


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``; held-out variants swap the model."""
    return make_classification_workload(
        spec, model, OptarenaDigits, input_key="image", input_shape=(IMAGE_SIDE * IMAGE_SIDE,)
    )


WORKLOAD = make_workload(SPEC, ViT())
