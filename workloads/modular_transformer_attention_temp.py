"""Held-out variant of `modular_transformer`: attention logits divided by 4 (temperature 4).

Same data, loss, metric, budget and ``step_hint`` as the base; only the model changes, and
the target is the variant's own.
"""

from __future__ import annotations

import dataclasses

from optarena.workloads import modular_transformer as base

SPEC = dataclasses.replace(
    base.SPEC,
    name="modular_transformer_attention_temp",
    base="modular_transformer",
    model="decoder-only transformer, 1 block, width 64, 4 heads, attention temperature 4",
    validation_target=0.000426,
    test_target=0.000425,
)

WORKLOAD = base.make_workload(SPEC, base.Transformer(attention_temperature=4.0))
