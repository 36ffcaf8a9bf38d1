"""Baseline (NAdamW): AlgoPerf's v0.5 baseline, in both rulesets.

NAdamW with a linear warmup and a cosine decay to 0 at ``step_hint`` (the built-in
`optarena.submissions.nadamw`), tuned over the baseline's five published points; under the
self-tuning ruleset it runs the self-tuning baseline's fixed point.
"""

from __future__ import annotations

from optarena.submissions import Submission
from optarena.submissions.algoperf_v05.spaces import BASELINE_POINTS, SELF_TUNING_POINT
from optarena.submissions.nadamw import nadamw

SUBMISSION = Submission.from_builder(
    nadamw, BASELINE_POINTS, SELF_TUNING_POINT, name="v05_baseline", self_tuning=True
)
