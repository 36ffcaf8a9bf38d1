"""From trials to one time per workload: min over a study's trials, median over studies.

A trial that missed its target counts as infinite (so does a NaN), and infinities take part in
the median, as in AlgoPerf: a submission that misses in most studies has an infinite time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optarena.scoring.profiles import GROUP_KEYS, TIME

STUDY_KEYS = (*GROUP_KEYS, "study")


def _not_reached_as_inf(values: pd.Series) -> pd.Series:
    return values.astype(float).fillna(np.inf)


def study_times(trials: pd.DataFrame, value: str = TIME) -> pd.DataFrame:
    """The best (smallest) ``value`` over the trials of each study.

    ``trials`` has the columns ruleset, submission, workload, base_workload, study and ``value``
    (one row per trial); the result has one row per study with the same columns.
    """
    frame = trials[list(STUDY_KEYS)].copy()
    frame[value] = _not_reached_as_inf(trials[value])
    return frame.groupby(list(STUDY_KEYS), sort=True, as_index=False)[value].min()


def workload_times(studies: pd.DataFrame, value: str = TIME) -> pd.DataFrame:
    """The median over studies of each (ruleset, submission, workload); infinity counts."""
    frame = studies[list(GROUP_KEYS)].copy()
    frame[value] = _not_reached_as_inf(studies[value])
    return frame.groupby(list(GROUP_KEYS), sort=True, as_index=False)[value].agg(
        lambda values: float(np.median(values.to_numpy()))
    )


def flops_to_target(trials: pd.DataFrame) -> pd.Series:
    """``flops_per_step * steps_to_target`` per trial: infinite when the target was missed,
    NaN when the target was reached but the FLOPs of a step are unknown."""
    steps = _not_reached_as_inf(trials["steps_to_target"])
    flops = trials["flops_per_step"].astype(float)
    return pd.Series(
        np.where(np.isinf(steps), np.inf, flops * steps), index=trials.index, name="flops_to_target"
    )
