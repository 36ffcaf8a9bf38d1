"""NAdamW with linear warmup and cosine decay: AlgoPerf's baseline recipe, from optax pieces.

The learning rate rises linearly from 0 for ``warmup_factor * step_hint`` steps, then
follows a cosine to 0 at ``step_hint``. Optional gradient clipping by global norm
(``grad_clip``). The default point is AlgoPerf's robust recipe, so it also enters the
self-tuning ruleset (``make_optimizer(None, info)`` uses it).
"""

from __future__ import annotations

import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.adam_space import DEFAULT_HPARAMS, SEARCH_SPACE
from optarena.submissions.schedules import warmup_cosine


def nadamw(
    info: WorkloadInfo,
    learning_rate,
    one_minus_beta1,
    beta2,
    weight_decay,
    warmup_factor,
    grad_clip=None,
) -> optax.GradientTransformation:
    """NAdamW on a warmup + cosine schedule, after clipping by global norm if ``grad_clip``."""
    schedule = warmup_cosine(learning_rate, warmup_factor, info.step_hint)
    tx = optax.nadamw(schedule, 1.0 - one_minus_beta1, beta2, eps=1e-8, weight_decay=weight_decay)
    return tx if grad_clip is None else optax.chain(optax.clip_by_global_norm(grad_clip), tx)


SUBMISSION = Submission.from_builder(nadamw, SEARCH_SPACE, DEFAULT_HPARAMS, self_tuning=True)

make_optimizer = SUBMISSION.make_optimizer
"""The baseline's factory, for variants that wrap it."""
