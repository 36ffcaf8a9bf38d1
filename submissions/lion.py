"""Lion (Chen et al., 2023), sign-of-momentum updates, with warmup and cosine decay, from optax.

Lion's updates have unit size per coordinate, so its learning rate is several times smaller
and its decoupled weight decay several times larger than AdamW's; the search space is shifted
accordingly. The learning rate rises linearly from 0 for ``warmup_factor * step_hint`` steps,
then follows a cosine to 0 at ``step_hint``.
"""

from __future__ import annotations

import optax

from optarena.submissions.api import Hparams, Submission, WorkloadInfo

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
    """``optax.lion`` on a warmup + cosine schedule sized by ``info.step_hint``."""
    hp = {**DEFAULT_HPARAMS, **(hparams or {})}
    return optax.lion(
        learning_rate=warmup_cosine(hp["learning_rate"], hp["warmup_factor"], info.step_hint),
        b1=1.0 - hp["one_minus_beta1"],
        b2=1.0 - hp["one_minus_beta2"],
        weight_decay=hp["weight_decay"],
    )


SUBMISSION = Submission(
    name="lion",
    make_optimizer=make_optimizer,
    search_space=SEARCH_SPACE,
    default_hparams=DEFAULT_HPARAMS,
)
