"""Prodigy (Mishchenko and Defazio, 2024) from ``optax.contrib``: learning-rate free, self-tuning.

Prodigy estimates the distance to the solution as it trains and sets Adam's step size from it,
so there is no learning rate to tune. As its authors recommend, the estimated step follows a
cosine decay to 0 at ``step_hint`` after a short warmup (with ``safeguard_warmup`` on). It has no
search space: it enters the self-tuning ruleset, where ``make_optimizer(None, info)`` is called.
"""

from __future__ import annotations

import optax
import optax.contrib

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.schedules import warmup_cosine

WARMUP_FACTOR = 0.05
WEIGHT_DECAY = 0.0


def prodigy(info: WorkloadInfo) -> optax.GradientTransformation:
    """Prodigy with a unit learning-rate multiplier on a warmup + cosine schedule."""
    schedule = warmup_cosine(1.0, WARMUP_FACTOR, info.step_hint)
    return optax.contrib.prodigy(schedule, weight_decay=WEIGHT_DECAY, safeguard_warmup=True)


SUBMISSION = Submission.from_builder(prodigy, self_tuning=True)
