"""Held-out variant of `digits_vit`: post-LayerNorm blocks (AlgoPerf's ``use_post_layer_norm``).

Each residual sum is normalized after it instead of each branch's input before it, and the
final LayerNorm goes. Same data, loss, metric, budget and ``step_hint`` as the base; only the
model changes, and the target is the variant's own.
"""

from __future__ import annotations

import dataclasses

from optarena.workloads import digits_vit as base

SPEC = dataclasses.replace(
    base.SPEC,
    name="digits_vit_post_ln",
    base="digits_vit",
    model="ViT, 2x2 patches, 2 post-LN blocks, width 32, 4 heads, MLP 64, mean pooling",
    validation_target=0.06,
    test_target=0.0567,
)

WORKLOAD = base.make_workload(SPEC, base.ViT(post_layer_norm=True))
