"""Prodigy (Mishchenko and Defazio, 2024) from ``optax.contrib``: learning-rate free, self-tuning.

Prodigy estimates the distance to the solution as it trains and sets Adam's step size from it,
so there is no learning rate to tune. As its authors recommend, the estimated step follows a
cosine decay to 0 at ``step_hint`` after a short warmup (with ``safeguard_warmup`` on). It has no
search space: it enters the self-tuning ruleset, where ``make_optimizer(None, info)`` is called.
"""

from __future__ import annotations

import optax
import optax.contrib

from optarena.submissions.api import Hparams, Submission, WorkloadInfo

WARMUP_FACTOR = 0.05
WEIGHT_DECAY = 0.0


def make_optimizer(hparams: Hparams | None, info: WorkloadInfo) -> optax.GradientTransformation:
    """Prodigy with a unit learning-rate multiplier on a warmup + cosine schedule."""
    if hparams:
        raise ValueError(f"prodigy has no hyperparameters to set, got {sorted(hparams)}")
    warmup_steps = int(WARMUP_FACTOR * info.step_hint)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=1.0,
        warmup_steps=warmup_steps,
        decay_steps=max(info.step_hint, warmup_steps + 1),
        end_value=0.0,
    )
    return optax.contrib.prodigy(
        learning_rate=schedule, weight_decay=WEIGHT_DECAY, safeguard_warmup=True
    )


SUBMISSION = Submission(
    name="prodigy",
    make_optimizer=make_optimizer,
    search_space=None,
    self_tuning=True,
)
