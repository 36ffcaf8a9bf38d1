"""Schedule-free AdamW (Defazio et al., 2024) from ``optax.contrib``, evaluated at its average.

Schedule-free training needs no decay schedule: it trains at an interpolation between the
current iterate and a running average, and the average is what should be evaluated. The
``eval_params`` hook gives the harness that point (``optax.contrib.schedule_free_eval_params``);
its cost counts as training time. Only a warmup of ``warmup_factor * step_hint`` steps remains.
Its search space is AlgoPerf's Adam-family space with a narrower, higher learning-rate range.
The default point needs no tuning, so it also enters the self-tuning ruleset.
"""

from __future__ import annotations

import optax
import optax.contrib

from optarena.submissions import Submission, WorkloadInfo, adam_space

SEARCH_SPACE, DEFAULT_HPARAMS = adam_space.with_learning_rate(5e-4, 2e-2, default=1e-2)


def schedule_free_adamw(
    info: WorkloadInfo, learning_rate, one_minus_beta1, beta2, weight_decay, warmup_factor
) -> optax.GradientTransformation:
    """``optax.contrib.schedule_free_adamw`` with a warmup sized by ``info.step_hint``."""
    return optax.contrib.schedule_free_adamw(
        learning_rate,
        warmup_steps=max(int(warmup_factor * info.step_hint), 1),
        b1=1.0 - one_minus_beta1,
        b2=beta2,
        weight_decay=weight_decay,
    )


SUBMISSION = Submission.from_builder(
    schedule_free_adamw,
    SEARCH_SPACE,
    DEFAULT_HPARAMS,
    self_tuning=True,
    eval_params=optax.contrib.schedule_free_eval_params,
)
