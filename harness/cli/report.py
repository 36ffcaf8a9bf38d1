"""How scores are shown, by ``score``, ``leaderboard`` and ``quickstart``: per ruleset the scores
table, the pairwise win probabilities and the rank stability; or all of it as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console

from optarena.harness.cli import common

if TYPE_CHECKING:
    import pandas as pd


def print_tables(
    out: Console,
    scores: pd.DataFrame,
    workloads: pd.DataFrame,
    pairs: pd.DataFrame,
    stability: pd.DataFrame,
) -> None:
    """Each ruleset's scores table, pairs table (when there are intervals) and stability."""
    from optarena.leaderboard.tables import pairs_table, scores_table, stability_line

    for ruleset in scores["ruleset"].unique():
        out.print(scores_table(scores, workloads, ruleset))
        ranked = scores[scores["ruleset"] == ruleset].sort_values(["rank", "submission"])
        pairs_view = pairs_table(pairs, ruleset, list(ranked["submission"]))
        if pairs_view is not None:
            out.print(pairs_view)
        common.say(out, stability_line(stability, ruleset))


def payload(
    scores: pd.DataFrame,
    workloads: pd.DataFrame,
    pairs: pd.DataFrame,
    stability: pd.DataFrame,
    **header: Any,
) -> dict[str, Any]:
    """The JSON form: ``header`` fields, then one list of records per table."""
    return {
        **header,
        "scores": common.records(scores.sort_values(["ruleset", "rank", "submission"])),
        "workloads": common.records(workloads),
        "pairs": common.records(pairs),
        "stability": common.records(stability),
    }
