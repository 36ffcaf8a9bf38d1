"""MLP on scikit-learn's 8x8 handwritten digits: the smallest image-classification workload.

Model: 64 -> 128 -> 128 -> 10, ReLU. Loss: softmax cross-entropy. Metric: error rate.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax

from optarena.workloads.base import Workload
from optarena.workloads.classification import make_classification_workload
from optarena.workloads.datasets.digits import OptarenaDigits
from optarena.workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="digits_mlp",
    family="mlp",
    dataset="optarena_digits",
    model="MLP 64-128-128-10, ReLU",
    loss="softmax cross-entropy",
    metric="error_rate",
    metric_bound=0.0,
    mode=MetricMode.MIN,
    validation_target=0.0334,
    test_target=0.0167,
    budget_sec=0.1,
    step_hint=1000,
    eval_every_steps=20,
    batch_size=128,
    eval_batch_size=300,
    num_train_examples=1197,
)


class MLP(nn.Module):
    """A plain multilayer perceptron."""

    hidden: tuple[int, ...] = (128, 128)
    num_classes: int = 10
    activation: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        for width in self.hidden:
            x = self.activation(nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x)


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``; held-out variants swap the model."""
    return make_classification_workload(
        spec, model, OptarenaDigits, input_key="image", input_shape=(64,)
    )


WORKLOAD = make_workload(SPEC, MLP())
