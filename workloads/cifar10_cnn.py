"""A CNN on real CIFAR-10 from the TFDS catalog (needs a download: see `workloads.catalog`).

Model: three stages of a 3x3 convolution (32, 64, 128 channels) with 2x2 max pooling,
global average pooling and a linear head, ReLU. Loss: softmax cross-entropy. Metric: error
rate. Validation is the last 16% of TFDS's train split (8,000 images), test is TFDS's test
split. Its target is not calibrated until someone runs the baseline on the real data.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from optarena.workloads.base import Workload
from optarena.workloads.catalog import TRAIN_TEST_SPLITS, split_loader
from optarena.workloads.classification import make_classification_workload
from optarena.workloads.spec import MetricMode, WorkloadSpec

SPLITS = TRAIN_TEST_SPLITS

SPEC = WorkloadSpec(
    name="cifar10_cnn",
    family="cnn",
    dataset="cifar10",
    model="CNN: 3 stages of conv (32, 64, 128 channels) and max pool, global average pool",
    loss="softmax cross-entropy",
    metric="error_rate",
    metric_bound=0.0,
    mode=MetricMode.MIN,
    validation_target=0.3,
    test_target=0.3,
    budget_sec=60.0,
    step_hint=3000,
    eval_every_steps=60,
    batch_size=128,
    eval_batch_size=1000,
    num_train_examples=42_000,
    offline=False,
    calibrated=False,
)


class CNN(nn.Module):
    """Convolution and pooling stages on uint8 images scaled to [0, 1]."""

    channels: tuple[int, ...] = (32, 64, 128)
    num_classes: int = 10

    @nn.compact
    def __call__(self, image, *, train: bool):
        del train
        x = image.astype(jnp.float32) / 255.0
        for channels in self.channels:
            x = nn.relu(nn.Conv(channels, kernel_size=(3, 3))(x))
            x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        return nn.Dense(self.num_classes)(x.mean(axis=(1, 2)))


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``."""
    return make_classification_workload(
        spec,
        model,
        None,
        input_key="image",
        input_shape=(32, 32, 3),
        input_dtype=jnp.uint8,
        load_split=split_loader("cifar10", SPLITS, features=("image", "label")),
    )


WORKLOAD = make_workload(SPEC, CNN())
