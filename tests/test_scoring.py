"""AlgoPerf scoring on hand-built tables, checked against profiles computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from optarena.scoring import aggregate, profiles
from optarena.scoring.profiles import Mark, score_times

INF = math.inf
TAUS = np.linspace(1.0, 4.0, 100)


def _times(rows, ruleset="external") -> pd.DataFrame:
    """Rows of (submission, workload, base_workload, seconds)."""
    return pd.DataFrame(
        [
            {
                "ruleset": ruleset,
                "submission": s,
                "workload": w,
                "base_workload": b,
                "time_to_target_sec": t,
            }
            for s, w, b, t in rows
        ]
    )


def _base_rows(table: dict[str, dict[str, float]]):
    """{submission: {base workload: seconds}} as rows."""
    return [(s, w, w, t) for s, times in table.items() for w, t in times.items()]


def _hand_trapezoid(rho: np.ndarray) -> float:
    """The area under rho on TAUS by the trapezoid rule, written out, divided by 3."""
    rho = np.asarray(rho, dtype=float)
    area = 0.0
    for i in range(len(TAUS) - 1):
        area += (TAUS[i + 1] - TAUS[i]) * (rho[i] + rho[i + 1]) / 2
    return area / 3


def _scores(tables: profiles.ScoreTables) -> dict[str, float]:
    return dict(zip(tables.scores["submission"], tables.scores["score"], strict=True))


def _rho(tables: profiles.ScoreTables, submission: str) -> np.ndarray:
    frame = tables.profiles[tables.profiles["submission"] == submission]
    return frame["rho"].to_numpy()


def _marks(tables: profiles.ScoreTables) -> dict[tuple[str, str], str]:
    w = tables.workloads
    return {(s, k): m for s, k, m in zip(w["submission"], w["workload"], w["mark"], strict=True)}


def test_tau_grid_is_100_linear_points_from_1_to_4():
    grid = profiles.taus()
    assert grid.shape == (100,) and grid[0] == 1.0 and grid[-1] == 4.0
    np.testing.assert_allclose(np.diff(grid), 3 / 99)


def test_fastest_everywhere_scores_one_and_a_step_midway_between_grid_points_is_exact():
    # b is 2.5x slower on y: 2.5 lies halfway between two grid points (1 + 49.5 * 3/99), where
    # the trapezoid rule integrates a step exactly: area 1.5 * 0.5 + 1.5 * 1.0 = 2.25.
    tables = score_times(_times(_base_rows({"a": {"x": 10, "y": 10}, "b": {"x": 10, "y": 25}})))
    np.testing.assert_array_equal(_rho(tables, "a"), np.ones(100))
    np.testing.assert_array_equal(_rho(tables, "b"), np.where(TAUS >= 2.5, 1.0, 0.5))
    assert _scores(tables) == pytest.approx({"a": 1.0, "b": 2.25 / 3}, abs=1e-12)
    assert list(tables.scores["submission"]) == ["a", "b"]
    assert list(tables.scores["num_workloads"]) == [2, 2]


def test_ties_share_the_ratio_one_and_the_rank():
    tables = score_times(
        _times(
            _base_rows(
                {
                    "a": {"x": 10, "y": 20},
                    "b": {"x": 10, "y": 20},
                    "c": {"x": 30, "y": 20},
                }
            )
        )
    )
    ratios = tables.workloads.set_index(["submission", "workload"])["ratio"]
    assert ratios[("a", "x")] == ratios[("b", "x")] == 1.0
    assert ratios[("a", "y")] == ratios[("b", "y")] == ratios[("c", "y")] == 1.0
    assert ratios[("c", "x")] == 3.0
    scores = _scores(tables)
    assert scores["a"] == scores["b"] == 1.0
    assert scores["c"] == pytest.approx(_hand_trapezoid(np.where(TAUS >= 3.0, 1.0, 0.5)))
    assert dict(zip(tables.scores["submission"], tables.scores["rank"], strict=True)) == {
        "a": 1,
        "b": 1,
        "c": 3,
    }


def test_infinite_times_never_count_and_missing_times_behave_like_infinite():
    rows = _base_rows({"a": {"x": 10, "y": INF}, "b": {"x": 25, "y": 30}})
    tables = score_times(_times(rows))
    np.testing.assert_array_equal(_rho(tables, "a"), np.full(100, 0.5))
    np.testing.assert_array_equal(_rho(tables, "b"), np.where(TAUS >= 2.5, 1.0, 0.5))
    assert _scores(tables) == pytest.approx({"a": 0.5, "b": 0.75}, abs=1e-12)
    assert _marks(tables)[("a", "y")] == Mark.MISSED

    without_row = score_times(_times([r for r in rows if r[:2] != ("a", "y")]))
    assert _scores(without_row) == _scores(tables)
    assert _marks(without_row)[("a", "y")] == Mark.MISSING


def test_a_workload_nobody_reaches_still_counts_in_the_denominator():
    tables = score_times(_times(_base_rows({"a": {"x": 10, "y": INF}, "b": {"x": 10, "y": INF}})))
    assert _scores(tables) == {"a": 0.5, "b": 0.5}
    assert set(tables.scores["num_workloads"]) == {2}


def test_number_of_workloads_comes_from_the_data():
    table = {"a": {"x": 1, "y": 1, "z": 1}, "b": {"x": 1, "y": INF, "z": INF}}
    tables = score_times(_times(_base_rows(table)))
    assert _scores(tables) == pytest.approx({"a": 1.0, "b": 1 / 3}, abs=1e-12)
    assert set(tables.scores["num_workloads"]) == {3}


def test_max_ratio_cut_alone_keeps_exactly_4x_and_cuts_above():
    # Exactly 4x the fastest counts at the last grid point only; above 4x it is infinite.
    tables = score_times(
        _times(
            _base_rows(
                {
                    "a": {"x": 10, "y": 10},
                    "b": {"x": 10, "y": 40},
                    "c": {"x": 10, "y": 40.0001},
                }
            )
        )
    )
    expected_b = np.where(TAUS >= 4.0, 1.0, 0.5)
    assert expected_b[-1] == 1.0 and expected_b[-2] == 0.5
    np.testing.assert_array_equal(_rho(tables, "b"), expected_b)
    scores = _scores(tables)
    assert scores["b"] == pytest.approx((1.5 + 0.25 * 3 / 99) / 3)
    assert scores["b"] == pytest.approx(_hand_trapezoid(expected_b))
    assert scores["c"] == pytest.approx(0.5)
    marks = _marks(tables)
    assert marks[("b", "y")] == Mark.COUNTED and marks[("c", "y")] == Mark.OVER_MAX_RATIO


def test_max_ratio_cut_is_relative_to_the_fastest_of_the_compared_submissions():
    alone = score_times(_times(_base_rows({"b": {"x": 50}, "c": {"x": 100}})))
    assert _scores(alone) == pytest.approx({"b": 1.0, "c": _hand_trapezoid(TAUS >= 2.0)})
    with_fast = score_times(_times(_base_rows({"a": {"x": 10}, "b": {"x": 50}, "c": {"x": 100}})))
    assert _scores(with_fast) == {"a": 1.0, "b": 0.0, "c": 0.0}


def _held_out_rows(times: dict[str, tuple[float, float]]):
    """{submission: (time on base w, time on its variant w_v)} plus a shared workload x."""
    rows = []
    for submission, (base, variant) in times.items():
        rows += [
            (submission, "x", "x", 10.0),
            (submission, "w", "w", base),
            (submission, "w_v", "w", variant),
        ]
    return rows


def test_variant_of_a_missed_base_is_ignored_before_the_4x_cut():
    # a misses w but is fast on w_v. Rule (a) makes a's w_v infinite *before* the 4x cut, so
    # the fastest w_v is b's 3, and c's 11 is within 4x: c keeps w (ratio 12 / 10 = 1.2).
    tables = score_times(_times(_held_out_rows({"a": (INF, 1), "b": (10, 3), "c": (12, 11)})))
    expected_c = np.where(TAUS >= 1.2, 1.0, 0.5)
    np.testing.assert_array_equal(_rho(tables, "c"), expected_c)
    assert _scores(tables) == pytest.approx({"a": 0.5, "b": 1.0, "c": _hand_trapezoid(expected_c)})
    # Had a reached w (even too slowly to count), its w_v of 1 would cut c's 11 (> 4), and c
    # would lose w through its variant.
    slow_a = score_times(_times(_held_out_rows({"a": (100, 1), "b": (10, 3), "c": (12, 11)})))
    assert _scores(slow_a)["c"] == pytest.approx(0.5)
    assert _marks(slow_a)[("c", "w")] == Mark.VARIANT_MISSED
    assert _marks(slow_a)[("a", "w")] == Mark.OVER_MAX_RATIO


def test_missed_variant_makes_the_base_infinite_and_ratios_use_penalized_times():
    # a is fastest on w but misses w_v: its w is infinite, so b (20 s) becomes the fastest on w.
    tables = score_times(_times(_held_out_rows({"a": (10, INF), "b": (20, 5)})))
    assert _scores(tables) == {"a": 0.5, "b": 1.0}
    ratios = tables.workloads.set_index(["submission", "workload"])["ratio"]
    assert ratios[("b", "w")] == 1.0 and math.isnan(ratios[("a", "w")])
    assert _marks(tables)[("a", "w")] == Mark.VARIANT_MISSED


@pytest.mark.parametrize("variant", [100.0, None], ids=["variant_over_4x", "variant_missing"])
def test_too_slow_or_missing_variant_makes_the_base_infinite(variant):
    rows = _held_out_rows({"a": (10, variant if variant else 1.0), "b": (20, 10)})
    if variant is None:
        rows = [r for r in rows if r[:2] != ("a", "w_v")]
    tables = score_times(_times(rows))
    assert _scores(tables) == {"a": 0.5, "b": 1.0}
    assert _marks(tables)[("a", "w")] == Mark.VARIANT_MISSED


def test_only_base_workloads_are_scored():
    # Being fastest on a variant earns nothing: the profile is over the two bases x and w.
    tables = score_times(_times(_held_out_rows({"a": (20, 1), "b": (10, 3)})))
    assert set(tables.scores["num_workloads"]) == {2}
    assert set(tables.workloads["workload"]) == {"x", "w"}
    expected_a = np.where(TAUS >= 2.0, 1.0, 0.5)
    np.testing.assert_array_equal(_rho(tables, "a"), expected_a)
    assert _scores(tables) == pytest.approx({"a": _hand_trapezoid(expected_a), "b": 1.0})


def test_rulesets_are_scored_separately():
    times = pd.concat(
        [
            _times(_base_rows({"a": {"x": 10}, "b": {"x": 25}}), ruleset="external"),
            _times(_base_rows({"a": {"x": 100}, "c": {"x": 100}}), ruleset="self"),
        ]
    )
    tables = score_times(times)
    by_key = {
        (r, s): v
        for r, s, v in zip(
            tables.scores["ruleset"],
            tables.scores["submission"],
            tables.scores["score"],
            strict=True,
        )
    }
    assert by_key == pytest.approx(
        {
            ("external", "a"): 1.0,
            ("external", "b"): _hand_trapezoid(TAUS >= 2.5),
            ("self", "a"): 1.0,
            ("self", "c"): 1.0,
        }
    )


def test_duplicate_times_are_an_error():
    with pytest.raises(ValueError, match="more than one time"):
        score_times(_times([("a", "x", "x", 1.0), ("a", "x", "x", 2.0)]))


def test_per_study_min_then_median_over_studies_with_infinity():
    trials = pd.DataFrame(
        [
            # study 0: best trial 5; study 1: never reached; study 2: best 7.
            ("a", 0, 9.0),
            ("a", 0, 5.0),
            ("a", 1, INF),
            ("a", 1, math.nan),
            ("a", 2, 7.0),
            ("a", 2, INF),
            # two of three studies missed: the median is infinite.
            ("b", 0, 1.0),
            ("b", 1, INF),
            ("b", 2, INF),
        ],
        columns=["submission", "study", "time_to_target_sec"],
    ).assign(ruleset="external", workload="x", base_workload="x")
    studies = aggregate.study_times(trials)
    assert list(studies["time_to_target_sec"]) == [5.0, INF, 7.0, 1.0, INF, INF]
    per_workload = aggregate.workload_times(studies).set_index("submission")
    assert per_workload.loc["a", "time_to_target_sec"] == 7.0
    assert per_workload.loc["b", "time_to_target_sec"] == INF
    even = aggregate.workload_times(studies[studies["study"] < 2]).set_index("submission")
    assert even.loc["a", "time_to_target_sec"] == INF  # median of [5, inf] is inf


def test_flops_to_target_is_infinite_when_missed_and_unknown_when_not_counted():
    trials = pd.DataFrame(
        {"steps_to_target": [100.0, INF, 50.0], "flops_per_step": [2.0, math.nan, math.nan]}
    )
    flops = aggregate.flops_to_target(trials)
    assert flops[0] == 200.0 and flops[1] == INF and math.isnan(flops[2])


def _score_by_loops(table: dict[str, dict[str, float]], base_of: dict[str, str]) -> dict:
    """The seven rules written out cell by cell with plain Python, as a second implementation."""
    subs = sorted(table)
    columns = sorted(base_of)
    t = {s: {c: table[s].get(c, math.nan) for c in columns} for s in subs}
    t = {s: {c: INF if math.isnan(v) else v for c, v in row.items()} for s, row in t.items()}
    variants = [c for c in columns if base_of[c] != c]
    for s in subs:
        for v in variants:
            if t[s][base_of[v]] == INF:
                t[s][v] = INF
    for c in columns:
        best = min(t[s][c] for s in subs)
        for s in subs:
            if t[s][c] > 4 * best:
                t[s][c] = INF
    for s in subs:
        for v in variants:
            if t[s][v] == INF:
                t[s][base_of[v]] = INF
    bases = [c for c in columns if base_of[c] == c]
    scores = {}
    for s in subs:
        rho = []
        for tau in TAUS:
            within = 0
            for b in bases:
                best = min(t[o][b] for o in subs)
                if best < INF and t[s][b] / best <= tau:
                    within += 1
            rho.append(within / len(bases))
        scores[s] = _hand_trapezoid(np.array(rho))
    return scores


@pytest.mark.parametrize("seed", range(12))
def test_random_tables_agree_with_a_cell_by_cell_implementation(seed):
    rng = np.random.default_rng(seed)
    base_of = {f"w{i}": f"w{i}" for i in range(5)}
    base_of |= {f"w{i}_v": f"w{i}" for i in range(0, 5, 2)}
    table = {}
    for s in range(int(rng.integers(2, 7))):
        row = {}
        for c in base_of:
            draw = rng.random()
            if draw < 0.15:
                continue  # missing
            # Few distinct values, so that ties, exact 4x ratios and cuts all happen.
            row[c] = INF if draw < 0.3 else float(rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 16.0]))
        table[f"s{s}"] = row
    rows = [(s, c, base_of[c], v) for s, row in table.items() for c, v in row.items()]
    tables = score_times(_times(rows))
    expected = _score_by_loops(table, base_of)
    scored = _scores(tables)
    for submission in table:
        assert scored.get(submission, 0.0) == pytest.approx(expected[submission], abs=1e-12)
