"""NAdamW with linear warmup and cosine decay: AlgoPerf's baseline recipe, from optax pieces.

The learning rate rises linearly from 0 for ``warmup_factor * step_hint`` steps, then
follows a cosine to 0 at ``step_hint``. Optional gradient clipping by global norm. The default
point is AlgoPerf's robust recipe, so it also enters the self-tuning ruleset
(``make_optimizer(None, info)`` uses it).
"""

from __future__ import annotations

import optax

from optarena.submissions.api import Hparams, Submission, WorkloadInfo

SEARCH_SPACE = {
    "learning_rate": {"min": 3e-4, "max": 3e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 0.02, "max": 0.2, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 1e-3, "max": 1.0, "scaling": "log"},
    "warmup_factor": {"feasible_points": [0.02, 0.05, 0.1]},
}

DEFAULT_HPARAMS = {
    "learning_rate": 3e-3,
    "one_minus_beta1": 0.1,
    "beta2": 0.999,
    "weight_decay": 0.01,
    "warmup_factor": 0.05,
}


def make_optimizer(hparams: Hparams | None, info: WorkloadInfo) -> optax.GradientTransformation:
    """NAdamW on a warmup + cosine schedule sized by ``info.step_hint``."""
    hp = {**DEFAULT_HPARAMS, **(hparams or {})}
    warmup_steps = int(hp["warmup_factor"] * info.step_hint)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=hp["learning_rate"],
        warmup_steps=warmup_steps,
        decay_steps=max(info.step_hint, warmup_steps + 1),
        end_value=0.0,
    )
    nadamw = optax.nadamw(
        learning_rate=schedule,
        b1=1.0 - hp["one_minus_beta1"],
        b2=hp["beta2"],
        eps=1e-8,
        weight_decay=hp["weight_decay"],
    )
    if hp.get("grad_clip") is None:
        return nadamw
    return optax.chain(optax.clip_by_global_norm(hp["grad_clip"]), nadamw)


SUBMISSION = Submission(
    name="nadamw",
    make_optimizer=make_optimizer,
    search_space=SEARCH_SPACE,
    default_hparams=DEFAULT_HPARAMS,
    self_tuning=True,
)
