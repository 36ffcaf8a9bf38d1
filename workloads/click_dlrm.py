"""A DLRM-style click-through model on synthetic click logs: an embedding-heavy workload.

Model (Naumov et al., 2019, shrunk): a bottom MLP on the dense features, one 16-dim
embedding table per categorical field, pairwise dot products between all 9 vectors, and a
top MLP on those interactions and the dense vector. Loss: sigmoid cross-entropy.
Metric: validation log loss, as AlgoPerf's Criteo workload (the data's Bayes-optimal
log loss is 0.413; predicting the click rate alone gives 0.655).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from optarena.workloads.base import Workload
from optarena.workloads.binary import make_binary_workload
from optarena.workloads.datasets.clicks import NUM_BUCKETS, NUM_DENSE, NUM_FIELDS, OptarenaClicks
from optarena.workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="click_dlrm",
    family="dlrm",
    dataset="optarena_clicks",
    model="DLRM: bottom MLP 64-16, 8 x 100 x 16 embeddings, dot interactions, top MLP 64-1",
    loss="sigmoid cross-entropy",
    metric="loss",
    mode=MetricMode.MIN,
    validation_target=0.407,
    test_target=0.408,
    budget_sec=10.6,
    step_hint=10000,
    eval_every_steps=200,
    batch_size=256,
    eval_batch_size=1000,
    num_train_examples=200_000,
)


class DLRM(nn.Module):
    """Dense and embedded features meet through pairwise dot products."""

    embed_dim: int = 16
    hidden: int = 64
    embedding_init: nn.initializers.Initializer = nn.initializers.variance_scaling(
        1.0, "fan_in", "normal", out_axis=0
    )

    @nn.compact
    def __call__(self, dense, categorical, *, train: bool):
        del train
        bottom = nn.Dense(self.embed_dim)(nn.relu(nn.Dense(self.hidden)(dense)))
        tables = [
            nn.Embed(
                NUM_BUCKETS,
                self.embed_dim,
                embedding_init=self.embedding_init,
                name=f"embedding_{field}",
            )(categorical[:, field])
            for field in range(NUM_FIELDS)
        ]
        vectors = jnp.stack([bottom, *tables], axis=1)
        products = jnp.einsum("bid,bjd->bij", vectors, vectors)
        upper = jnp.triu_indices(vectors.shape[1], k=1)
        features = jnp.concatenate([bottom, products[:, upper[0], upper[1]]], axis=-1)
        return nn.Dense(1)(nn.relu(nn.Dense(self.hidden)(features)))[:, 0]


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``; held-out variants swap the model."""
    return make_binary_workload(
        spec,
        model,
        OptarenaClicks,
        inputs={
            "dense": ((NUM_DENSE,), jnp.float32),
            "categorical": ((NUM_FIELDS,), jnp.int32),
        },
        label_key="label",
    )


WORKLOAD = make_workload(SPEC, DLRM())
