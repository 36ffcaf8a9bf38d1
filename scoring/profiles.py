"""AlgoPerf's performance profiles and scores, exactly as its published leaderboards compute them.

Per ruleset (a group of submissions scored against each other), from one time to target per
submission and workload (infinity: target not reached; missing: NaN, which behaves like
infinity), in this order:

(a) a held-out variant's time becomes infinite where its base workload's time is infinite;
(b) every time above ``MAX_RATIO`` (4) times the fastest time of its workload, over the
    submissions of the group, becomes infinite (base and held-out columns alike);
(c) a base workload's time becomes infinite where one of its held-out variants' is;
(d) only base workloads are kept;

then ratios ``r = t / min over submissions of t`` per base workload,
``rho(tau) = fraction of base workloads with r <= tau`` on ``numpy.linspace(1, 4, 100)``, and
``score = trapezoid area of rho / 3``. The number of base workloads comes from the data.

The core works on numpy arrays whose last two axes are (submission, workload column), so the
bootstrap can score thousands of resampled tables at once; the frame functions wrap it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import pandas as pd

MIN_TAU = 1.0
MAX_RATIO = 4.0
"""Both the largest ratio the profile covers and the cut beyond which a time counts as infinite."""
NUM_TAUS = 100
"""AlgoPerf's published scores depend on exactly 100 linearly spaced points."""

TIME = "time_to_target_sec"
GROUP_KEYS = ("ruleset", "submission", "workload", "base_workload")


def taus() -> np.ndarray:
    """The tau grid of the profile: ``numpy.linspace(1, 4, 100)``."""
    return np.linspace(MIN_TAU, MAX_RATIO, NUM_TAUS)


class Mark(StrEnum):
    """What happened to one submission's time on one base workload."""

    COUNTED = "counted"
    """Finite after every rule: it has a ratio."""
    MISSING = "missing"
    """No time at all for this submission and workload."""
    MISSED = "missed"
    """The target was not reached."""
    OVER_MAX_RATIO = "over_4x"
    """Reached, but more than 4 times slower than the fastest submission."""
    VARIANT_MISSED = "variant_missed"
    """Reached, but a held-out variant of the workload missed its target or was too slow."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """The workload columns of a group: the bases, and which variant belongs to which base."""

    columns: tuple[str, ...]
    bases: tuple[str, ...]
    """Base workload names, in column order of the scored table."""
    base_columns: tuple[int, ...]
    """Index in ``columns`` of each of ``bases``."""
    variant_pairs: tuple[tuple[int, int], ...]
    """(variant column, its base's column) for every held-out variant."""

    @classmethod
    def from_pairs(cls, workloads: Sequence[str], base_workloads: Sequence[str]) -> Layout:
        """Columns for ``workloads`` (each with its base); a base seen only through a variant
        gets a column of its own (with no times in it)."""
        base_of = dict(zip(workloads, base_workloads, strict=True))
        for base in set(base_of.values()):
            base_of.setdefault(base, base)
        bases = sorted(w for w, b in base_of.items() if w == b)
        variants = sorted(w for w, b in base_of.items() if w != b)
        columns = tuple(bases + variants)
        index = {name: i for i, name in enumerate(columns)}
        return cls(
            columns=columns,
            bases=tuple(bases),
            base_columns=tuple(index[b] for b in bases),
            variant_pairs=tuple((index[v], index[base_of[v]]) for v in variants),
        )


@dataclasses.dataclass(frozen=True)
class RuleStages:
    """The times (..., submission, column) after each of the rules (a) to (c)."""

    raw: np.ndarray
    after_variant_check: np.ndarray
    after_max_ratio: np.ndarray
    after_held_out: np.ndarray


def apply_rules(times: np.ndarray, layout: Layout) -> RuleStages:
    """Rules (a) to (c) on ``times`` (..., submission, column); NaN is read as infinity."""
    raw = np.asarray(times, dtype=float)
    t = np.where(np.isnan(raw), np.inf, raw)
    for variant, base in layout.variant_pairs:
        t[..., variant] = np.where(np.isinf(t[..., base]), np.inf, t[..., variant])
    after_a = t.copy()
    best = t.min(axis=-2, keepdims=True)
    t = np.where(t > MAX_RATIO * best, np.inf, t)
    after_b = t.copy()
    for variant, base in layout.variant_pairs:
        t[..., base] = np.where(np.isinf(t[..., variant]), np.inf, t[..., base])
    return RuleStages(
        raw=raw, after_variant_check=after_a, after_max_ratio=after_b, after_held_out=t
    )


def ratios(base_times: np.ndarray) -> np.ndarray:
    """``t / min over submissions of t`` per workload; NaN where nobody has a finite time."""
    best = base_times.min(axis=-2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = base_times / best
    return np.where(np.isfinite(best), result, np.nan)


def rho(ratio: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Fraction of workloads (last axis) with ratio <= tau, for each tau: shape (..., tau)."""
    num_workloads = ratio.shape[-1]
    if num_workloads == 0:
        raise ValueError("a performance profile needs at least one base workload")
    with np.errstate(invalid="ignore"):
        within = ratio[..., None] <= grid
    return within.sum(axis=-2) / num_workloads


def area_score(profile: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Trapezoid area under the profile (last axis) divided by the tau range (3)."""
    return np.trapezoid(profile, grid, axis=-1) / (grid[-1] - grid[0])


def score_array(times: np.ndarray, layout: Layout) -> np.ndarray:
    """Scores (..., submission) of times (..., submission, column): the whole method at once."""
    base_times = apply_rules(times, layout).after_held_out[..., list(layout.base_columns)]
    grid = taus()
    return area_score(rho(ratios(base_times), grid), grid)


# ---------------------------------------------------------------- frames


@dataclasses.dataclass(frozen=True)
class ScoreTables:
    """Scores of every group, with the profile and the per-workload view behind them."""

    scores: pd.DataFrame
    """rank, ruleset, submission, score, num_workloads; best first within each ruleset."""
    profiles: pd.DataFrame
    """ruleset, submission, tau, rho: the performance profile."""
    workloads: pd.DataFrame
    """ruleset, submission, workload, time (the input), penalized time (after the rules),
    ratio (NaN unless counted) and mark, for each base workload."""


def _table(group: pd.DataFrame, value: str) -> tuple[list[str], Layout, np.ndarray]:
    """Submissions, layout and the (submission, column) array of one group's times."""
    pairs = group[["workload", "base_workload"]].drop_duplicates()
    layout = Layout.from_pairs(list(pairs["workload"]), list(pairs["base_workload"]))
    wide = group.pivot(index="submission", columns="workload", values=value)
    wide = wide.reindex(columns=list(layout.columns)).sort_index()
    return list(wide.index), layout, wide.to_numpy(dtype=float)


def _marks(stages: RuleStages, layout: Layout) -> np.ndarray:
    columns = list(layout.base_columns)
    raw = stages.raw[..., columns]
    after_b = stages.after_max_ratio[..., columns]
    after_c = stages.after_held_out[..., columns]
    return np.select(
        [np.isnan(raw), np.isinf(raw), np.isinf(after_b), np.isinf(after_c)],
        [Mark.MISSING, Mark.MISSED, Mark.OVER_MAX_RATIO, Mark.VARIANT_MISSED],
        default=Mark.COUNTED,
    )


def check_unique(times: pd.DataFrame, keys: Sequence[str]) -> None:
    """A ValueError naming the first duplicated key, if any."""
    duplicated = times.duplicated(subset=list(keys))
    if duplicated.any():
        row = times.loc[duplicated].iloc[0]
        key = ", ".join(f"{k}={row[k]!r}" for k in keys)
        raise ValueError(f"more than one time for {key}")


def score_times(times: pd.DataFrame, value: str = TIME) -> ScoreTables:
    """Score one time per (ruleset, submission, workload), each ruleset on its own.

    ``times`` has columns ruleset, submission, workload, base_workload (equal to workload for
    a base workload) and ``value`` (positive; ``inf`` for a missed target).
    """
    check_unique(times, ("ruleset", "submission", "workload"))
    grid = taus()
    scores, profiles, workloads = [], [], []
    for ruleset, group in times.groupby("ruleset", sort=True):
        submissions, layout, table = _table(group, value)
        stages = apply_rules(table, layout)
        base_times = stages.after_held_out[:, list(layout.base_columns)]
        ratio = ratios(base_times)
        profile = rho(ratio, grid)
        score = area_score(profile, grid)
        scores.append(
            pd.DataFrame(
                {
                    "ruleset": ruleset,
                    "submission": submissions,
                    "score": score,
                    "num_workloads": len(layout.bases),
                }
            )
        )
        profiles.append(
            pd.DataFrame(
                {
                    "ruleset": ruleset,
                    "submission": np.repeat(submissions, len(grid)),
                    "tau": np.tile(grid, len(submissions)),
                    "rho": profile.ravel(),
                }
            )
        )
        marks = _marks(stages, layout)
        workloads.append(
            pd.DataFrame(
                {
                    "ruleset": ruleset,
                    "submission": np.repeat(submissions, len(layout.bases)),
                    "workload": np.tile(layout.bases, len(submissions)),
                    value: stages.raw[:, list(layout.base_columns)].ravel(),
                    "penalized_" + value: base_times.ravel(),
                    "ratio": np.where(marks == Mark.COUNTED, ratio, np.nan).ravel(),
                    "mark": marks.ravel(),
                }
            )
        )
    if not scores:
        raise ValueError("no times to score")
    ranked = pd.concat(scores, ignore_index=True).sort_values(
        ["ruleset", "score", "submission"], ascending=[True, False, True], ignore_index=True
    )
    ranked.insert(0, "rank", ranks(ranked))
    return ScoreTables(
        scores=ranked,
        profiles=pd.concat(profiles, ignore_index=True),
        workloads=pd.concat(workloads, ignore_index=True),
    )


def ranks(scores: pd.DataFrame) -> pd.Series:
    """Rank within each ruleset, 1 = best; equal scores share the better rank."""
    return (
        scores.groupby("ruleset")["score"]
        .rank(method="min", ascending=False)
        .astype(int)
        .rename("rank")
    )
