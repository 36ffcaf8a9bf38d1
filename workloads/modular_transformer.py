"""Decoder-only transformer on modular addition mod 97 with half the pairs for training.

The grokking setting (Power et al., 2022): a small causal transformer reads ``[a, b, =]``
and predicts ``(a + b) mod 97`` from its last position. Generalizing to the held-out pairs
needs regularization, so the choice of optimizer and weight decay matters.
Model: 1 pre-LayerNorm block, width 64, 4 heads, MLP 256, learned positions.
Loss: softmax cross-entropy. Metric: error rate on held-out pairs.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from optarena.workloads.base import Workload
from optarena.workloads.classification import make_classification_workload
from optarena.workloads.datasets.modular import (
    MODULUS,
    SEQUENCE_LENGTH,
    VOCAB_SIZE,
    OptarenaModularAddition,
)
from optarena.workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="modular_transformer",
    family="transformer",
    dataset="optarena_modular_addition",
    model="decoder-only transformer, 1 block, width 64, 4 heads",
    loss="softmax cross-entropy",
    metric="error_rate",
    metric_bound=0.0,
    mode=MetricMode.MIN,
    validation_target=0.000426,
    test_target=0.000425,
    budget_sec=8.75,
    step_hint=1000,
    eval_every_steps=20,
    batch_size=512,
    eval_batch_size=2353,
    num_train_examples=4704,
)


class Block(nn.Module):
    """A pre-LayerNorm causal self-attention block with a GELU MLP."""

    width: int
    num_heads: int
    mlp_width: int
    attention_temperature: float = 1.0

    @nn.compact
    def __call__(self, x):
        mask = nn.make_causal_mask(jnp.ones(x.shape[:2], jnp.int32))
        y = nn.LayerNorm()(x)
        attention = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, attention_fn=self._attention
        )
        x = x + attention(y, y, mask=mask)
        y = nn.LayerNorm()(x)
        y = nn.Dense(self.width)(nn.gelu(nn.Dense(self.mlp_width)(y)))
        return x + y

    def _attention(self, query, key, value, **kwargs):
        """Dot-product attention with its logits divided by ``attention_temperature``."""
        return nn.dot_product_attention(query / self.attention_temperature, key, value, **kwargs)


class Transformer(nn.Module):
    """Token and position embeddings, blocks, a final LayerNorm and a head on the last token."""

    width: int = 64
    num_heads: int = 4
    mlp_width: int = 256
    num_layers: int = 1
    attention_temperature: float = 1.0

    @nn.compact
    def __call__(self, tokens, *, train: bool):
        del train
        x = nn.Embed(VOCAB_SIZE, self.width)(tokens)
        x = x + self.param(
            "positions", nn.initializers.normal(0.02), (*tokens.shape[1:], self.width)
        )
        for _ in range(self.num_layers):
            x = Block(self.width, self.num_heads, self.mlp_width, self.attention_temperature)(x)
        return nn.Dense(MODULUS)(nn.LayerNorm()(x[:, -1]))


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``; held-out variants swap the model."""
    return make_classification_workload(
        spec,
        model,
        OptarenaModularAddition,
        input_key="tokens",
        input_shape=(SEQUENCE_LENGTH,),
        input_dtype=jnp.int32,
    )


WORKLOAD = make_workload(SPEC, Transformer())
