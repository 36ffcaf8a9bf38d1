"""LAMB (You et al., 2020), layer-wise trust ratios for large batches, with warmup and cosine.

Each layer's Adam step is rescaled by ``||w|| / ||update||`` (``optax.lamb``), so the learning
rate sets a relative step per layer and large batches train stably. The learning rate rises
linearly from 0 for ``warmup_factor * step_hint`` steps, then follows a cosine to 0 at
``step_hint``. Its search space is AlgoPerf's Adam-family space with larger learning rates.
"""

from __future__ import annotations

import optax

from optarena.submissions import Submission, WorkloadInfo, adam_space
from optarena.submissions.schedules import warmup_cosine

SEARCH_SPACE, DEFAULT_HPARAMS = adam_space.with_learning_rate(1e-3, 1e-1, default=1e-2)


def lamb(
    info: WorkloadInfo, learning_rate, one_minus_beta1, beta2, weight_decay, warmup_factor
) -> optax.GradientTransformation:
    """``optax.lamb`` on a warmup + cosine schedule sized by ``info.step_hint``."""
    schedule = warmup_cosine(learning_rate, warmup_factor, info.step_hint)
    return optax.lamb(schedule, b1=1.0 - one_minus_beta1, b2=beta2, weight_decay=weight_decay)


SUBMISSION = Submission.from_builder(lamb, SEARCH_SPACE, DEFAULT_HPARAMS)
