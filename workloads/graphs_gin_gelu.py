"""Held-out variant of `graphs_gin`: GELU instead of ReLU.

Same data, loss, metric, budget and ``step_hint`` as the base; only the model changes, and
the target is the variant's own.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn

from optarena.workloads import graphs_gin as base

SPEC = dataclasses.replace(
    base.SPEC,
    name="graphs_gin_gelu",
    base="graphs_gin",
    model="GIN, 3 layers of width 64, GELU, sum pooling, 4 logits",
    validation_target=0.00175,
    test_target=0.00213,
)

WORKLOAD = base.make_workload(SPEC, base.GIN(activation=nn.gelu))
