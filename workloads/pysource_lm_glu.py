"""Held-out variant of `pysource_lm`: gated (GLU) feed-forward layers instead of plain MLPs.

Same data, loss, metric, budget and ``step_hint`` as the base; only the model changes (each
block's feed-forward multiplies its GELU branch by a second linear branch), and the target is
the variant's own.
"""

from __future__ import annotations

import dataclasses

from optarena.workloads import pysource_lm as base

SPEC = dataclasses.replace(
    base.SPEC,
    name="pysource_lm_glu",
    base="pysource_lm",
    model="byte-level decoder-only transformer, 2 pre-LN blocks, width 64, 4 heads, GELU GLU",
    validation_target=2.67,
    test_target=2.63,
)

WORKLOAD = base.make_workload(SPEC, base.LanguageModel(glu=True))
