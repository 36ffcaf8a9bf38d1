"""Terminal tables of scores: rank, score with interval, normalized times with marks."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table
from rich.text import Text

MARK_TEXT = {
    "missing": Text("no data", style="dim"),
    "missed": Text("missed", style="red"),
    "over_4x": Text(">4x", style="yellow"),
    "variant_missed": Text("variant", style="yellow"),
}
MARK_LEGEND = (
    "normalized time = median time to target / fastest submission's; missed: target not "
    "reached; >4x: over 4 times the fastest; variant: a held-out variant missed its target or "
    "was too slow; no data: no trials"
)


RULESET_LABELS = {"default": "default points"}
"""How a ruleset is titled where it differs from its stored name."""
RULESET_NOTES = {
    "default": "each submission at its default point, seeds as studies; nothing is tuned, so "
    "this ranks default points, not training algorithms (`optarena benchmark` runs the rulesets)"
}
"""A sentence shown under a ruleset's scores, where one is needed to read them right."""


def ruleset_label(ruleset: str) -> str:
    """The title of a ruleset's tables: ``default points`` for the main job's group."""
    return RULESET_LABELS.get(ruleset, ruleset)


def format_score(score: float, low: float = math.nan, high: float = math.nan) -> str:
    """``0.6244`` or ``0.6244 [0.512, 0.701]`` when an interval is known."""
    text = "-" if math.isnan(score) else f"{score:.4f}"
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def format_cell(ratio: float, mark: str) -> tuple[str, str]:
    """(plain text, mark) of one submission's normalized time on one workload."""
    if mark == "counted":
        return f"{ratio:.2f}", mark
    return {
        "missing": "no data",
        "missed": "missed",
        "over_4x": ">4x",
        "variant_missed": "variant",
    }[mark], mark


def scores_table(scores: pd.DataFrame, workloads: pd.DataFrame, ruleset: str) -> Table:
    """Rank, submission, score (with its interval when known), steps and FLOPs scores when
    known, and each base workload's normalized time or the mark of a missed target."""
    rows = scores[scores["ruleset"] == ruleset].sort_values(["rank", "submission"])
    per_workload = workloads[workloads["ruleset"] == ruleset]
    names = sorted(per_workload["workload"].unique())
    table = Table(title=f"{ruleset_label(ruleset)}: scores (1.0 = fastest on every workload)")
    table.add_column("rank", justify="right")
    table.add_column("submission")
    table.add_column("score", justify="right")
    extras = [c for c in ("steps_score", "flops_score") if c in rows.columns]
    for column in extras:
        table.add_column(column.replace("_", " "), justify="right")
    for name in names:
        table.add_column(name, justify="right")
    cells = per_workload.set_index(["submission", "workload"])
    for row in rows.to_dict(orient="records"):
        rendered = []
        for name in names:
            key = (row["submission"], name)
            if key not in cells.index:
                rendered.append(MARK_TEXT["missing"])
                continue
            ratio, mark = cells.loc[key, ["ratio", "mark"]]
            rendered.append(f"{ratio:.2f}" if mark == "counted" else MARK_TEXT[mark])
        table.add_row(
            str(int(row["rank"])),
            row["submission"],
            format_score(
                row["score"], row.get("score_low", math.nan), row.get("score_high", math.nan)
            ),
            *(format_score(row[c]) for c in extras),
            *rendered,
        )
    note = RULESET_NOTES.get(ruleset)
    table.caption = MARK_LEGEND + (f"\n{ruleset_label(ruleset)}: {note}" if note else "")
    return table


def pairs_table(pairs: pd.DataFrame, ruleset: str, order: list[str]) -> Table | None:
    """P(row outscores column) from the bootstrap, submissions in ``order``; None without pairs."""
    pairs = pairs[pairs["ruleset"] == ruleset]
    if pairs.empty:
        return None
    names = [name for name in order if name in set(pairs["submission"])]
    matrix = pairs.set_index(["submission", "opponent"])["p_outscores"]
    table = Table(title=f"{ruleset_label(ruleset)}: probability that the row outscores the column")
    table.add_column("")
    for name in names:
        table.add_column(name, justify="right")
    for name in names:
        table.add_row(
            name,
            *("-" if name == other else f"{matrix[(name, other)]:.2f}" for other in names),
        )
    return table


def stability_line(stability: pd.DataFrame, ruleset: str) -> str:
    """One sentence: how often leaving a workload out changes the order."""
    rows = stability[stability["ruleset"] == ruleset]
    if rows.empty:
        return f"{ruleset_label(ruleset)}: rank stability needs at least two base workloads"
    changed = rows.loc[rows["order_changed"], "left_out"].tolist()
    text = (
        f"{ruleset_label(ruleset)}: leaving out one base workload changes the order in "
        f"{len(changed)} of {len(rows)} cases"
    )
    return text + (f" ({', '.join(changed)})" if changed else "")
