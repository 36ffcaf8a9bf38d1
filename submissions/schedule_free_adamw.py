"""Schedule-free AdamW (Defazio et al., 2024) from ``optax.contrib``, evaluated at its average.

Schedule-free training needs no decay schedule: it trains at an interpolation between the
current iterate and a running average, and the average is what should be evaluated. The
``eval_params`` hook gives the harness that point (``optax.contrib.schedule_free_eval_params``);
its cost counts as training time. Only a warmup of ``warmup_factor * step_hint`` steps remains.
The default point needs no tuning, so it also enters the self-tuning ruleset.
"""

from __future__ import annotations

from typing import Any

import optax
import optax.contrib

from optarena.submissions.api import Hparams, Submission, WorkloadInfo

SEARCH_SPACE = {
    "learning_rate": {"min": 5e-4, "max": 2e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 0.02, "max": 0.2, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 1e-3, "max": 1.0, "scaling": "log"},
    "warmup_factor": {"feasible_points": [0.02, 0.05, 0.1]},
}

DEFAULT_HPARAMS = {
    "learning_rate": 1e-2,
    "one_minus_beta1": 0.1,
    "beta2": 0.999,
    "weight_decay": 0.01,
    "warmup_factor": 0.05,
}


def make_optimizer(hparams: Hparams | None, info: WorkloadInfo) -> optax.GradientTransformation:
    """``optax.contrib.schedule_free_adamw`` with a warmup sized by ``info.step_hint``."""
    hp = {**DEFAULT_HPARAMS, **(hparams or {})}
    return optax.contrib.schedule_free_adamw(
        learning_rate=hp["learning_rate"],
        warmup_steps=max(int(hp["warmup_factor"] * info.step_hint), 1),
        b1=1.0 - hp["one_minus_beta1"],
        b2=hp["beta2"],
        weight_decay=hp["weight_decay"],
    )


def eval_params(opt_state: Any, params: Any) -> Any:
    """The averaged point the schedule-free method should be evaluated at."""
    return optax.contrib.schedule_free_eval_params(opt_state, params)


SUBMISSION = Submission(
    name="schedule_free_adamw",
    make_optimizer=make_optimizer,
    search_space=SEARCH_SPACE,
    default_hparams=DEFAULT_HPARAMS,
    self_tuning=True,
    eval_params=eval_params,
)
