"""A byte-level decoder-only transformer language model of the Python standard library's source.

The language-model workload (AlgoPerf's FineWeb-Edu LM, shrunk): text every machine has
offline, the running interpreter's own public top-level modules (see
`optarena.workloads.datasets.python_source`), read as 65-byte windows of which the model
reads the first 64 bytes and predicts each next byte. Model: 2 pre-LayerNorm causal
self-attention blocks, width 64, 4 heads, GELU MLP 256, learned positions, output head tied to
the byte embedding. Loss: softmax cross-entropy averaged over the batch's real next-byte
targets. Metric: validation cross-entropy in nats per byte, summed exactly over every real
target of the split (padding after a file's end has weight 0), to be minimized.
Targets and budget were calibrated on CPython 3.11.7's corpus; under another release the
``dataset`` names that release's corpus, so its results are never pooled with these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from optarena.workloads import data
from optarena.workloads.base import Arrays, Batch, ModelState, Params, Workload
from optarena.workloads.datasets.python_source import (
    CONFIG_NAME,
    CONTEXT,
    VOCAB_SIZE,
    OptarenaPythonSource,
)
from optarena.workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="pysource_lm",
    family="transformer",
    dataset=f"optarena_python_source/{CONFIG_NAME}",
    model="byte-level decoder-only transformer, 2 pre-LN blocks, width 64, 4 heads, tied head",
    loss="next-byte softmax cross-entropy over real tokens",
    metric="cross_entropy",
    mode=MetricMode.MIN,
    validation_target=2.65,
    test_target=2.62,
    budget_sec=3.65,
    step_hint=300,
    eval_every_steps=6,
    batch_size=8,
    eval_batch_size=31,
    num_train_examples=29647,
)


class FeedForward(nn.Module):
    """A GELU MLP, or with ``glu`` a GELU-gated linear unit of the same hidden width."""

    width: int
    hidden: int
    glu: bool = False

    @nn.compact
    def __call__(self, x):
        h = nn.gelu(nn.Dense(self.hidden)(x))
        if self.glu:
            h = h * nn.Dense(self.hidden)(x)
        return nn.Dense(self.width)(h)


class Block(nn.Module):
    """A pre-LayerNorm causal self-attention block and its feed-forward."""

    width: int
    num_heads: int
    mlp_width: int
    glu: bool = False

    @nn.compact
    def __call__(self, x):
        mask = nn.make_causal_mask(jnp.ones(x.shape[:2], jnp.int32))
        y = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.num_heads)(y, y, mask=mask)
        return x + FeedForward(self.width, self.mlp_width, self.glu)(nn.LayerNorm()(x))


class LanguageModel(nn.Module):
    """Byte and position embeddings, causal blocks, a final LayerNorm, next-byte logits.

    Position ``t``'s logits depend only on bytes ``0..t``, so the zero padding after a file's
    end never changes the logits of a real position.
    """

    width: int = 64
    num_heads: int = 4
    mlp_width: int = 256
    num_layers: int = 2
    glu: bool = False

    @nn.compact
    def __call__(self, tokens, *, train: bool):
        del train
        embed = nn.Embed(VOCAB_SIZE, self.width, embedding_init=nn.initializers.normal(0.02))
        x = embed(tokens.astype(jnp.int32))
        x = x + self.param(
            "positions", nn.initializers.normal(0.02), (tokens.shape[-1], self.width)
        )
        for _ in range(self.num_layers):
            x = Block(self.width, self.num_heads, self.mlp_width, self.glu)(x)
        return embed.attend(nn.LayerNorm()(x))


def next_byte_terms(logits: jax.Array, batch: Batch) -> tuple[jax.Array, jax.Array]:
    """Per-position cross-entropy of the next byte and its weight (1 on real targets, else 0)."""
    targets = batch["tokens"][:, 1:].astype(jnp.int32)
    positions = jnp.arange(1, targets.shape[1] + 1)
    real = (positions[None, :] < batch["length"][:, None]).astype(jnp.float32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets), real


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``; held-out variants swap the model."""

    def init(rng: jax.Array) -> tuple[Params, ModelState]:
        variables = dict(
            model.init({"params": rng}, jnp.zeros((1, CONTEXT), jnp.int32), train=False)
        )
        return variables.pop("params"), variables

    def logits_of(params, model_state, batch: Batch, *, train: bool) -> jax.Array:
        inputs = batch["tokens"][:, :-1]
        return model.apply({"params": params, **model_state}, inputs, train=train)

    def loss(params, model_state, batch: Batch, rng, *, train: bool):
        del rng
        per_token, real = next_byte_terms(logits_of(params, model_state, batch, train=train), batch)
        return jnp.sum(per_token * real) / jnp.maximum(jnp.sum(real), 1.0), (model_state, {})

    def eval_sums(params, model_state, batch: Batch) -> dict[str, jax.Array]:
        per_token, real = next_byte_terms(logits_of(params, model_state, batch, train=False), batch)
        weight = real * batch[data.WEIGHT_KEY][:, None]
        return {"cross_entropy": jnp.sum(per_token * weight), "tokens": jnp.sum(weight)}

    def metrics(sums: Mapping[str, float]) -> dict[str, float]:
        nats = sums["cross_entropy"] / sums["tokens"]
        return {"cross_entropy": nats, "bits_per_byte": nats / math.log(2), "loss": nats}

    def load_split(split: str, data_dir: str) -> Arrays:
        return data.load_split(OptarenaPythonSource, split, data_dir)

    return Workload(
        spec=spec, init=init, loss=loss, eval_sums=eval_sums, metrics=metrics, load_split=load_split
    )


WORKLOAD = make_workload(SPEC, LanguageModel())
