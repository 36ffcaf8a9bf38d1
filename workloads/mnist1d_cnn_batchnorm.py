"""Held-out variant of `mnist1d_cnn`: BatchNorm after every convolution (model state).

Same data, loss, metric, budget and ``step_hint`` as the base; only the model changes, and
the target is the variant's own.
"""

from __future__ import annotations

import dataclasses

from optarena.workloads import mnist1d_cnn as base

SPEC = dataclasses.replace(
    base.SPEC,
    name="mnist1d_cnn_batchnorm",
    base="mnist1d_cnn",
    model="1-D CNN, 3 conv layers x 32 channels, BatchNorm, GELU, global average pool",
    validation_target=0.016,
    test_target=0.033,
)

WORKLOAD = base.make_workload(SPEC, base.CNN1D(batch_norm=True))
