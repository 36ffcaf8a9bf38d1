"""A graph isomorphism network (GIN) predicting four structural properties of small graphs.

The graph-neural-network workload (AlgoPerf's OGBG, shrunk): molecule-like generated
graphs, dense padded adjacency, three GIN layers (``h <- MLP((1 + eps) h + A h)``, masked),
sum pooling and a linear head with one logit per property. Loss: sigmoid cross-entropy
averaged over the four properties. Metric: error rate averaged over properties.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from optarena.workloads.base import Workload
from optarena.workloads.binary import make_binary_workload
from optarena.workloads.datasets.graphs import MAX_NODES, NUM_TASKS, NUM_TYPES, OptarenaGraphs
from optarena.workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="graphs_gin",
    family="gnn",
    dataset="optarena_graphs",
    model="GIN, 3 layers of width 64, sum pooling, 4 logits",
    loss="sigmoid cross-entropy, averaged over 4 properties",
    metric="error_rate",
    metric_bound=0.0,
    mode=MetricMode.MIN,
    validation_target=0.00363,
    test_target=0.00388,
    budget_sec=26.25,
    step_hint=2400,
    eval_every_steps=48,
    batch_size=128,
    eval_batch_size=1000,
    num_train_examples=8000,
)


class GIN(nn.Module):
    """Message passing by neighbour sums; padding nodes are masked out."""

    width: int = 64
    num_layers: int = 3
    activation: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, nodes, mask, adjacency, *, train: bool):
        del train
        keep = mask[..., None]
        h = nn.Dense(self.width)(nodes) * keep
        for layer in range(self.num_layers):
            eps = self.param(f"eps_{layer}", nn.initializers.zeros, ())
            aggregated = (1.0 + eps) * h + jnp.einsum("bij,bjd->bid", adjacency, h)
            h = nn.Dense(self.width)(self.activation(nn.Dense(self.width)(aggregated)))
            h = self.activation(h) * keep
        return nn.Dense(NUM_TASKS)(h.sum(axis=1))


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``; held-out variants swap the model."""
    return make_binary_workload(
        spec,
        model,
        OptarenaGraphs,
        inputs={
            "nodes": ((MAX_NODES, NUM_TYPES), jnp.float32),
            "mask": ((MAX_NODES,), jnp.float32),
            "adjacency": ((MAX_NODES, MAX_NODES), jnp.float32),
        },
        label_key="labels",
    )


WORKLOAD = make_workload(SPEC, GIN())
