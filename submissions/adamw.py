"""AdamW (decoupled weight decay) with linear warmup and cosine decay, from optax pieces.

The learning rate rises linearly from 0 for ``warmup_factor * step_hint`` steps, then follows
a cosine to 0 at ``step_hint``. Its default point is a robust recipe, so it also enters the
self-tuning ruleset (``make_optimizer(None, info)`` uses it).
"""

from __future__ import annotations

import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.adam_space import DEFAULT_HPARAMS, SEARCH_SPACE
from optarena.submissions.schedules import warmup_cosine


def adamw(
    info: WorkloadInfo, learning_rate, one_minus_beta1, beta2, weight_decay, warmup_factor
) -> optax.GradientTransformation:
    """AdamW on a warmup + cosine schedule sized by ``info.step_hint``."""
    schedule = warmup_cosine(learning_rate, warmup_factor, info.step_hint)
    return optax.adamw(schedule, 1.0 - one_minus_beta1, beta2, eps=1e-8, weight_decay=weight_decay)


SUBMISSION = Submission.from_builder(adamw, SEARCH_SPACE, DEFAULT_HPARAMS, self_tuning=True)
