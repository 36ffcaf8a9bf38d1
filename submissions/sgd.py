"""SGD with heavy-ball or Nesterov momentum, L2 weight decay, linear warmup and cosine decay.

As AlgoPerf's SGD baselines: the weight decay is added to the gradient (coupled L2) before the
momentum, and the learning rate rises linearly from 0 for ``warmup_factor * step_hint`` steps,
then follows a cosine to 0 at ``step_hint``. The built-ins `sgd_momentum` and `sgd_nesterov`
are this module's two variants.
"""

from __future__ import annotations

import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.schedules import warmup_cosine

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


def submission(name: str, *, nesterov: bool) -> Submission:
    """SGD with Nesterov momentum if ``nesterov``, else heavy-ball momentum, named ``name``."""

    def sgd(
        info: WorkloadInfo, learning_rate, one_minus_momentum, weight_decay, warmup_factor
    ) -> optax.GradientTransformation:
        """L2 decay, then SGD with momentum on a warmup + cosine schedule."""
        schedule = warmup_cosine(learning_rate, warmup_factor, info.step_hint)
        momentum = 1.0 - one_minus_momentum
        return optax.chain(
            optax.add_decayed_weights(weight_decay),
            optax.sgd(schedule, momentum=momentum, nesterov=nesterov),
        )

    return Submission.from_builder(sgd, SEARCH_SPACE, DEFAULT_HPARAMS, name=name)
