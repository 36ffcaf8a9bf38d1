"""LAWA EMA (Ajroldi et al.): NAdamW, evaluated at a moving average of its latest points.

AlgoPerf's NAdamW baseline (`optarena.submissions.nadamw`) trains; from
``lawa_burnin_pct * step_hint`` on, every ``lawa_every_pct * step_hint`` steps the parameters
enter a moving average with decay ``lawa_beta``, which is what is evaluated
(`averaging.lawa_ema`). Tuned over the baseline's five points with one fixed averaging setting;
the entry's own points are not reproduced.
"""

from __future__ import annotations

import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.algoperf_v05 import averaging
from optarena.submissions.algoperf_v05.spaces import (
    BASELINE_POINTS,
    SELF_TUNING_POINT,
    with_extra,
)
from optarena.submissions.nadamw import nadamw

AVERAGING = {"lawa_burnin_pct": 0.35, "lawa_every_pct": 0.01, "lawa_beta": 0.9}


def lawa_ema(
    info: WorkloadInfo,
    learning_rate,
    one_minus_beta1,
    beta2,
    weight_decay,
    warmup_factor,
    lawa_burnin_pct,
    lawa_every_pct,
    lawa_beta,
) -> optax.GradientTransformation:
    """NAdamW recording its latest points into a moving average."""
    return averaging.lawa_ema(
        nadamw(info, learning_rate, one_minus_beta1, beta2, weight_decay, warmup_factor),
        start=averaging.steps(lawa_burnin_pct, info.step_hint),
        every=averaging.steps(lawa_every_pct, info.step_hint),
        beta=float(lawa_beta),
    )


SUBMISSION = Submission.from_builder(
    lawa_ema,
    with_extra(BASELINE_POINTS, **AVERAGING),
    {**SELF_TUNING_POINT, **AVERAGING},
    name="v05_lawa_ema",
    eval_params=averaging.ema_average,
)
