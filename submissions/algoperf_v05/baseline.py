"""Baseline (NAdamW): AlgoPerf's v0.5 baseline, in both rulesets.

NAdamW with a linear warmup and a cosine decay to 0 (the built-in
`optarena.submissions.nadamw`), planned, as AlgoPerf's full-budget baseline plans it, for
three quarters of ``step_hint``: the warmup is ``warmup_factor`` of that and the learning rate
is 0 from there on. Tuned over the baseline's five published points; under the self-tuning
ruleset it runs the self-tuning baseline's fixed point.
"""

from __future__ import annotations

import dataclasses

import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.algoperf_v05.spaces import BASELINE_POINTS, SELF_TUNING_POINT
from optarena.submissions.nadamw import nadamw

SCHEDULE_FRACTION = 0.75


def baseline(
    info: WorkloadInfo, learning_rate, one_minus_beta1, beta2, weight_decay, warmup_factor
) -> optax.GradientTransformation:
    """NAdamW on a warmup + cosine schedule over ``SCHEDULE_FRACTION * step_hint`` steps."""
    planned = max(int(SCHEDULE_FRACTION * info.step_hint), 1)
    return nadamw(
        dataclasses.replace(info, step_hint=planned),
        learning_rate,
        one_minus_beta1,
        beta2,
        weight_decay,
        warmup_factor,
    )


SUBMISSION = Submission.from_builder(
    baseline, BASELINE_POINTS, SELF_TUNING_POINT, name="v05_baseline", self_tuning=True
)
