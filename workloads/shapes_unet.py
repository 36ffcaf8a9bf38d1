"""A small U-Net denoising generated 16x16 shape images: a reconstruction workload.

Model: two resolution levels (8 and 16 channels), a skip connection, GELU, and a residual
output (the network predicts the correction to its noisy input). Loss: L1. Metric: mean
per-image PSNR in dB, to be maximized.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from optarena.workloads.base import Workload
from optarena.workloads.datasets.shapes import SIZE, OptarenaShapes
from optarena.workloads.reconstruction import make_reconstruction_workload
from optarena.workloads.spec import MetricMode, WorkloadSpec

SPEC = WorkloadSpec(
    name="shapes_unet",
    family="unet",
    dataset="optarena_shapes",
    model="U-Net, 2 levels (8, 16 channels), residual output",
    loss="mean absolute error",
    metric="psnr",
    mode=MetricMode.MAX,
    validation_target=22.5,
    test_target=22.4,
    budget_sec=38.65,
    step_hint=2000,
    eval_every_steps=40,
    batch_size=64,
    eval_batch_size=500,
    num_train_examples=4000,
)


class UNet(nn.Module):
    """Encoder-decoder with one downsampling and a skip connection."""

    channels: int = 8
    activation: Callable[[jax.Array], jax.Array] = nn.gelu

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        act = self.activation
        conv = lambda features: nn.Conv(features, kernel_size=(3, 3))  # noqa: E731
        skip = act(conv(self.channels)(act(conv(self.channels)(x))))
        down = nn.Conv(2 * self.channels, kernel_size=(3, 3), strides=(2, 2))(skip)
        down = act(conv(2 * self.channels)(act(down)))
        up = nn.ConvTranspose(self.channels, kernel_size=(2, 2), strides=(2, 2))(down)
        y = jnp.concatenate([act(up), skip], axis=-1)
        y = act(conv(self.channels)(y))
        return x + conv(1)(y)


def make_workload(spec: WorkloadSpec, model: nn.Module) -> Workload:
    """This workload's data, loss and metric around ``model``; held-out variants swap the model."""
    return make_reconstruction_workload(
        spec,
        model,
        OptarenaShapes,
        input_key="noisy",
        target_key="clean",
        input_shape=(SIZE, SIZE, 1),
    )


WORKLOAD = make_workload(SPEC, UNet())
