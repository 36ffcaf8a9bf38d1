"""Two nights' scores side by side: what changed, and which change is more than noise.

Scores are relative within a ruleset (a ratio to the fastest submission), so when one
submission gets slower the others' scores can only stay or rise, and when one gets faster the
others' can fall without anything of theirs changing. A regression is therefore judged on a
submission's *own* times, never on its score alone:

- per (ruleset, submission, workload), the night's **noise band** is the range
  ``[min, max]`` of its per-study times (each study's best trial), which is the range the
  bootstrap median over studies can take;
- studies are **paired**: the same study of a benchmark seed trains the same points on the same
  seeds every night, so a deterministic submission takes the same steps to its target, and its
  study's time moves only with the cost of a step. Each study that reached the target on both
  nights gives a ratio ``now / before``;
- the workload **regressed** when its median time went from finite to infinite (the target is
  now missed), or when every paired study is slower than itself the previous night by more
  than the timing tolerance: ``min(now / before) > 1 + tolerance``. With a finite median on
  both nights, more than half the studies reached the target each night, so at least one
  study is paired. Pairing is more sensitive than comparing the nights' bands (a uniform
  slowdown shows however much the studies' times differ from each other), never less: every
  study above the previous band is above its own previous time;
- it **improved** in the mirror cases, and is **within noise** otherwise;
- a submission regressed when one of its workloads did. Its score delta is shown with both
  nights' bootstrap intervals; a score whose intervals do not overlap but whose own times did not
  regress is marked as moved by the others.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum

import numpy as np
import pandas as pd

from optarena.scoring.aggregate import STUDY_KEYS, study_times
from optarena.scoring.profiles import TIME

STEPS = "steps_to_target"
CELL_KEYS = ["ruleset", "submission", "workload"]


class Verdict(StrEnum):
    """What happened to one submission's time on one workload between two nights."""

    REGRESSED = "regressed"
    NEWLY_MISSED = "newly missed"
    IMPROVED = "improved"
    NEWLY_REACHED = "newly reached"
    WITHIN_NOISE = "within noise"
    MISSED_BOTH = "missed both nights"
    NEW = "new"
    REMOVED = "removed"


REGRESSIONS = frozenset({Verdict.REGRESSED, Verdict.NEWLY_MISSED})


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The comparison of tonight's snapshot with the previous one."""

    scores: pd.DataFrame
    """ruleset, submission, presence (both/new/removed), rank_before, rank_now, score_before,
    score_now, delta and its interval (delta_low, delta_high: the widest difference the two
    nights' intervals allow), score_low/high before and now, steps and FLOPs scores before and now,
    interval_shift (lower/higher/overlapping), regressed (own workloads), regressed_workloads."""
    workloads: pd.DataFrame
    """ruleset, submission, workload, base_workload, median time and band (min, max over
    studies) before and now, ratio now/before, median steps before and now, the smallest and
    largest paired study ratio (study_ratio_low/high, NaN without a pair), verdict."""
    tolerance: float

    @property
    def regressed(self) -> list[tuple[str, str]]:
        """(ruleset, submission) of every submission that regressed."""
        rows = self.scores[self.scores["regressed"]]
        return list(zip(rows["ruleset"], rows["submission"], strict=True))


def _cells(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (ruleset, submission, workload): median, min and max of study times; median steps."""
    if trials.empty:
        return pd.DataFrame(columns=[*CELL_KEYS, "base_workload", "median", "low", "high", "steps"])
    times = study_times(trials)
    steps = study_times(trials, STEPS)
    grouped = times.groupby(CELL_KEYS, sort=True)
    cells = grouped.agg(
        base_workload=("base_workload", "first"),
        median=(TIME, lambda v: float(np.median(v.to_numpy()))),
        low=(TIME, "min"),
        high=(TIME, "max"),
    )
    cells["steps"] = steps.groupby(CELL_KEYS, sort=True)[STEPS].agg(
        lambda v: float(np.median(v.to_numpy()))
    )
    return cells.reset_index()


def _study_ratios(before: pd.DataFrame, now: pd.DataFrame) -> pd.DataFrame:
    """Per (ruleset, submission, workload): the smallest and largest ``now / before`` time of
    the studies that reached the target on both nights."""
    if before.empty or now.empty:
        return pd.DataFrame(columns=[*CELL_KEYS, "study_ratio_low", "study_ratio_high"])
    paired = study_times(before).merge(
        study_times(now), on=list(STUDY_KEYS), suffixes=("_before", "_now")
    )
    times_before, times_now = paired[f"{TIME}_before"], paired[f"{TIME}_now"]
    paired = paired[np.isfinite(times_before) & np.isfinite(times_now)]
    paired = paired.assign(study_ratio=paired[f"{TIME}_now"] / paired[f"{TIME}_before"])
    grouped = paired.groupby(CELL_KEYS, sort=True)["study_ratio"]
    return pd.DataFrame(
        {"study_ratio_low": grouped.min(), "study_ratio_high": grouped.max()}
    ).reset_index()


def _verdict(row, tolerance: float) -> Verdict:
    if pd.isna(row.median_before):
        return Verdict.NEW
    if pd.isna(row.median_now):
        return Verdict.REMOVED
    finite_before, finite_now = np.isfinite(row.median_before), np.isfinite(row.median_now)
    if finite_before and not finite_now:
        return Verdict.NEWLY_MISSED
    if finite_now and not finite_before:
        return Verdict.NEWLY_REACHED
    if not finite_now:
        return Verdict.MISSED_BOTH
    if row.study_ratio_low > 1 + tolerance:
        return Verdict.REGRESSED
    if row.study_ratio_high * (1 + tolerance) < 1:
        return Verdict.IMPROVED
    return Verdict.WITHIN_NOISE


def compare_workloads(before: pd.DataFrame, now: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Per-workload changes between two nights' scored trials (see the module's rules)."""
    merged = _cells(before).merge(
        _cells(now), on=CELL_KEYS, how="outer", suffixes=("_before", "_now")
    )
    merged["base_workload"] = merged["base_workload_now"].fillna(merged["base_workload_before"])
    merged = merged.drop(columns=["base_workload_before", "base_workload_now"])
    merged = merged.merge(_study_ratios(before, now), on=CELL_KEYS, how="left")
    with np.errstate(invalid="ignore", divide="ignore"):
        merged["ratio"] = merged["median_now"].astype(float) / merged["median_before"].astype(float)
    merged["verdict"] = [_verdict(row, tolerance).value for row in merged.itertuples(index=False)]
    return merged.sort_values(CELL_KEYS).reset_index(drop=True)


def _interval_shift(row) -> str:
    if pd.isna(row.score_low_before) or pd.isna(row.score_low_now):
        return "-"
    if row.score_high_now < row.score_low_before:
        return "lower"
    if row.score_low_now > row.score_high_before:
        return "higher"
    return "overlapping"


def compare(
    scores_before: pd.DataFrame,
    trials_before: pd.DataFrame,
    scores_now: pd.DataFrame,
    trials_now: pd.DataFrame,
    *,
    tolerance: float,
) -> Comparison:
    """Compare two snapshots' scores and scored trials (the frames `load_snapshot` returns)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be non-negative, got {tolerance=}")
    workloads = compare_workloads(trials_before, trials_now, tolerance)
    columns = [
        "ruleset",
        "submission",
        "rank",
        "score",
        "score_low",
        "score_high",
        "steps_score",
        "flops_score",
    ]
    merged = scores_before[columns].merge(
        scores_now[columns],
        on=["ruleset", "submission"],
        how="outer",
        suffixes=("_before", "_now"),
    )
    merged["presence"] = np.where(
        merged["score_before"].isna(),
        "new",
        np.where(merged["score_now"].isna(), "removed", "both"),
    )
    merged["delta"] = merged["score_now"] - merged["score_before"]
    # The widest difference the two nights' intervals allow: [now low - before high, ...].
    merged["delta_low"] = merged["score_low_now"] - merged["score_high_before"]
    merged["delta_high"] = merged["score_high_now"] - merged["score_low_before"]
    merged["interval_shift"] = [_interval_shift(row) for row in merged.itertuples(index=False)]
    bad = workloads[workloads["verdict"].isin([v.value for v in REGRESSIONS])]
    regressed = bad.groupby(["ruleset", "submission"])["workload"].agg(
        lambda names: ", ".join(sorted(names))
    )
    keys = list(zip(merged["ruleset"], merged["submission"], strict=True))
    merged["regressed_workloads"] = [regressed.get(key, "") for key in keys]
    merged["regressed"] = merged["regressed_workloads"] != ""
    merged = merged.sort_values(["ruleset", "rank_now", "submission"], na_position="last")
    return Comparison(
        scores=merged.reset_index(drop=True), workloads=workloads, tolerance=tolerance
    )


def machine_drift(timing: pd.DataFrame) -> pd.DataFrame:
    """The reference's fixed trials re-timed: per workload and seed, tonight against before.

    ``timing`` has night (``"now"`` or ``"before"``), workload, seed, timed_sec, num_steps and
    steps_to_target. The result has one row per (workload, seed) of tonight with both nights'
    timed seconds, steps and steps to target, ``ratio`` (timed seconds now / before) and
    ``steps_match`` (the same steps and steps to target: the same computation was timed).
    """
    columns = ["workload", "seed", "timed_sec", "num_steps", STEPS]
    now = timing[timing["night"] == "now"][columns]
    before = timing[timing["night"] == "before"][columns]
    merged = now.merge(before, on=["workload", "seed"], how="left", suffixes=("_now", "_before"))
    with np.errstate(invalid="ignore", divide="ignore"):
        merged["ratio"] = merged["timed_sec_now"].astype(float) / merged["timed_sec_before"].astype(
            float
        )
    same = pd.Series(True, index=merged.index)
    for column in ("num_steps", STEPS):
        a, b = merged[f"{column}_now"].astype(float), merged[f"{column}_before"].astype(float)
        same &= a.eq(b) | (a.isna() & b.isna())
    merged["steps_match"] = same
    return merged.sort_values(["workload", "seed"]).reset_index(drop=True)


def tolerance(drift: pd.DataFrame, floor: float) -> float:
    """The timing tolerance of a night: the largest relative move of the reference's re-timed
    trials (``|ratio - 1|``), and never less than ``floor``."""
    ratios = drift["ratio"].astype(float) if not drift.empty else pd.Series(dtype=float)
    ratios = ratios[np.isfinite(ratios)]
    measured = float(np.max(np.abs(ratios - 1))) if len(ratios) else 0.0
    return max(floor, measured)


def normalize_times(
    trials: pd.DataFrame, speed: pd.DataFrame, night_of_trial: pd.Series
) -> pd.DataFrame:
    """Trials with each time divided by the speed factor of the night that ran it.

    ``speed`` has night_id, base_workload, factor (that night's reference time over tonight's
    on the base workload: 2 means that night's machine was twice as slow); ``night_of_trial``
    maps trial_id to night_id. Trials of no known night, or of a workload the reference was not
    timed on, keep their time (factor 1).
    """
    frame = trials.copy()
    frame["night_id"] = frame["trial_id"].map(night_of_trial)
    merged = frame.merge(speed, on=["night_id", "base_workload"], how="left")
    factor = merged["factor"].astype(float).where(lambda f: np.isfinite(f) & (f > 0), 1.0)
    frame[TIME] = frame[TIME].astype(float).to_numpy() / factor.fillna(1.0).to_numpy()
    return frame.drop(columns=["night_id"])
