"""Shared pieces of binary (and multi-task binary) prediction workloads: sigmoid cross-entropy."""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from optarena.workloads import data
from optarena.workloads.base import Arrays, Batch, ModelState, Params, Workload
from optarena.workloads.spec import WorkloadSpec


def make_binary_workload(
    spec: WorkloadSpec,
    model: nn.Module,
    builder_cls: type,
    inputs: Mapping[str, tuple[tuple[int, ...], jnp.dtype]],
    label_key: str,
) -> Workload:
    """A `Workload` for ``model(*inputs, train=...)`` giving one logit per label.

    ``inputs`` maps each input feature to its per-example shape and dtype, in call order.
    Per example, the loss and the error (threshold at probability 0.5) are averaged over its
    labels; the metrics are ``loss`` and ``error_rate`` averaged over examples.
    """
    input_keys = tuple(inputs)

    def logits(params, model_state, batch: Batch, train: bool) -> jax.Array:
        variables = {"params": params, **model_state}
        return model.apply(variables, *(batch[k] for k in input_keys), train=train)

    def init(rng: jax.Array) -> tuple[Params, ModelState]:
        dummies = [jnp.zeros((1, *shape), dtype) for shape, dtype in inputs.values()]
        variables = dict(model.init({"params": rng}, *dummies, train=False))
        return variables.pop("params"), variables

    def per_example(z: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        axes = tuple(range(1, z.ndim))
        losses = optax.sigmoid_binary_cross_entropy(z, labels)
        wrong = ((z > 0).astype(jnp.float32) != labels).astype(jnp.float32)
        return losses.mean(axis=axes), wrong.mean(axis=axes)

    def loss(params, model_state, batch: Batch, rng, *, train: bool):
        del rng
        losses, _ = per_example(logits(params, model_state, batch, train), batch[label_key])
        return losses.mean(), (model_state, {})

    def eval_sums(params, model_state, batch: Batch) -> dict[str, jax.Array]:
        losses, wrong = per_example(logits(params, model_state, batch, False), batch[label_key])
        weight = batch[data.WEIGHT_KEY]
        return {
            "loss": jnp.sum(losses * weight),
            "errors": jnp.sum(wrong * weight),
            "count": jnp.sum(weight),
        }

    def metrics(sums: Mapping[str, float]) -> dict[str, float]:
        return {"loss": sums["loss"] / sums["count"], "error_rate": sums["errors"] / sums["count"]}

    def load_split(split: str, data_dir: str) -> Arrays:
        arrays = data.load_split(builder_cls, split, data_dir)
        return {key: arrays[key] for key in (*input_keys, label_key)}

    return Workload(
        spec=spec, init=init, loss=loss, eval_sums=eval_sums, metrics=metrics, load_split=load_split
    )
