"""A small CNN on real MNIST from the TFDS catalog (needs a download: see `workloads.catalog`).

Model: two 3x3 convolutions (32, 64 channels) each followed by 2x2 max pooling, a 128-unit
dense layer, ReLU. Loss: softmax cross-entropy. Metric: error rate. Validation is the last
16% of TFDS's train split (9,600 images), test is TFDS's test split. Its target is not
calibrated until someone runs the baseline on the real data.
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
    name="mnist_cnn",
    family="cnn",
    dataset="mnist",
    model="CNN: conv 32, pool, conv 64, pool, dense 128, ReLU",
    loss="softmax cross-entropy",
    metric="error_rate",
    metric_bound=0.0,
    mode=MetricMode.MIN,
    validation_target=0.015,
    test_target=0.015,
    budget_sec=60.0,
    step_hint=3000,
    eval_every_steps=60,
    batch_size=128,
    eval_batch_size=1000,
    num_train_examples=50_400,
    offline=False,
    calibrated=False,
)


class CNN(nn.Module):
    """LeNet-style convolutions on uint8 images scaled to [0, 1]."""

    channels: tuple[int, ...] = (32, 64)
    hidden: int = 128
    num_classes: int = 10

    @nn.compact
    def __call__(self, image, *, train: bool):
        del train
        x = image.astype(jnp.float32) / 255.0
        for channels in self.channels:
            x = nn.relu(nn.Conv(channels, kernel_size=(3, 3))(x))
            x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.relu(nn.Dense(self.hidden)(x.reshape((x.shape[0], -1))))
        return nn.Dense(self.num_classes)(x)


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``."""
    return make_classification_workload(
        spec,
        model,
        None,
        input_key="image",
        input_shape=(28, 28, 1),
        input_dtype=jnp.uint8,
        load_split=split_loader("mnist", SPLITS, features=("image", "label")),
    )


WORKLOAD = make_workload(SPEC, CNN())
