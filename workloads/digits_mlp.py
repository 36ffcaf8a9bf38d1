"""MLP on scikit-learn's 8x8 handwritten digits: the smallest image-classification workload.

Model: 64 -> 128 -> 128 -> 10, ReLU. Loss: softmax cross-entropy. Metric: error rate.
"""

from __future__ import annotations

import flax.linen as nn

from workloads.classification import make_classification_workload
from workloads.datasets.digits import OptarenaDigits
from workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="digits_mlp",
    family="mlp",
    dataset="optarena_digits",
    model="MLP 64-128-128-10, ReLU",
    loss="softmax cross-entropy",
    metric="error_rate",
    mode=MetricMode.MIN,
    validation_target=0.04,
    test_target=0.04,
    budget_sec=5.0,
    step_hint=1000,
    eval_every_steps=400,
    batch_size=128,
    eval_batch_size=300,
    num_train_examples=1197,
)


class MLP(nn.Module):
    """A plain multilayer perceptron."""

    hidden: tuple[int, ...] = (128, 128)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x)


WORKLOAD = make_classification_workload(
    SPEC, MLP(), OptarenaDigits, input_key="image", input_shape=(64,)
)
