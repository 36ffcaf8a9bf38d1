"""Rank stability: the ranking recomputed with each base workload (and its variants) left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from optarena.scoring.profiles import TIME, ranks, score_times


def ordering(scores: pd.DataFrame) -> str:
    """The ranking as text, best first: ``a > b = c`` (equal scores joined by ``=``)."""
    ranked = scores.sort_values(["score", "submission"], ascending=[False, True])
    text = ""
    previous = None
    for submission, score in zip(ranked["submission"], ranked["score"], strict=True):
        if previous is not None:
            text += " = " if score == previous else " > "
        text += submission
        previous = score
    return text


def leave_one_workload_out(times: pd.DataFrame, value: str = TIME) -> pd.DataFrame:
    """For each ruleset and base workload: the ranking without it and whether it changed.

    Columns: ruleset, left_out, ranking, order_changed, kendall_tau (between the full and the
    reduced scores; NaN when either is constant). A ruleset with one base workload has no rows.
    """
    rows = []
    for ruleset, group in times.groupby("ruleset", sort=True):
        full = score_times(group, value).scores.sort_values("submission", ignore_index=True)
        full_ranks = ranks(full).to_numpy()
        for base in sorted(group["base_workload"].unique()):
            reduced_times = group[group["base_workload"] != base]
            if reduced_times.empty:
                continue
            reduced = score_times(reduced_times, value).scores
            reduced = (
                reduced.set_index("submission")
                .reindex(full["submission"])
                .fillna({"score": 0.0, "ruleset": ruleset})
                .reset_index()
            )
            reduced_ranks = ranks(reduced).to_numpy()
            if np.ptp(full["score"]) > 0 and np.ptp(reduced["score"]) > 0:
                tau = float(kendalltau(full["score"], reduced["score"]).statistic)
            else:
                tau = float("nan")
            rows.append(
                (
                    ruleset,
                    base,
                    ordering(reduced),
                    bool((reduced_ranks != full_ranks).any()),
                    tau,
                )
            )
    return pd.DataFrame(
        rows, columns=["ruleset", "left_out", "ranking", "order_changed", "kendall_tau"]
    )


def change_rate(stability: pd.DataFrame) -> pd.DataFrame:
    """Per ruleset: how many leave-one-out rankings differ from the full one, and the share."""
    summary = stability.groupby("ruleset", sort=True)["order_changed"].agg(["sum", "count"])
    return pd.DataFrame(
        {
            "ruleset": summary.index,
            "changed": summary["sum"].astype(int).to_numpy(),
            "left_out": summary["count"].to_numpy(),
            "share_changed": (summary["sum"] / summary["count"]).to_numpy(),
        }
    )
