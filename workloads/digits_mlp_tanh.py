"""Held-out variant of `digits_mlp`: tanh instead of ReLU.

Same data, loss, metric, budget and ``step_hint`` as the base; only the model changes, and
the target is the variant's own.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn

from optarena.workloads import digits_mlp as base

SPEC = dataclasses.replace(
    base.SPEC,
    name="digits_mlp_tanh",
    base="digits_mlp",
    model="MLP 64-128-128-10, tanh",
    validation_target=0.0367,
    test_target=0.0367,
)

WORKLOAD = base.make_workload(SPEC, base.MLP(activation=nn.tanh))
