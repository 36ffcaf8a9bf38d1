"""Lion (Chen et al., 2023), sign-of-momentum updates, with warmup and cosine decay, from optax.

Lion's updates have unit size per coordinate, so its learning rate is several times smaller
and its decoupled weight decay several times larger than AdamW's; the search space is shifted
accordingly. The learning rate rises linearly from 0 for ``warmup_factor * step_hint`` steps,
then follows a cosine to 0 at ``step_hint``.
"""

from __future__ import annotations

import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.schedules import warmup_cosine

SEARCH_SPACE = {
    "learning_rate": {"min": 3e-5, "max": 3e-3, "scaling": "log"},
    "one_minus_beta1": {"min": 0.02, "max": 0.2, "scaling": "log"},
    "one_minus_beta2": {"min": 0.001, "max": 0.1, "scaling": "log"},
    "weight_decay": {"min": 1e-2, "max": 10.0, "scaling": "log"},
    "warmup_factor": {"feasible_points": [0.02, 0.05, 0.1]},
}

DEFAULT_HPARAMS = {
    "learning_rate": 3e-4,
    "one_minus_beta1": 0.1,
    "one_minus_beta2": 0.01,
    "weight_decay": 0.1,
    "warmup_factor": 0.05,
}


def lion(
    info: WorkloadInfo, learning_rate, one_minus_beta1, one_minus_beta2, weight_decay, warmup_factor
) -> optax.GradientTransformation:
    """``optax.lion`` on a warmup + cosine schedule sized by ``info.step_hint``."""
    schedule = warmup_cosine(learning_rate, warmup_factor, info.step_hint)
    b1, b2 = 1.0 - one_minus_beta1, 1.0 - one_minus_beta2
    return optax.lion(schedule, b1=b1, b2=b2, weight_decay=weight_decay)


SUBMISSION = Submission.from_builder(lion, SEARCH_SPACE, DEFAULT_HPARAMS)
