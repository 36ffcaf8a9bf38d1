"""Shared pieces of image/signal classification workloads: cross-entropy loss and error rate."""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from optarena.workloads import data
from optarena.workloads.base import Arrays, Batch, LoadSplitFn, ModelState, Params, Workload
from optarena.workloads.spec import WorkloadSpec

LABEL_KEY = "label"


def _split_variables(variables) -> tuple[Params, ModelState]:
    variables = dict(variables)
    params = variables.pop("params")
    return params, variables


def make_classification_workload(
    spec: WorkloadSpec,
    model: nn.Module,
    builder_cls: type | None,
    input_key: str,
    input_shape: tuple,
    input_dtype: jnp.dtype = jnp.float32,
    load_split: LoadSplitFn | None = None,
) -> Workload:
    """A `Workload` for ``model`` trained with softmax cross-entropy and judged by error rate.

    ``model`` is a Linen module called as ``model(inputs, train=...)``; mutable collections
    other than ``params`` (e.g. BatchNorm statistics) are carried as ``model_state``. Data come
    from ``builder_cls`` (an optarena TFDS builder) unless ``load_split`` is given.
    """

    def init(rng: jax.Array) -> tuple[Params, ModelState]:
        dummy = jnp.zeros((1, *input_shape), input_dtype)
        return _split_variables(model.init({"params": rng}, dummy, train=False))

    def loss(params, model_state, batch: Batch, rng, *, train: bool):
        variables = {"params": params, **model_state}
        if train and model_state:
            logits, updates = model.apply(
                variables,
                batch[input_key],
                train=True,
                rngs={"dropout": rng},
                mutable=list(model_state),
            )
            model_state = {**model_state, **updates}
        else:
            logits = model.apply(variables, batch[input_key], train=train, rngs={"dropout": rng})
        per_example = optax.softmax_cross_entropy_with_integer_labels(logits, batch[LABEL_KEY])
        return per_example.mean(), (model_state, {})

    def eval_sums(params, model_state, batch: Batch) -> dict[str, jax.Array]:
        logits = model.apply({"params": params, **model_state}, batch[input_key], train=False)
        weight = batch[data.WEIGHT_KEY]
        per_example = optax.softmax_cross_entropy_with_integer_labels(logits, batch[LABEL_KEY])
        wrong = (jnp.argmax(logits, axis=-1) != batch[LABEL_KEY]).astype(jnp.float32)
        return {
            "loss": jnp.sum(per_example * weight),
            "errors": jnp.sum(wrong * weight),
            "count": jnp.sum(weight),
        }

    def metrics(sums: Mapping[str, float]) -> dict[str, float]:
        return {"error_rate": sums["errors"] / sums["count"], "loss": sums["loss"] / sums["count"]}

    def load_builder_split(split: str, data_dir: str) -> Arrays:
        return data.load_split(builder_cls, split, data_dir)

    return Workload(
        spec=spec,
        init=init,
        loss=loss,
        eval_sums=eval_sums,
        metrics=metrics,
        load_split=load_split or load_builder_split,
    )
