"""How much a score would move with other studies: bootstrap over studies, pairwise win odds.

Each bootstrap replicate redraws, for every (submission, workload), as many studies as were run,
with replacement, from that pair's own studies; takes the median over the drawn studies; and
scores the resulting table with the full AlgoPerf method (held-out rules and 4x cut included,
so a replicate's fastest submission can change). A pair with a single study always draws it,
so its time does not vary. The random draws come from ``numpy.random.default_rng`` seeded with
the seed and the ruleset's name: the same inputs and seed give the same intervals.
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib

import numpy as np
import pandas as pd

from optarena.scoring.aggregate import STUDY_KEYS
from optarena.scoring.profiles import TIME, Layout, score_array

DEFAULT_REPLICATES = 1000
DEFAULT_LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """Bootstrap scores of one ruleset: ``scores[replicate, submission]``."""

    ruleset: str
    submissions: tuple[str, ...]
    scores: np.ndarray


def _group_rng(seed: int, ruleset: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(ruleset.encode())])


def _padded_studies(group: pd.DataFrame, value: str):
    """Submissions, layout, studies[submission, column, k] (NaN-padded) and their counts."""
    pairs = group[["workload", "base_workload"]].drop_duplicates()
    layout = Layout.from_pairs(list(pairs["workload"]), list(pairs["base_workload"]))
    submissions = sorted(group["submission"].unique())
    sub_index = {s: i for i, s in enumerate(submissions)}
    col_index = {c: i for i, c in enumerate(layout.columns)}
    counts = np.zeros((len(submissions), len(layout.columns)), dtype=int)
    cells: dict[tuple[int, int], list[float]] = {}
    for submission, workload, time in zip(
        group["submission"], group["workload"], group[value].astype(float), strict=True
    ):
        key = (sub_index[submission], col_index[workload])
        cells.setdefault(key, []).append(np.inf if np.isnan(time) else time)
    depth = max((len(v) for v in cells.values()), default=1)
    studies = np.full((*counts.shape, depth), np.nan)
    for (s, c), values in cells.items():
        studies[s, c, : len(values)] = values
        counts[s, c] = len(values)
    return submissions, layout, studies, counts


def bootstrap_scores(
    studies: pd.DataFrame,
    value: str = TIME,
    *,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = 0,
) -> list[Bootstrap]:
    """Bootstrap scores per ruleset from one ``value`` per study (see `aggregate.study_times`)."""
    if replicates < 1:
        raise ValueError(f"replicates must be positive, got {replicates=}")
    missing = [c for c in (*STUDY_KEYS, value) if c not in studies.columns]
    if missing:
        raise ValueError(f"study times lack column(s) {', '.join(missing)}")
    results = []
    for ruleset, group in studies.groupby("ruleset", sort=True):
        submissions, layout, padded, counts = _padded_studies(group, value)
        rng = _group_rng(seed, str(ruleset))
        shape = (replicates, *padded.shape)
        draws = np.floor(rng.random(shape) * counts[None, :, :, None]).astype(int)
        drawn = np.take_along_axis(np.broadcast_to(padded, shape), draws, axis=-1)
        used = np.arange(padded.shape[-1]) < counts[..., None]
        drawn = np.where(used[None], drawn, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pairs with no study: all NaN
            medians = np.nanmedian(drawn, axis=-1)
        results.append(Bootstrap(str(ruleset), tuple(submissions), score_array(medians, layout)))
    return results


def confidence_intervals(bootstraps: list[Bootstrap], level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Percentile intervals: ruleset, submission, score_low, score_high."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level=}")
    tail = (1 - level) / 2
    frames = []
    for boot in bootstraps:
        low, high = np.quantile(boot.scores, [tail, 1 - tail], axis=0)
        frames.append(
            pd.DataFrame(
                {
                    "ruleset": boot.ruleset,
                    "submission": boot.submissions,
                    "score_low": low,
                    "score_high": high,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def win_probabilities(bootstraps: list[Bootstrap]) -> pd.DataFrame:
    """For every ordered pair in a ruleset, the fraction of replicates where the first
    submission scores strictly higher than the second (ties count for neither)."""
    rows = []
    for boot in bootstraps:
        for i, submission in enumerate(boot.submissions):
            for j, opponent in enumerate(boot.submissions):
                if i != j:
                    wins = float(np.mean(boot.scores[:, i] > boot.scores[:, j]))
                    rows.append((boot.ruleset, submission, opponent, wins))
    return pd.DataFrame(rows, columns=["ruleset", "submission", "opponent", "p_outscores"])
