"""Held-out variant of `speech_conformer`: GELU instead of swish, as AlgoPerf's Conformer GELU.

Same data, loss, metric, budget and ``step_hint`` as the base; only the model changes, and
the target is the variant's own.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn

from optarena.workloads import speech_conformer as base

SPEC = dataclasses.replace(
    base.SPEC,
    name="speech_conformer_gelu",
    base="speech_conformer",
    model="conformer, stride-2 conv subsampling, 1 block of width 64, 4 heads, kernel 7, GELU",
    validation_target=0.052,
    test_target=0.0554,
)

WORKLOAD = base.make_workload(SPEC, base.Conformer(activation=nn.gelu))
