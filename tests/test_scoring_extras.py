"""Beyond AlgoPerf: bootstrap intervals, win probabilities, steps/FLOPs scores, rank stability."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from optarena.scoring import report, stability, uncertainty
from optarena.scoring.profiles import score_times

INF = math.inf
TAUS = np.linspace(1.0, 4.0, 100)


def _area(rho) -> float:
    return float(np.trapezoid(np.asarray(rho, dtype=float), TAUS) / 3)


def _studies(rows, ruleset="external") -> pd.DataFrame:
    """Rows of (submission, workload, study, seconds) on base workloads."""
    frame = pd.DataFrame(rows, columns=["submission", "workload", "study", "time_to_target_sec"])
    return frame.assign(ruleset=ruleset, base_workload=frame["workload"])


# a: one study of 10 s. b: two studies, 5 s and 20 s, so a bootstrap median of b is 5 (drawn
# twice the 5), 12.5 (one of each) or 20 with probabilities 1/4, 1/2, 1/4.
TWO_STUDIES = _studies([("a", "x", 0, 10.0), ("b", "x", 0, 5.0), ("b", "x", 1, 20.0)])


def test_bootstrap_is_seeded_and_deterministic():
    first = uncertainty.bootstrap_scores(TWO_STUDIES, replicates=200, seed=7)
    again = uncertainty.bootstrap_scores(TWO_STUDIES, replicates=200, seed=7)
    other = uncertainty.bootstrap_scores(TWO_STUDIES, replicates=200, seed=8)
    np.testing.assert_array_equal(first[0].scores, again[0].scores)
    assert not np.array_equal(first[0].scores, other[0].scores)
    assert first[0].submissions == ("a", "b")


def test_bootstrap_distribution_matches_the_hand_computed_one():
    (boot,) = uncertainty.bootstrap_scores(TWO_STUDIES, replicates=4000, seed=0)
    b_scores = {1.0: 0.25, _area(TAUS >= 1.25): 0.5, _area(TAUS >= 2.0): 0.25}
    values, counts = np.unique(boot.scores[:, 1], return_counts=True)
    assert list(values) == pytest.approx(sorted(b_scores))
    for value, count in zip(values, counts, strict=True):
        expected = next(p for v, p in b_scores.items() if math.isclose(v, value))
        assert count / len(boot.scores) == pytest.approx(expected, abs=0.03)

    intervals = uncertainty.confidence_intervals([boot], level=0.9).set_index("submission")
    assert intervals.loc["b", "score_low"] == pytest.approx(_area(TAUS >= 2.0))
    assert intervals.loc["b", "score_high"] == 1.0
    wins = uncertainty.win_probabilities([boot]).set_index(["submission", "opponent"])
    assert wins.loc[("b", "a"), "p_outscores"] == pytest.approx(0.25, abs=0.03)
    assert wins.loc[("a", "b"), "p_outscores"] == pytest.approx(0.75, abs=0.03)


def test_a_single_study_per_pair_gives_a_point_interval_and_ties_win_for_neither():
    studies = _studies([("a", "x", 0, 10.0), ("b", "x", 0, 25.0), ("c", "x", 0, 25.0)])
    boots = uncertainty.bootstrap_scores(studies, replicates=50)
    intervals = uncertainty.confidence_intervals(boots).set_index("submission")
    expected_b = _area(TAUS >= 2.5)
    assert intervals.loc["b", "score_low"] == intervals.loc["b", "score_high"]
    assert intervals.loc["b", "score_low"] == pytest.approx(expected_b)
    wins = uncertainty.win_probabilities(boots).set_index(["submission", "opponent"])
    assert wins.loc[("b", "c"), "p_outscores"] == wins.loc[("c", "b"), "p_outscores"] == 0.0
    assert wins.loc[("a", "b"), "p_outscores"] == 1.0


def test_bootstrap_replicates_apply_the_held_out_rules():
    # b's variant misses in its only study: every replicate loses b's base workload.
    studies = pd.DataFrame(
        [
            ("a", "x", "x", 0, 10.0),
            ("a", "x_v", "x", 0, 10.0),
            ("b", "x", "x", 0, 5.0),
            ("b", "x", "x", 1, 6.0),
            ("b", "x_v", "x", 0, INF),
        ],
        columns=["submission", "workload", "base_workload", "study", "time_to_target_sec"],
    ).assign(ruleset="external")
    (boot,) = uncertainty.bootstrap_scores(studies, replicates=100)
    np.testing.assert_array_equal(boot.scores, np.tile([1.0, 0.0], (100, 1)))


def _trials(rows, ruleset="external") -> pd.DataFrame:
    """Rows of (submission, workload, study, trial, seconds, steps, flops per step)."""
    frame = pd.DataFrame(
        rows,
        columns=[
            "submission",
            "workload",
            "study",
            "trial",
            "time_to_target_sec",
            "steps_to_target",
            "flops_per_step",
        ],
    )
    return frame.assign(ruleset=ruleset, base_workload=frame["workload"])


def test_steps_and_flops_scores_use_the_same_profile_on_other_quantities():
    # a is 2.5x faster in seconds; b needs 2.5x fewer steps; counted in FLOPs, b's steps cost 10x.
    trials = _trials(
        [
            ("a", "x", 0, 0, 10.0, 1000.0, 1.0),
            ("a", "x", 0, 1, INF, INF, 1.0),
            ("b", "x", 0, 0, 25.0, 400.0, 10.0),
        ]
    )
    result = report.score_trials(trials, report.Settings(replicates=20))
    scores = result.scores.set_index("submission")
    assert scores.loc["a", "score"] == 1.0
    assert scores.loc["b", "score"] == pytest.approx(_area(TAUS >= 2.5))
    assert scores.loc["b", "steps_score"] == 1.0
    assert scores.loc["a", "steps_score"] == pytest.approx(_area(TAUS >= 2.5))
    assert scores.loc["a", "flops_score"] == 1.0  # 1,000 FLOPs against 4,000
    assert scores.loc["b", "flops_score"] == pytest.approx(_area(TAUS >= 4.0))
    assert list(result.workloads["num_trials"]) == [2, 1]
    assert list(result.workloads["trials_reached"]) == [1, 1]


def test_unknown_flops_of_a_reached_trial_leave_the_flops_score_unknown():
    trials = _trials([("a", "x", 0, 0, 10.0, 100.0, math.nan), ("b", "x", 0, 0, 20.0, 90.0, 1.0)])
    scores = report.score_trials(trials, report.Settings(replicates=10)).scores
    assert scores["flops_score"].isna().all()
    assert scores["steps_score"].notna().all()


def test_leaving_out_a_workload_can_change_the_order():
    # a wins x and y (b is 3.9x slower there); b alone reaches z.
    times = pd.DataFrame(
        [
            ("a", "x", 10.0),
            ("a", "y", 10.0),
            ("a", "z", INF),
            ("b", "x", 39.0),
            ("b", "y", 39.0),
            ("b", "z", 10.0),
        ],
        columns=["submission", "workload", "time_to_target_sec"],
    ).assign(ruleset="external", base_workload=lambda f: f["workload"])
    assert stability.ordering(score_times(times).scores) == "a > b"
    result = stability.leave_one_workload_out(times).set_index("left_out")
    assert result["ranking"].to_dict() == {"x": "b > a", "y": "b > a", "z": "a > b"}
    assert result["order_changed"].to_dict() == {"x": True, "y": True, "z": False}
    assert result.loc["x", "kendall_tau"] == -1.0
    summary = stability.change_rate(result.reset_index())
    assert summary.loc[0, "changed"] == 2 and summary.loc[0, "share_changed"] == pytest.approx(
        2 / 3
    )


def test_equal_scores_read_as_a_tie_in_the_ranking():
    scores = pd.DataFrame({"submission": ["b", "a", "c"], "score": [0.5, 0.5, 0.9]})
    assert stability.ordering(scores) == "c > a = b"
