"""1-D CNN on MNIST-1D signals generated locally: a small convolutional workload.

Model: three 1-D convolutions (32 channels, kernel 5, stride 2 after the first), GELU,
global average pooling and a linear head. Loss: softmax cross-entropy. Metric: error rate.
"""

from __future__ import annotations

import flax.linen as nn

from optarena.workloads.base import Workload
from optarena.workloads.classification import make_classification_workload
from optarena.workloads.datasets.mnist1d import SEQUENCE_LENGTH, OptarenaMnist1d
from optarena.workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="mnist1d_cnn",
    family="cnn",
    dataset="optarena_mnist1d",
    model="1-D CNN, 3 conv layers x 32 channels, GELU, global average pool",
    loss="softmax cross-entropy",
    metric="error_rate",
    metric_bound=0.0,
    mode=MetricMode.MIN,
    validation_target=0.021,
    test_target=0.033,
    budget_sec=10.35,
    step_hint=3000,
    eval_every_steps=60,
    batch_size=128,
    eval_batch_size=1000,
    num_train_examples=4000,
)


class CNN1D(nn.Module):
    """Convolutions over the signal's single channel, then a linear classifier."""

    channels: int = 32
    num_layers: int = 3
    num_classes: int = 10
    batch_norm: bool = False

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = x[..., None]
        for layer in range(self.num_layers):
            stride = 1 if layer == 0 else 2
            x = nn.Conv(self.channels, kernel_size=(5,), strides=(stride,))(x)
            if self.batch_norm:
                x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            x = nn.gelu(x)
        x = x.mean(axis=1)
        return nn.Dense(self.num_classes)(x)


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``; held-out variants swap the model."""
    return make_classification_workload(
        spec, model, OptarenaMnist1d, input_key="signal", input_shape=(SEQUENCE_LENGTH,)
    )


WORKLOAD = make_workload(SPEC, CNN1D())
