"""LAWA EMA (Ajroldi et al.): NAdamW, evaluated at a moving average of its latest points.

The v0.5 baseline (`baseline`: NAdamW planned for 3/4 of ``step_hint``) trains; from
``lawa_burnin_pct * step_hint`` on, every ``lawa_every_pct * step_hint`` steps the parameters
enter a moving average with decay ``lawa_beta``, which is what is evaluated
(`averaging.nadamw_lawa`, `averaging.lawa_ema`). Tuned over the baseline's five points with one
fixed averaging setting; the entry's own points are not reproduced.
"""

from __future__ import annotations

from optarena.submissions import Submission
from optarena.submissions.algoperf_v05 import averaging
from optarena.submissions.algoperf_v05.spaces import (
    BASELINE_POINTS,
    SELF_TUNING_POINT,
    with_extra,
)

AVERAGING = {"lawa_burnin_pct": 0.35, "lawa_every_pct": 0.01, "lawa_beta": 0.9}

SUBMISSION = Submission.from_builder(
    averaging.nadamw_lawa,
    with_extra(BASELINE_POINTS, **AVERAGING),
    {**SELF_TUNING_POINT, **AVERAGING},
    name="v05_lawa_ema",
    eval_params=averaging.ema_average,
)
