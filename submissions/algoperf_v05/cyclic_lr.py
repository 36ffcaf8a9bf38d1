"""Cyclic LR (Ajroldi, Orvieto and Geiping): NAdamW on a cyclic learning-rate schedule.

The ``step_hint`` steps are split into ``num_cycles`` equal cycles (SGDR, Loshchilov and Hutter,
2017); each cycle warms up linearly from 0 to the peak over its first ``warmup_factor`` and then
follows a cosine to 0 (``optax.sgdr_schedule``). Tuned over the baseline's five points with two
cycles; the entry's own cycle lengths are not reproduced.
"""

from __future__ import annotations

import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.algoperf_v05.spaces import (
    BASELINE_POINTS,
    SELF_TUNING_POINT,
    with_extra,
)

NUM_CYCLES = 2


def cyclic_schedule(
    peak: float, warmup_factor: float, step_hint: int, num_cycles: int
) -> optax.Schedule:
    """``num_cycles`` equal cycles over ``step_hint`` steps, each a linear warmup over
    ``warmup_factor`` of the cycle then a cosine to 0."""
    if num_cycles < 1:
        raise ValueError(f"num_cycles must be at least 1, got {num_cycles=}")
    length = max(step_hint // num_cycles, 2)
    warmup = min(int(warmup_factor * length), length - 1)
    cycle = {
        "init_value": 0.0,
        "peak_value": peak,
        "warmup_steps": warmup,
        "decay_steps": length,
        "end_value": 0.0,
    }
    return optax.sgdr_schedule([cycle] * num_cycles)


def cyclic_lr(
    info: WorkloadInfo,
    learning_rate,
    one_minus_beta1,
    beta2,
    weight_decay,
    warmup_factor,
    num_cycles=NUM_CYCLES,
) -> optax.GradientTransformation:
    """NAdamW on `cyclic_schedule`."""
    schedule = cyclic_schedule(learning_rate, warmup_factor, info.step_hint, int(num_cycles))
    return optax.nadamw(schedule, 1.0 - one_minus_beta1, beta2, eps=1e-8, weight_decay=weight_decay)


SUBMISSION = Submission.from_builder(
    cyclic_lr,
    with_extra(BASELINE_POINTS, num_cycles=NUM_CYCLES),
    SELF_TUNING_POINT,
    name="v05_cyclic_lr",
)
