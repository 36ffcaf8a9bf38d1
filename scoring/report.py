"""Everything `optarena score` reports, from a table of times or from stored trials.

Next to AlgoPerf's wall-clock score: bootstrap intervals over studies, the probability that
one submission outscores another, the same score computed on steps to target and on FLOPs to
target (``flops_per_step * steps_to_target``, hardware-independent), and rank stability.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from optarena.scoring import stability, uncertainty
from optarena.scoring.aggregate import STUDY_KEYS, flops_to_target, study_times, workload_times
from optarena.scoring.profiles import TIME, score_times
from optarena.scoring.times_table import STUDY

STEPS = "steps_to_target"
FLOPS = "flops_to_target"
TRIAL_COLUMNS = (*STUDY_KEYS, TIME, STEPS, "flops_per_step")


@dataclasses.dataclass(frozen=True)
class Report:
    """Scores and what stands behind them, one frame each."""

    scores: pd.DataFrame
    """rank, ruleset, submission, score, num_workloads, then score_low and score_high when
    studies are known, then steps_score and flops_score when trials are."""
    workloads: pd.DataFrame
    """Per ruleset, submission and base workload: median time, penalized time, ratio, mark."""
    profiles: pd.DataFrame
    """ruleset, submission, tau, rho."""
    pairwise: pd.DataFrame
    """ruleset, submission, opponent, p_outscores (empty without studies)."""
    stability: pd.DataFrame
    """ruleset, left_out, ranking, order_changed, kendall_tau."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """How the extras are computed; stored with every snapshot."""

    replicates: int = uncertainty.DEFAULT_REPLICATES
    seed: int = 0
    level: float = uncertainty.DEFAULT_LEVEL


def _with_intervals(
    scores: pd.DataFrame, studies: pd.DataFrame, settings: Settings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    boots = uncertainty.bootstrap_scores(
        studies, replicates=settings.replicates, seed=settings.seed
    )
    intervals = uncertainty.confidence_intervals(boots, settings.level)
    return scores.merge(intervals, on=["ruleset", "submission"], how="left"), (
        uncertainty.win_probabilities(boots)
    )


def _no_pairs() -> pd.DataFrame:
    return pd.DataFrame(columns=["ruleset", "submission", "opponent", "p_outscores"])


def score_times_table(times: pd.DataFrame, settings: Settings | None = None) -> Report:
    """A validated times table: one time per workload, or per study (then with intervals)."""
    settings = settings or Settings()
    studies = times if STUDY in times.columns else None
    per_workload = workload_times(times) if studies is not None else times
    tables = score_times(per_workload)
    scores, pairwise = tables.scores, _no_pairs()
    if studies is not None:
        scores, pairwise = _with_intervals(scores, studies, settings)
    return Report(
        scores=scores,
        workloads=tables.workloads,
        profiles=tables.profiles,
        pairwise=pairwise,
        stability=stability.leave_one_workload_out(per_workload),
    )


def _other_score(trials: pd.DataFrame, value: str) -> pd.DataFrame:
    """The AlgoPerf score on another per-trial quantity; NaN for a ruleset where a trial that
    reached its target has no value (unknown FLOPs): ratios to an unknown minimum mean nothing."""
    studies = study_times(trials, value)
    scores = score_times(workload_times(studies, value), value).scores
    reached = np.isfinite(trials[TIME].astype(float))
    unknown = trials.loc[reached & trials[value].isna(), "ruleset"].unique()
    scores.loc[scores["ruleset"].isin(unknown), "score"] = np.nan
    return scores[["ruleset", "submission", "score"]]


def score_trials(trials: pd.DataFrame, settings: Settings | None = None) -> Report:
    """Score benchmark trials (the store's ``benchmark_trials()`` frame, one row per trial)."""
    settings = settings or Settings()
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(f"trials lack column(s) {', '.join(missing)}")
    if trials.empty:
        raise ValueError("no benchmark trials to score")
    studies = study_times(trials)
    per_workload = workload_times(studies)
    tables = score_times(per_workload)
    scores, pairwise = _with_intervals(tables.scores, studies, settings)
    with_flops = trials.assign(**{FLOPS: flops_to_target(trials)})
    for value, column in ((STEPS, "steps_score"), (FLOPS, "flops_score")):
        other = _other_score(with_flops, value).rename(columns={"score": column})
        scores = scores.merge(other, on=["ruleset", "submission"], how="left")
    counts = (
        trials.assign(reached=np.isfinite(trials[TIME].astype(float)))
        .groupby(["ruleset", "submission", "workload"], as_index=False)
        .agg(num_trials=("reached", "size"), trials_reached=("reached", "sum"))
    )
    workloads = tables.workloads.merge(
        counts, on=["ruleset", "submission", "workload"], how="left"
    ).fillna({"num_trials": 0, "trials_reached": 0})
    return Report(
        scores=scores,
        workloads=workloads,
        profiles=tables.profiles,
        pairwise=pairwise,
        stability=stability.leave_one_workload_out(per_workload),
    )
