"""Held-out variant of `shapes_unet`: tanh instead of GELU.

Same data, loss, metric, budget and ``step_hint`` as the base; only the model changes, and
the target is the variant's own.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn

from optarena.workloads import shapes_unet as base

SPEC = dataclasses.replace(
    base.SPEC,
    name="shapes_unet_tanh",
    base="shapes_unet",
    model="U-Net, 2 levels (8, 16 channels), tanh, residual output",
    validation_target=22.6,
    test_target=22.5,
)

WORKLOAD = base.make_workload(SPEC, base.UNet(activation=nn.tanh))
