"""Held-out variant of `numbers_translate`: gated (GLU) feed-forward layers, GELU-gated.

Each MLP computes ``gelu(W1 y) * (W2 y)`` before its output projection, as AlgoPerf's WMT
GLU variant. Same data, loss, metric, budget and ``step_hint`` as the base; only the model
changes, and the target is the variant's own.
"""

from __future__ import annotations

import dataclasses

from optarena.workloads import numbers_translate as base

SPEC = dataclasses.replace(
    base.SPEC,
    name="numbers_translate_glu",
    base="numbers_translate",
    model="encoder-decoder transformer, 1 + 1 blocks, width 32, 4 heads, GLU feed-forward",
    validation_target=0.004,
    test_target=0.006,
)

WORKLOAD = base.make_workload(SPEC, base.Translator(glu=True))
