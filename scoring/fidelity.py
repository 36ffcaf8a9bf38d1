"""Ranking fidelity: does optarena order training algorithms as a published AlgoPerf board did?

Inputs are plain frames: the published board's scores, a mapping of its entries to optarena
submissions (``published_name, ruleset, optarena_name``; an empty ``optarena_name`` is an entry
optarena has no counterpart for), and the benchmark trials of the mapped submissions. Only
mapped entries are compared, each ruleset on its own, so the published scores are read as an
order, not as values (they are relative to the whole published field).

Agreement between two orders is Kendall's tau-b and Spearman's rho (`scipy.stats`), NaN with
fewer than two entries or when either side is constant. The interval is a percentile bootstrap
over studies: each replicate redraws every (submission, workload)'s studies with replacement
(`uncertainty.bootstrap_scores`), rescores the table with AlgoPerf's full method and compares
its order with the published one. Per workload, tau is also computed on that workload alone
and with it left out, to show which workloads order the field as the board did.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from optarena.scoring import uncertainty
from optarena.scoring.aggregate import study_times, workload_times
from optarena.scoring.profiles import TIME, score_times

STEPS = "steps_to_target"
VALUES = {TIME: "score", STEPS: "steps_score"}
"""The per-trial quantity each compared score is computed on, and the score's column."""
RULESETS = {
    "external_tuning": "external",
    "self_tuning": "self",
    "external": "external",
    "self": "self",
}
"""Published ruleset names (and optarena's own) to optarena's."""


class FidelityError(ValueError):
    """A mapping of published entries that cannot be used; the message is one line."""


def mapped_entries(entries: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """ruleset (optarena's), published_name, optarena_name, published_score of every entry
    with an ``optarena_name``, best published score first within each ruleset.

    ``entries`` has published_name, ruleset, optarena_name; ``published`` has ruleset,
    submission, published_score. Raises `FidelityError` for an unknown ruleset, an entry with
    no published score, or an optarena submission mapped twice in a ruleset.
    """
    frame = entries.fillna({"optarena_name": ""}).astype(str)
    frame = frame[frame["optarena_name"].str.strip() != ""].copy()
    unknown = sorted(set(frame["ruleset"]) - set(RULESETS))
    if unknown:
        raise FidelityError(
            f"unknown ruleset(s) {', '.join(unknown)}; known: {', '.join(RULESETS)}"
        )
    scores = published.assign(ruleset=published["ruleset"].map(RULESETS))
    frame["ruleset"] = frame["ruleset"].map(RULESETS)
    frame["optarena_name"] = frame["optarena_name"].str.strip()
    merged = frame.merge(
        scores.rename(columns={"submission": "published_name"}),
        on=["ruleset", "published_name"],
        how="left",
    )
    missing = merged[merged["published_score"].isna()]
    if len(missing):
        row = missing.iloc[0]
        raise FidelityError(f"{row.published_name} ({row.ruleset}) has no published score")
    twice = merged.duplicated(["ruleset", "optarena_name"])
    if twice.any():
        row = merged[twice].iloc[0]
        raise FidelityError(f"{row.optarena_name} is mapped twice under {row.ruleset}")
    merged["published_score"] = merged["published_score"].astype(float)
    return merged.sort_values(
        ["ruleset", "published_score", "published_name"],
        ascending=[True, False, True],
        ignore_index=True,
    )[["ruleset", "published_name", "optarena_name", "published_score"]]


def agreement(published: np.ndarray, ours: np.ndarray) -> tuple[float, float]:
    """Kendall's tau-b and Spearman's rho between two score vectors (NaN when undefined)."""
    published, ours = np.asarray(published, float), np.asarray(ours, float)
    if len(published) < 2 or np.ptp(published) == 0 or np.ptp(ours) == 0:
        return float("nan"), float("nan")
    return (
        float(kendalltau(published, ours).statistic),
        float(spearmanr(published, ours).statistic),
    )


def bootstrap_agreement(
    studies: pd.DataFrame,
    published: pd.Series,
    value: str = TIME,
    *,
    replicates: int = uncertainty.DEFAULT_REPLICATES,
    seed: int = 0,
    level: float = uncertainty.DEFAULT_LEVEL,
) -> pd.DataFrame:
    """Per ruleset: percentile intervals of tau and rho over bootstrap replicates of studies.

    ``studies`` is one ``value`` per study (`aggregate.study_times`) of the mapped submissions;
    ``published`` is indexed by (ruleset, optarena submission). Columns: ruleset, value,
    replicates, tau_low, tau_high, rho_low, rho_high (NaN when no replicate defines them).
    """
    tail = (1 - level) / 2
    rows = []
    for boot in uncertainty.bootstrap_scores(studies, value, replicates=replicates, seed=seed):
        reference = published.loc[[(boot.ruleset, s) for s in boot.submissions]].to_numpy()
        pairs = np.array([agreement(reference, scores) for scores in boot.scores])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # every replicate undefined
            low = np.nanquantile(pairs, tail, axis=0)
            high = np.nanquantile(pairs, 1 - tail, axis=0)
        rows.append((boot.ruleset, value, replicates, low[0], high[0], low[1], high[1]))
    return pd.DataFrame(
        rows,
        columns=["ruleset", "value", "replicates", "tau_low", "tau_high", "rho_low", "rho_high"],
    )


def disagreeing_pairs(comparison: pd.DataFrame, column: str = "score") -> pd.DataFrame:
    """Pairs of entries that the published board and optarena's ``column`` order differently
    (a tie on one side only counts as a disagreement). Columns: ruleset, published_better,
    published_worse, published_scores, optarena_scores."""
    rows = []
    for ruleset, group in comparison.groupby("ruleset", sort=True):
        ranked = group.sort_values("published_score", ascending=False)
        for a, b in itertools.combinations(ranked.itertuples(index=False), 2):
            ours = float(getattr(a, column)) - float(getattr(b, column))
            if np.sign(a.published_score - b.published_score) != np.sign(ours):
                rows.append(
                    (
                        ruleset,
                        a.published_name,
                        b.published_name,
                        f"{a.published_score:.4f} vs {b.published_score:.4f}",
                        f"{getattr(a, column):.4f} vs {getattr(b, column):.4f}",
                    )
                )
    return pd.DataFrame(
        rows,
        columns=[
            "ruleset",
            "published_better",
            "published_worse",
            "published_scores",
            "optarena_scores",
        ],
    )


def _tau_of(times: pd.DataFrame, published: pd.Series, value: str) -> float:
    if times.empty:
        return float("nan")
    scores = score_times(times, value).scores
    reference = published.loc[list(zip(scores["ruleset"], scores["submission"], strict=True))]
    return agreement(reference.to_numpy(), scores["score"].to_numpy())[0]


def per_workload_agreement(
    times: pd.DataFrame, published: pd.Series, value: str = TIME
) -> pd.DataFrame:
    """Per ruleset and base workload: tau of the order that workload alone gives
    (``tau_alone``, its held-out variants included) and of the order without it
    (``tau_without``). ``times`` is one ``value`` per workload (`aggregate.workload_times`)."""
    rows = []
    for ruleset, group in times.groupby("ruleset", sort=True):
        for base in sorted(group["base_workload"].unique()):
            alone = group[group["base_workload"] == base]
            without = group[group["base_workload"] != base]
            rows.append(
                (
                    ruleset,
                    base,
                    _tau_of(alone, published, value),
                    _tau_of(without, published, value),
                )
            )
    return pd.DataFrame(rows, columns=["ruleset", "workload", "tau_alone", "tau_without"])


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """What a comparison with a published board found, one frame each."""

    entries: pd.DataFrame
    """ruleset, published_name, optarena_name, published_score, published_rank, score, rank,
    steps_score, steps_rank (ranks among the mapped entries, 1 = best)."""
    summary: pd.DataFrame
    """Per ruleset and compared score: entries, tau, rho, their bootstrap intervals, and the
    published winner against optarena's."""
    pairs: pd.DataFrame
    """Pairs ordered differently, per compared score (column ``score``)."""
    workloads: pd.DataFrame
    """Per ruleset, compared score and base workload: tau_alone, tau_without."""


def _winners(group: pd.DataFrame, column: str) -> str:
    """The published name of the entry with the best ``column``; tied ones joined by ``=``."""
    best = group.loc[group[column] == group[column].max(), "published_name"]
    return " = ".join(sorted(best))


def _rank(values: pd.Series, rulesets: pd.Series) -> pd.Series:
    return values.groupby(rulesets).rank(method="min", ascending=False).astype(int)


def compare(
    trials: pd.DataFrame,
    mapped: pd.DataFrame,
    *,
    replicates: int = uncertainty.DEFAULT_REPLICATES,
    seed: int = 0,
    level: float = uncertainty.DEFAULT_LEVEL,
) -> Fidelity:
    """Score the mapped submissions' benchmark ``trials`` (``Store.benchmark_trials``) per
    ruleset and compare each compared score's order with the published one (`mapped_entries`).
    A mapped entry without trials is left out."""
    keys = list(zip(mapped["ruleset"], mapped["optarena_name"], strict=True))
    published = pd.Series(
        mapped["published_score"].to_numpy(), index=pd.MultiIndex.from_tuples(keys)
    )
    ran = set(zip(trials["ruleset"], trials["submission"], strict=True))
    kept = trials[
        [k in set(keys) for k in zip(trials["ruleset"], trials["submission"], strict=True)]
    ]
    if kept.empty:
        raise FidelityError("no benchmark trial of a mapped entry to compare")
    table = mapped[[k in ran for k in keys]].reset_index(drop=True)
    table.insert(4, "published_rank", _rank(table["published_score"], table["ruleset"]))
    summaries, pairs, workloads = [], [], []
    for value, column in VALUES.items():
        studies = study_times(kept, value)
        per_workload = workload_times(studies, value)
        scores = score_times(per_workload, value).scores.rename(
            columns={"submission": "optarena_name", "score": column}
        )
        table = table.merge(
            scores[["ruleset", "optarena_name", column]], on=["ruleset", "optarena_name"]
        )
        table[column.replace("score", "rank")] = _rank(table[column], table["ruleset"])
        intervals = bootstrap_agreement(
            studies, published, value, replicates=replicates, seed=seed, level=level
        )
        rows = []
        for ruleset, group in table.groupby("ruleset", sort=True):
            tau, rho = agreement(group["published_score"], group[column])
            rows.append(
                (
                    ruleset,
                    column,
                    len(group),
                    tau,
                    rho,
                    _winners(group, "published_score"),
                    _winners(group, column),
                )
            )
        summary = pd.DataFrame(
            rows,
            columns=["ruleset", "value", "entries", "tau", "rho", "published_winner", "winner"],
        )
        summaries.append(summary.merge(intervals.drop(columns="value"), on="ruleset", how="left"))
        pairs.append(disagreeing_pairs(table, column).assign(value=column))
        workloads.append(
            per_workload_agreement(per_workload, published, value).assign(value=column)
        )
    return Fidelity(
        entries=table,
        summary=pd.concat(summaries, ignore_index=True),
        pairs=pd.concat(pairs, ignore_index=True),
        workloads=pd.concat(workloads, ignore_index=True),
    )
