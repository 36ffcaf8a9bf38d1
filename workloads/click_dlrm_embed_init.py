"""Held-out variant of `click_dlrm`: embeddings drawn from N(0, 1).

Same data, loss, metric, budget and ``step_hint`` as the base; only the model changes, and
the target is the variant's own.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn

from optarena.workloads import click_dlrm as base

SPEC = dataclasses.replace(
    base.SPEC,
    name="click_dlrm_embed_init",
    base="click_dlrm",
    model="DLRM with embeddings initialized N(0, 1) (4x the base's scale)",
    validation_target=0.406,
    test_target=0.407,
)

WORKLOAD = base.make_workload(SPEC, base.DLRM(embedding_init=nn.initializers.normal(1.0)))
