"""Adam (no weight decay) with linear warmup and cosine decay, from optax pieces.

The learning rate rises linearly from 0 for ``warmup_factor * step_hint`` steps, then follows
a cosine to 0 at ``step_hint``. Its search space is AlgoPerf's Adam-family space without
weight decay.
"""

from __future__ import annotations

import optax

from optarena.submissions import Submission, WorkloadInfo, adam_space
from optarena.submissions.schedules import warmup_cosine

SEARCH_SPACE = {k: v for k, v in adam_space.SEARCH_SPACE.items() if k != "weight_decay"}
DEFAULT_HPARAMS = {k: v for k, v in adam_space.DEFAULT_HPARAMS.items() if k != "weight_decay"}


def adam(
    info: WorkloadInfo, learning_rate, one_minus_beta1, beta2, warmup_factor
) -> optax.GradientTransformation:
    """Adam on a warmup + cosine schedule sized by ``info.step_hint``."""
    schedule = warmup_cosine(learning_rate, warmup_factor, info.step_hint)
    return optax.adam(schedule, b1=1.0 - one_minus_beta1, b2=beta2, eps=1e-8)


SUBMISSION = Submission.from_builder(adam, SEARCH_SPACE, DEFAULT_HPARAMS)
