"""Distributed Shampoo (Meta's v0.5 winner): Adam-grafted Shampoo, tuned over five points.

The entry is PyTorch Distributed Shampoo (Shi et al., 2023): Kronecker-factored
preconditioning of each matrix, grafted onto Adam's step length, with momentum, decoupled weight
decay and a warmup + cosine schedule, and a list of five hyperparameter points. Here it is the
built-in `optarena.submissions.shampoo` (the same recipe from optax pieces) tuned over the
baseline's five points; the PyTorch implementation's distribution, blocking of large
dimensions and its preconditioning every 100 steps (here every 10) are not reproduced.
"""

from __future__ import annotations

from optarena.submissions import Submission
from optarena.submissions.algoperf_v05.spaces import BASELINE_POINTS, SELF_TUNING_POINT
from optarena.submissions.shampoo import shampoo

SUBMISSION = Submission.from_builder(
    shampoo, BASELINE_POINTS, SELF_TUNING_POINT, name="v05_shampoo"
)
