"""Search-space validation and quasi-random sampling."""

from __future__ import annotations

import math

import pytest

from optarena.submissions import search_space
from optarena.submissions.nadamw import SEARCH_SPACE as NADAMW_SPACE

SPACE = {
    "learning_rate": {"min": 1e-4, "max": 1e-1, "scaling": "log"},
    "momentum": {"min": 0.8, "max": 0.99, "scaling": "linear"},
    "warmup": {"feasible_points": [0.02, 0.05, 0.1]},
}


def test_samples_lie_in_their_ranges_and_points():
    points = search_space.sample(SPACE, 64, seed=0)
    assert len(points) == 64
    for point in points:
        assert set(point) == set(SPACE)
        assert 1e-4 <= point["learning_rate"] <= 1e-1
        assert 0.8 <= point["momentum"] <= 0.99
        assert point["warmup"] in (0.02, 0.05, 0.1)
    # Every feasible point is drawn, and a log range is covered in log space.
    assert {p["warmup"] for p in points} == {0.02, 0.05, 0.1}
    logs = sorted(math.log10(p["learning_rate"]) for p in points)
    assert logs[0] < -3.5 and logs[-1] > -1.5


def test_sampling_is_deterministic_per_seed_and_differs_across_seeds():
    first = search_space.sample(SPACE, 5, seed=3)
    assert first == search_space.sample(SPACE, 5, seed=3)
    other = search_space.sample(SPACE, 5, seed=4)
    assert {p["learning_rate"] for p in first}.isdisjoint({p["learning_rate"] for p in other})


def test_quasi_random_points_are_better_spread_than_their_count_suggests():
    # A scrambled Halton sequence puts exactly one of 8 points in each eighth of a 1-D range
    # far more often than i.i.d. draws would (probability 8!/8^8 = 0.24% for i.i.d.).
    space = {"x": {"min": 0.0, "max": 1.0, "scaling": "linear"}}
    hits = 0
    for seed in range(20):
        cells = {int(p["x"] * 8) for p in search_space.sample(space, 8, seed=seed)}
        hits += len(cells) == 8
    assert hits >= 15


def test_a_list_of_fixed_points_is_used_in_order():
    points = [{"learning_rate": 0.1}, {"learning_rate": 0.01}, {"learning_rate": 0.001}]
    assert search_space.sample(points, 2, seed=0) == points[:2]
    assert search_space.sample(points, 5, seed=9) == points


def test_builtin_search_space_parses():
    assert set(search_space.parse(NADAMW_SPACE).names) == set(NADAMW_SPACE)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"lr": {"min": 0.0, "max": 1.0, "scaling": "log"}}, "needs min > 0"),
        ({"lr": {"min": 1.0, "max": 0.1, "scaling": "linear"}}, "min <= max"),
        ({"lr": {"min": 1e-3, "max": 1e-1, "scaling": "cubic"}}, "scaling must be"),
        ({"lr": {"min": 1e-3, "max": 1e-1}}, "expected keys"),
        ({"lr": {"feasible_points": []}}, "non-empty list"),
        ({"lr": {"feasible_points": [float("nan")]}}, "not finite"),
        ({"lr": 0.1}, "expected {"),
        ([], "at least one point"),
        ([{"lr": 0.1}, 3], "point 1"),
        ("{not json", "not valid JSON"),
        (42, "mapping of dimensions or a list"),
    ],
)
def test_invalid_spaces_are_one_line_errors(raw, message):
    with pytest.raises(search_space.SearchSpaceError, match=message) as info:
        search_space.parse(raw)
    assert "\n" not in str(info.value)
