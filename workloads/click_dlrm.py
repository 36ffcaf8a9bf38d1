"""A DLRM-style click-through model on synthetic click logs: an embedding-heavy workload.

Model (Naumov et al., 2019, shrunk): a bottom MLP on the dense features, one 16-dim
embedding table per categorical field, pairwise dot products between all 9 vectors, and a
top MLP on those interactions and the dense vector. Loss: sigmoid cross-entropy.
Metric: validation log loss, as AlgoPerf's Criteo workload (the data's Bayes-optimal
log loss is 0.413; predicting the click rate alone gives 0.655).
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from workloads import data
from workloads.base import Arrays, Batch, ModelState, Params, Workload
from workloads.datasets.clicks import NUM_BUCKETS, NUM_DENSE, NUM_FIELDS, OptarenaClicks
from workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="click_dlrm",
    family="dlrm",
    dataset="optarena_clicks",
    model="DLRM: bottom MLP 64-16, 8 x 100 x 16 embeddings, dot interactions, top MLP 64-1",
    loss="sigmoid cross-entropy",
    metric="loss",
    mode=MetricMode.MIN,
    validation_target=0.435,
    test_target=0.435,
    budget_sec=8.0,
    step_hint=10000,
    eval_every_steps=500,
    batch_size=256,
    eval_batch_size=1000,
    num_train_examples=200_000,
)


class DLRM(nn.Module):
    """Dense and embedded features meet through pairwise dot products."""

    embed_dim: int = 16
    hidden: int = 64

    @nn.compact
    def __call__(self, dense, categorical, *, train: bool):
        del train
        bottom = nn.Dense(self.embed_dim)(nn.relu(nn.Dense(self.hidden)(dense)))
        tables = [
            nn.Embed(NUM_BUCKETS, self.embed_dim, name=f"embedding_{field}")(categorical[:, field])
            for field in range(NUM_FIELDS)
        ]
        vectors = jnp.stack([bottom, *tables], axis=1)
        products = jnp.einsum("bid,bjd->bij", vectors, vectors)
        upper = jnp.triu_indices(vectors.shape[1], k=1)
        features = jnp.concatenate([bottom, products[:, upper[0], upper[1]]], axis=-1)
        return nn.Dense(1)(nn.relu(nn.Dense(self.hidden)(features)))[:, 0]


def make_click_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """A `Workload` for a click model called as ``model(dense, categorical, train=...)``."""

    def logits(params, model_state, batch: Batch, train: bool) -> jax.Array:
        variables = {"params": params, **model_state}
        return model.apply(variables, batch["dense"], batch["categorical"], train=train)

    def init(rng: jax.Array) -> tuple[Params, ModelState]:
        dense = jnp.zeros((1, NUM_DENSE), jnp.float32)
        categorical = jnp.zeros((1, NUM_FIELDS), jnp.int32)
        variables = dict(model.init({"params": rng}, dense, categorical, train=False))
        return variables.pop("params"), variables

    def loss(params, model_state, batch: Batch, rng, *, train: bool):
        del rng
        per_example = optax.sigmoid_binary_cross_entropy(
            logits(params, model_state, batch, train), batch["label"]
        )
        return per_example.mean(), (model_state, {})

    def eval_sums(params, model_state, batch: Batch) -> dict[str, jax.Array]:
        z = logits(params, model_state, batch, False)
        weight = batch[data.WEIGHT_KEY]
        wrong = ((z > 0).astype(jnp.float32) != batch["label"]).astype(jnp.float32)
        return {
            "loss": jnp.sum(optax.sigmoid_binary_cross_entropy(z, batch["label"]) * weight),
            "errors": jnp.sum(wrong * weight),
            "count": jnp.sum(weight),
        }

    def metrics(sums: Mapping[str, float]) -> dict[str, float]:
        return {"loss": sums["loss"] / sums["count"], "error_rate": sums["errors"] / sums["count"]}

    def load_split(split: str, data_dir: str) -> Arrays:
        arrays = data.load_split(OptarenaClicks, split, data_dir)
        return {key: arrays[key] for key in ("dense", "categorical", "label")}

    return Workload(
        spec=spec, init=init, loss=loss, eval_sums=eval_sums, metrics=metrics, load_split=load_split
    )


WORKLOAD = make_click_workload(SPEC, DLRM())
