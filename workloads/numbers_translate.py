"""An encoder-decoder transformer translating numbers from English words into French words.

The translation workload (AlgoPerf's WMT Transformer, shrunk): the data are numbers 0-999,999
written in English and in French (see `optarena.workloads.datasets.numbers`), 5,000 for
training and 500 held-out numbers each for validation and test. Model: 1 pre-LayerNorm encoder
block and 1 pre-LayerNorm decoder block (causal self-attention, cross-attention, GELU MLP 128),
width 32, 4 heads, learned positions, one embedding for both languages. Loss: softmax
cross-entropy on the target tokens by teacher forcing (the decoder reads ``BOS`` and the target
shifted right), padding masked in the attention and in the loss. Metric: sequence error rate,
the fraction of sentences whose greedy decoding (autoregressive, `TARGET_LENGTH` steps under
``lax.scan``, with a key-value cache) differs from the reference in any real position (``EOS``
included). Exact match stands in for BLEU: a number translated with one wrong word is a wrong
number.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from optarena.workloads import data
from optarena.workloads.base import Arrays, Batch, ModelState, Params, Workload
from optarena.workloads.datasets.numbers import (
    BOS,
    SOURCE_LENGTH,
    TARGET_LENGTH,
    VOCAB_SIZE,
    OptarenaNumbers,
)
from optarena.workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="numbers_translate",
    family="transformer",
    dataset="optarena_numbers",
    model="encoder-decoder transformer, 1 + 1 blocks, width 32, 4 heads",
    loss="softmax cross-entropy on target tokens (teacher forcing)",
    metric="error_rate",
    metric_bound=0.0,
    mode=MetricMode.MIN,
    validation_target=0.004,
    test_target=0.008,
    budget_sec=14.4,
    step_hint=1000,
    eval_every_steps=20,
    batch_size=64,
    eval_batch_size=500,
    num_train_examples=5_000,
)


def length_mask(lengths: jax.Array, size: int) -> jax.Array:
    """``(batch, size)`` booleans, true at the positions before each sequence's length."""
    return jnp.arange(size) < lengths[:, None]


class Block(nn.Module):
    """A pre-LayerNorm transformer block: self-attention, optional cross-attention, MLP.

    With ``decode``, self-attention reads one new position per call and keeps the keys and
    values of the earlier ones in the ``cache`` collection (Flax's autoregressive cache).
    """

    width: int
    num_heads: int
    mlp_width: int
    glu: bool = False

    @nn.compact
    def __call__(self, x, mask, memory=None, memory_mask=None, *, decode: bool = False):
        attention = nn.MultiHeadDotProductAttention
        y = nn.LayerNorm()(x)
        x = x + attention(self.num_heads, decode=decode, name="self_attention")(y, y, mask=mask)
        if memory is not None:
            y = nn.LayerNorm()(x)
            x = x + attention(self.num_heads, name="cross_attention")(y, memory, mask=memory_mask)
        y = nn.LayerNorm()(x)
        if self.glu:
            hidden = nn.gelu(nn.Dense(self.mlp_width)(y)) * nn.Dense(self.mlp_width)(y)
        else:
            hidden = nn.gelu(nn.Dense(self.mlp_width)(y))
        return x + nn.Dense(self.width)(hidden)


class Translator(nn.Module):
    """Encoder over the padded source, causal decoder with cross-attention, a vocabulary head."""

    width: int = 32
    num_heads: int = 4
    mlp_width: int = 128
    num_layers: int = 1
    glu: bool = False

    def setup(self):
        self.embed = nn.Embed(VOCAB_SIZE, self.width)
        init = nn.initializers.normal(0.02)
        self.source_positions = self.param("source_positions", init, (SOURCE_LENGTH, self.width))
        self.target_positions = self.param("target_positions", init, (TARGET_LENGTH, self.width))
        block = lambda: Block(self.width, self.num_heads, self.mlp_width, self.glu)  # noqa: E731
        self.encoder = [block() for _ in range(self.num_layers)]
        self.decoder = [block() for _ in range(self.num_layers)]
        self.encoder_norm = nn.LayerNorm()
        self.decoder_norm = nn.LayerNorm()
        self.head = nn.Dense(VOCAB_SIZE)

    def encode(self, source, source_length):
        """The encoded source, ``(batch, SOURCE_LENGTH, width)``; padding is never attended."""
        keep = length_mask(source_length, SOURCE_LENGTH)
        x = self.embed(source) + self.source_positions
        for block in self.encoder:
            x = block(x, nn.make_attention_mask(keep, keep))
        return self.encoder_norm(x)

    def decode(self, memory, source_length, decoder_input, position=None):
        """Logits for each next target token given the tokens so far (causal).

        With ``position``, ``decoder_input`` is the one token at that position and the earlier
        ones come from the ``cache`` collection; a first call without a cache (any input of
        the full length) creates it.
        """
        keep = length_mask(source_length, SOURCE_LENGTH)
        cross = nn.make_attention_mask(jnp.ones(decoder_input.shape, bool), keep)
        if position is None:
            causal = nn.make_causal_mask(decoder_input)
            positions = self.target_positions[: decoder_input.shape[1]]
        else:
            causal = None
            positions = jax.lax.dynamic_slice_in_dim(self.target_positions, position, 1)
        y = self.embed(decoder_input) + positions
        for block in self.decoder:
            y = block(y, causal, memory, cross, decode=position is not None)
        return self.head(self.decoder_norm(y))

    def __call__(self, source, source_length, decoder_input, *, train: bool):
        del train
        return self.decode(self.encode(source, source_length), source_length, decoder_input)


def shift_right(target: jax.Array) -> jax.Array:
    """The decoder's teacher-forcing input: ``BOS`` then the target without its last token."""
    return jnp.concatenate([jnp.full_like(target[:, :1], BOS), target[:, :-1]], axis=1)


def greedy_decode(model: nn.Module, params: Params, source, source_length) -> jax.Array:
    """Greedy autoregressive decoding of `TARGET_LENGTH` tokens under ``lax.scan``.

    The source is encoded once; step ``t`` feeds the token chosen at ``t - 1`` (``BOS`` first)
    to the decoder, which attends to the earlier positions through its key-value cache, and
    keeps the most likely next token.
    """
    variables = {"params": params}
    memory = model.apply(variables, source, source_length, method="encode")
    batch = source.shape[0]
    empty = jnp.zeros((batch, TARGET_LENGTH), jnp.int32)
    _, cache = model.apply(
        variables, memory, source_length, empty, position=0, method="decode", mutable=["cache"]
    )

    def step(carry, t):
        cache, token = carry
        logits, cache = model.apply(
            {**variables, **cache},
            memory,
            source_length,
            token[:, None],
            position=t,
            method="decode",
            mutable=["cache"],
        )
        token = jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32)
        return (cache, token), token

    start = jnp.full((batch,), BOS, jnp.int32)
    _, tokens = jax.lax.scan(step, (cache, start), jnp.arange(TARGET_LENGTH))
    return tokens.T


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``; held-out variants swap the model."""

    def init(rng: jax.Array) -> tuple[Params, ModelState]:
        source = jnp.zeros((1, SOURCE_LENGTH), jnp.int32)
        target = jnp.zeros((1, TARGET_LENGTH), jnp.int32)
        lengths = jnp.ones((1,), jnp.int32)
        variables = dict(model.init({"params": rng}, source, lengths, target, train=False))
        return variables.pop("params"), variables

    def token_losses(params, batch: Batch) -> tuple[jax.Array, jax.Array]:
        """Per-token cross-entropy and the mask of real target tokens."""
        logits = model.apply(
            {"params": params},
            batch["source"],
            batch["source_length"],
            shift_right(batch["target"]),
            train=False,
        )
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["target"])
        return losses, length_mask(batch["target_length"], TARGET_LENGTH)

    def loss(params, model_state, batch: Batch, rng, *, train: bool):
        del rng, train
        losses, real = token_losses(params, batch)
        return jnp.sum(losses * real) / jnp.maximum(jnp.sum(real), 1), (model_state, {})

    def eval_sums(params, model_state, batch: Batch) -> dict[str, jax.Array]:
        del model_state
        weight = batch[data.WEIGHT_KEY]
        losses, real = token_losses(params, batch)
        tokens = greedy_decode(model, params, batch["source"], batch["source_length"])
        wrong = jnp.any((tokens != batch["target"]) & real, axis=1).astype(jnp.float32)
        return {
            "loss": jnp.sum(jnp.sum(losses * real, axis=1) * weight),
            "tokens": jnp.sum(jnp.sum(real, axis=1) * weight),
            "errors": jnp.sum(wrong * weight),
            "count": jnp.sum(weight),
        }

    def metrics(sums: Mapping[str, float]) -> dict[str, float]:
        return {
            "error_rate": sums["errors"] / sums["count"],
            "loss": sums["loss"] / max(sums["tokens"], 1.0),
        }

    def load_split(split: str, data_dir: str) -> Arrays:
        return data.load_split(OptarenaNumbers, split, data_dir)

    return Workload(
        spec=spec, init=init, loss=loss, eval_sums=eval_sums, metrics=metrics, load_split=load_split
    )


WORKLOAD = make_workload(SPEC, Translator())
