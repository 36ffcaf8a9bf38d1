"""AlgoPerf's search space and default point for the Adam family, shared by the built-ins.

These are the space and the robust default point of AlgoPerf's NAdamW baseline: a log-scaled
learning rate, ``1 - beta1`` and weight decay, two choices of ``beta2`` and of the warmup
fraction. `adamw`, `nadamw` and `shampoo` use them as they are; `adam`, `lamb` and
`schedule_free_adamw` derive theirs from them.
"""

from __future__ import annotations

from typing import Any

DEFAULT_HPARAMS = {
    "learning_rate": 3e-3,
    "one_minus_beta1": 0.1,
    "beta2": 0.999,
    "weight_decay": 0.01,
    "warmup_factor": 0.05,
}

SEARCH_SPACE = {
    "learning_rate": {"min": 3e-4, "max": 3e-2, "scaling": "log"},
    "one_minus_beta1": {"min": 0.02, "max": 0.2, "scaling": "log"},
    "beta2": {"feasible_points": [0.99, 0.999]},
    "weight_decay": {"min": 1e-3, "max": 1.0, "scaling": "log"},
    "warmup_factor": {"feasible_points": [0.02, 0.05, 0.1]},
}


def with_learning_rate(
    low: float, high: float, default: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """This space and default point with the learning rate log-scaled on ``[low, high]`` and
    ``default`` at the default point, for an Adam variant whose steps are larger or smaller."""
    space = {**SEARCH_SPACE, "learning_rate": {"min": low, "max": high, "scaling": "log"}}
    return space, {**DEFAULT_HPARAMS, "learning_rate": default}
