"""SGD with heavy-ball momentum, L2 weight decay, linear warmup and cosine decay, from optax pieces.

As AlgoPerf's SGD baseline: the weight decay is added to the gradient (coupled L2) before the
momentum, and the learning rate rises linearly from 0 for ``warmup_factor * step_hint`` steps,
then follows a cosine to 0 at ``step_hint``.
"""

from __future__ import annotations

import optax

from optarena.submissions.api import Hparams, Submission, WorkloadInfo

SEARCH_SPACE = {
    "learning_rate": {"min": 1e-2, "max": 1.0, "scaling": "log"},
    "one_minus_momentum": {"min": 0.01, "max": 0.2, "scaling": "log"},
    "weight_decay": {"min": 1e-6, "max": 1e-3, "scaling": "log"},
    "warmup_factor": {"feasible_points": [0.02, 0.05, 0.1]},
}

DEFAULT_HPARAMS = {
    "learning_rate": 0.1,
    "one_minus_momentum": 0.1,
    "weight_decay": 1e-5,
    "warmup_factor": 0.05,
}


def warmup_cosine(peak: float, warmup_factor: float, step_hint: int) -> optax.Schedule:
    """Linear warmup from 0 over ``warmup_factor * step_hint`` steps, cosine to 0 at step_hint."""
    warmup_steps = int(warmup_factor * step_hint)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak,
        warmup_steps=warmup_steps,
        decay_steps=max(step_hint, warmup_steps + 1),
        end_value=0.0,
    )


def make_optimizer(hparams: Hparams | None, info: WorkloadInfo) -> optax.GradientTransformation:
    """L2 decay, then SGD with heavy-ball momentum on a warmup + cosine schedule."""
    hp = {**DEFAULT_HPARAMS, **(hparams or {})}
    return optax.chain(
        optax.add_decayed_weights(hp["weight_decay"]),
        optax.sgd(
            learning_rate=warmup_cosine(hp["learning_rate"], hp["warmup_factor"], info.step_hint),
            momentum=1.0 - hp["one_minus_momentum"],
            nesterov=False,
        ),
    )


SUBMISSION = Submission(
    name="sgd_momentum",
    make_optimizer=make_optimizer,
    search_space=SEARCH_SPACE,
    default_hparams=DEFAULT_HPARAMS,
)
