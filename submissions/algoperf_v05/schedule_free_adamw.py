"""Schedule-Free AdamW (Defazio et al., 2024): the v0.5 entry in both rulesets.

The built-in `optarena.submissions.schedule_free_adamw` (``optax.contrib.schedule_free_adamw``
with a warmup of ``warmup_factor * step_hint`` steps, evaluated at its averaged point through
``eval_params``). Self-tuning runs the entry's fixed point (learning rate 0.0025, ``beta1`` 0.9,
``beta2`` 0.9955, weight decay 0.0812, warmup 2%); external tuning runs the baseline's five
points. The entry also weights its average by ``(k + 1) ** 0.75``; optax's average weights each
step by the learning rate alone.
"""

from __future__ import annotations

import optax.contrib

from optarena.submissions import Submission
from optarena.submissions.algoperf_v05.spaces import BASELINE_POINTS
from optarena.submissions.schedule_free_adamw import schedule_free_adamw

SELF_TUNING_POINT = {
    "learning_rate": 0.0025,
    "one_minus_beta1": 0.1,
    "beta2": 0.9955159689799007,
    "weight_decay": 0.08121616522670176,
    "warmup_factor": 0.02,
}

SUBMISSION = Submission.from_builder(
    schedule_free_adamw,
    BASELINE_POINTS,
    SELF_TUNING_POINT,
    name="v05_schedule_free_adamw",
    self_tuning=True,
    eval_params=optax.contrib.schedule_free_eval_params,
)
