"""A self-contained static page of a snapshot: tables, profile plot, training curves, trials.

Plots are embedded as base64 PNG, so ``index.html`` is the whole page. Every text that comes
from a submission, a workload or the store goes through `html.escape`.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from optarena.leaderboard import plots
from optarena.leaderboard.snapshots import Snapshot
from optarena.leaderboard.tables import (
    MARK_LEGEND,
    RULESET_NOTES,
    format_cell,
    format_score,
    ruleset_label,
    stability_line,
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; background: #fff; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td.name { text-align: left; font-family: monospace; }
td.missed { color: #b00020; }
td.over_4x, td.variant_missed { color: #a06000; }
td.missing { color: #999; }
p.note { color: #555; font-size: 0.9em; max-width: 60em; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str, element_id: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img id="{_e(element_id)}" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], table_id: str) -> str:
    """An HTML table from already escaped cells (``<td>`` elements)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(text: object, css: str = "") -> str:
    css_attr = f' class="{_e(css)}"' if css else ""
    return f"<td{css_attr}>{_e(text)}</td>"


def _number(value: float, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _colours(snapshot: Snapshot) -> dict[str, str]:
    ranked = snapshot.scores.sort_values(["ruleset", "rank", "submission"])
    return plots.colours(list(ranked["submission"]))


def _scores_section(snapshot: Snapshot, ruleset: str, slug: str) -> str:
    scores = snapshot.scores[snapshot.scores["ruleset"] == ruleset].sort_values(
        ["rank", "submission"]
    )
    workloads = snapshot.workloads[snapshot.workloads["ruleset"] == ruleset]
    names = sorted(workloads["workload"].unique())
    cells = workloads.set_index(["submission", "workload"])
    rows = []
    for row in scores.itertuples(index=False):
        per_workload = []
        for name in names:
            ratio, mark = cells.loc[(row.submission, name), ["ratio", "mark"]]
            text, css = format_cell(ratio, mark)
            per_workload.append(_td(text, css))
        rows.append(
            [
                _td(row.rank),
                _td(row.submission, "name"),
                _td(format_score(row.score, row.score_low, row.score_high)),
                _td(_number(row.steps_score)),
                _td(_number(row.flops_score)),
                *per_workload,
            ]
        )
    level = f"{snapshot.interval_level:.0%}"
    table = _table(
        ["rank", "submission", f"score [{level} interval]", "steps score", "FLOPs score", *names],
        rows,
        f"scores-{slug}",
    )
    pairs = snapshot.pairs[snapshot.pairs["ruleset"] == ruleset]
    order = list(scores["submission"])
    matrix = pairs.set_index(["submission", "opponent"])["p_outscores"]
    pair_rows = [
        [
            _td(name, "name"),
            *(_td("-" if name == other else f"{matrix[(name, other)]:.2f}") for other in order),
        ]
        for name in order
    ]
    pairs_html = (
        "<h3>Probability that the row outscores the column (bootstrap over studies)</h3>"
        + _table(["", *order], pair_rows, f"pairs-{slug}")
        if not pairs.empty
        else ""
    )
    stability = snapshot.stability[snapshot.stability["ruleset"] == ruleset]
    stability_rows = [
        [
            _td(r.left_out, "name"),
            _td(r.ranking, "name"),
            _td("yes" if r.order_changed else "no"),
            _td(_number(r.kendall_tau, 2)),
        ]
        for r in stability.itertuples(index=False)
    ]
    profile = plots.profile_png(scores, workloads, _colours(snapshot))
    note = f'<p class="note">{_e(RULESET_NOTES[ruleset])}</p>' if ruleset in RULESET_NOTES else ""
    return (
        f"<h2>{_e(ruleset_label(ruleset))}</h2>{note}{table}"
        f'<p class="note">{_e(MARK_LEGEND)}</p>'
        f"<h3>Performance profile</h3>"
        f"{_img(profile, f'performance profile of {ruleset}', f'profile-{slug}')}"
        f"{pairs_html}"
        f"<h3>Rank stability</h3><p>{_e(stability_line(snapshot.stability, ruleset))}</p>"
        + _table(
            ["left out", "ranking", "order changed", "Kendall tau"],
            stability_rows,
            f"stability-{slug}",
        )
    )


def _curves_section(snapshot: Snapshot, curves: pd.DataFrame) -> str:
    if curves.empty:
        return "<h2>Training curves</h2><p>No evaluation points stored for these trials.</p>"
    parts = ["<h2>Training curves</h2>"]
    for index, (workload, points) in enumerate(curves.groupby("workload", sort=True)):
        png = plots.curves_png(points, snapshot.trials, _colours(snapshot))
        parts.append(
            f"<h3>{_e(workload)}</h3>{_img(png, f'curves of {workload}', f'curves-{index}')}"
        )
    return "".join(parts)


def _trials_section(trials: pd.DataFrame) -> str:
    header = ["trial id", "ruleset", "submission", "workload", "study", "trial", "seed", "status"]
    header += ["time to target s", "steps to target", "FLOPs per step"]
    ordered = trials.sort_values(["ruleset", "submission", "workload", "study", "trial"])
    rows = [
        [
            _td(r.trial_id),
            _td(r.ruleset, "name"),
            _td(r.submission, "name"),
            _td(r.workload, "name"),
            _td(r.study),
            _td(r.trial),
            _td(r.seed),
            _td(r.status, "" if r.status == "reached" else "missed"),
            _td(_number(r.time_to_target_sec, 2)),
            _td(_number(r.steps_to_target, 0)),
            _td(_number(r.flops_per_step, 0) if math.isfinite(r.flops_per_step) else "unknown"),
        ]
        for r in ordered.itertuples(index=False)
    ]
    return "<h2>Trials</h2>" + _table(header, rows, "trials")


def render(snapshot: Snapshot, curves: pd.DataFrame) -> str:
    """The page as a string."""
    rulesets = list(dict.fromkeys(snapshot.scores["ruleset"]))
    sections = "".join(
        _scores_section(snapshot, ruleset, str(index)) for index, ruleset in enumerate(rulesets)
    )
    title = f"optarena leaderboard, snapshot {snapshot.id}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="note">Scored {_e(f"{snapshot.created_at:%Y-%m-%d %H:%M:%S}")} UTC from '
        f"{len(snapshot.trials)} trials (inputs sha256 {_e(snapshot.inputs_sha256)}). "
        "Score: AlgoPerf's area under the performance profile over tau in [1, 4], divided by 3; "
        "1.0 means fastest on every base workload.</p>"
        f"{sections}{_curves_section(snapshot, curves)}{_trials_section(snapshot.trials)}"
        "</body></html>\n"
    )


def write(directory: Path, snapshot: Snapshot, curves: pd.DataFrame) -> Path:
    """Write ``directory/index.html`` (creating the directory); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    page = directory / "index.html"
    page.write_text(render(snapshot, curves), encoding="utf-8")
    return page
