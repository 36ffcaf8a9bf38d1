"""Comparing two nights: studies paired night to night, regressions judged on a submission's
own times, the machine's drift, and normalization by it."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from optarena.scoring import night_comparison
from optarena.scoring.night_comparison import Verdict
from optarena.scoring.report import Settings, score_trials

WORKLOADS = ("w1", "w2")


def _trials(times: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """One trial per study: times[submission][workload] = [time of study 0, study 1, ...]."""
    rows = []
    trial_id = 0
    for submission, by_workload in times.items():
        for workload, studies in by_workload.items():
            for study, time in enumerate(studies):
                trial_id += 1
                rows.append(
                    {
                        "trial_id": trial_id,
                        "ruleset": "external",
                        "submission": submission,
                        "workload": workload,
                        "base_workload": workload,
                        "study": study,
                        "trial": 0,
                        "time_to_target_sec": time,
                        "steps_to_target": 100.0 if math.isfinite(time) else math.inf,
                        "flops_per_step": 1e6,
                    }
                )
    return pd.DataFrame(rows)


def _compare(before, now, tolerance=0.2):
    trials_before, trials_now = _trials(before), _trials(now)
    settings = Settings(replicates=200)
    return night_comparison.compare(
        score_trials(trials_before, settings).scores,
        trials_before,
        score_trials(trials_now, settings).scores,
        trials_now,
        tolerance=tolerance,
    )


BEFORE = {
    "a": {"w1": [1.0, 1.1, 1.2], "w2": [2.0, 2.1, 2.2]},
    "b": {"w1": [1.5, 1.6, 1.7], "w2": [2.5, 2.6, 2.7]},
    "c": {"w1": [3.0, 3.1, 3.2], "w2": [5.0, 5.1, 5.2]},
}


def _verdicts(comparison) -> dict[tuple[str, str], str]:
    frame = comparison.workloads
    keys = zip(frame["submission"], frame["workload"], strict=True)
    return dict(zip(keys, frame["verdict"], strict=True))


def test_the_fastest_getting_slower_is_flagged_alone_though_the_others_scores_rise():
    now = {**BEFORE, "a": {"w1": [2.0, 2.1, 2.2], "w2": [2.0, 2.1, 2.2]}}
    comparison = _compare(BEFORE, now)
    assert comparison.regressed == [("external", "a")]
    scores = comparison.scores.set_index("submission")
    assert scores.loc["a", "delta"] < 0
    row = scores.loc["a"]
    assert row["delta_low"] == pytest.approx(row["score_low_now"] - row["score_high_before"])
    assert row["delta_low"] <= row["delta"] <= row["delta_high"] < 0
    assert scores.loc["b", "delta"] > 0  # b is now the fastest on w1: its score rises
    assert _verdicts(comparison)[("a", "w1")] == Verdict.REGRESSED
    assert _verdicts(comparison)[("a", "w2")] == Verdict.WITHIN_NOISE


def test_another_getting_faster_lowers_a_score_without_a_regression():
    now = {**BEFORE, "c": {"w1": [0.3, 0.31, 0.32], "w2": [0.5, 0.51, 0.52]}}
    comparison = _compare(BEFORE, now)
    assert comparison.regressed == []
    scores = comparison.scores.set_index("submission")
    assert scores.loc["a", "delta"] < 0 and scores.loc["a", "interval_shift"] == "lower"
    assert _verdicts(comparison)[("c", "w1")] == Verdict.IMPROVED


def test_overlapping_bands_or_a_slowdown_within_tolerance_are_noise():
    # Every study slower, but by less than the 20% tolerance: noise.
    slower = {**BEFORE, "b": {"w1": [1.75, 1.8, 1.85], "w2": [2.5, 2.6, 2.7]}}
    assert _compare(BEFORE, slower).regressed == []
    # A median 50% higher, but one study tonight inside last night's band: noise.
    spread = {**BEFORE, "b": {"w1": [1.6, 2.4, 2.5], "w2": [2.5, 2.6, 2.7]}}
    assert _compare(BEFORE, spread).regressed == []
    # The same slowdown beyond the band and the tolerance is a regression.
    beyond = {**BEFORE, "b": {"w1": [2.1, 2.4, 2.5], "w2": [2.5, 2.6, 2.7]}}
    assert _compare(BEFORE, beyond).regressed == [("external", "b")]


def test_studies_are_paired_so_a_uniform_slowdown_shows_through_a_wide_band():
    # b's studies differ by 2x among themselves (different points), so last night's band
    # [1.0, 2.0] swallows a uniform 30% slowdown; paired study by study it is a regression.
    before = {**BEFORE, "b": {"w1": [1.0, 1.5, 2.0], "w2": [2.5, 2.6, 2.7]}}
    slower = {**BEFORE, "b": {"w1": [1.3, 1.95, 2.6], "w2": [2.5, 2.6, 2.7]}}
    comparison = _compare(before, slower)
    assert comparison.regressed == [("external", "b")]
    row = comparison.workloads.set_index(["submission", "workload"]).loc[("b", "w1")]
    assert (row["study_ratio_low"], row["study_ratio_high"]) == pytest.approx((1.3, 1.3))
    assert row["low_now"] < row["high_before"]  # the band rule alone would not see it
    # One study not slower beyond the tolerance: noise; the mirror: an improvement.
    mixed = {**BEFORE, "b": {"w1": [1.1, 1.95, 2.6], "w2": [2.5, 2.6, 2.7]}}
    assert _compare(before, mixed).regressed == []
    faster = {**BEFORE, "b": {"w1": [0.7, 1.05, 1.4], "w2": [2.5, 2.6, 2.7]}}
    assert _verdicts(_compare(before, faster))[("b", "w1")] == Verdict.IMPROVED


def test_newly_missed_target_new_and_removed_submissions():
    now = {
        "a": {"w1": [math.inf, math.inf, 1.2], "w2": [2.0, 2.1, 2.2]},
        "b": BEFORE["b"],
        "d": {"w1": [1.0, 1.0, 1.0], "w2": [2.0, 2.0, 2.0]},
    }
    comparison = _compare(BEFORE, now)
    assert comparison.regressed == [("external", "a")]
    assert _verdicts(comparison)[("a", "w1")] == Verdict.NEWLY_MISSED
    presence = dict(
        zip(comparison.scores["submission"], comparison.scores["presence"], strict=True)
    )
    assert presence == {"a": "both", "b": "both", "c": "removed", "d": "new"}


def test_drift_tolerance_and_normalization():
    timing = pd.DataFrame(
        {
            "night": ["before", "before", "now", "now"],
            "workload": ["w1", "w1", "w1", "w1"],
            "seed": [0, 1, 0, 1],
            "timed_sec": [2.0, 2.0, 2.6, 1.8],
            "num_steps": [100, 100, 100, 100],
            "steps_to_target": [50.0, 60.0, 50.0, 60.0],
        }
    )
    drift = night_comparison.machine_drift(timing)
    assert list(drift["ratio"]) == pytest.approx([1.3, 0.9])
    assert drift["steps_match"].all()
    assert night_comparison.tolerance(drift, 0.1) == pytest.approx(0.3)
    assert night_comparison.tolerance(drift, 0.5) == 0.5

    trials = _trials({"a": {"w1": [4.0, 3.0]}})
    speed = pd.DataFrame({"night_id": [7, 0], "base_workload": ["w1", "w1"], "factor": [2.0, 1]})
    nights = pd.Series({1: 7, 2: 0})
    normalized = night_comparison.normalize_times(trials, speed, nights)
    assert list(normalized["time_to_target_sec"]) == [2.0, 3.0]
    unknown = night_comparison.normalize_times(trials, speed, pd.Series(dtype="int64"))
    assert list(unknown["time_to_target_sec"]) == [4.0, 3.0]
