"""The nightly report in Markdown: verdict first, then the machine's timing, scores, workloads."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import pandas as pd

from optarena.scoring.night_comparison import Comparison


@dataclasses.dataclass(frozen=True, kw_only=True)
class NightInfo:
    """What the report says about the night itself."""

    date: str
    snapshot_id: int
    previous_snapshot_id: int | None
    previous_date: str | None
    suite: str
    rulesets: Sequence[str]
    submissions: Sequence[str]
    trials_run: int
    trials_reused: int
    reference: str
    normalized: bool
    skipped: Sequence[str] = ()


def _num(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    if math.isinf(value):
        return "missed" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _signed(value: object) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{float(value):+.4f}"


def _rank(value: object) -> str:
    return "-" if value is None or pd.isna(value) else str(int(value))


def _interval(low: object, high: object) -> str:
    if pd.isna(low) or pd.isna(high):
        return "-"
    return f"[{float(low):.4f}, {float(high):.4f}]"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _verdict_lines(comparison: Comparison) -> list[str]:
    regressed = comparison.scores[comparison.scores["regressed"]]
    if regressed.empty:
        return ["**No regression.**"]
    lines = [f"**REGRESSION in {len(regressed)} submission(s):**", ""]
    for row in regressed.itertuples(index=False):
        lines.append(
            f"- `{row.submission}` ({row.ruleset}): {row.regressed_workloads}; "
            f"score {_num(row.score_before)} -> {_num(row.score_now)}"
        )
    return lines


def _timing_lines(drift: pd.DataFrame, tolerance: float, reference: str) -> list[str]:
    lines = [
        "## Machine timing",
        "",
        f"`{reference}`'s fixed trials (same seeds, hyperparameters and steps every night) "
        "re-timed tonight against the previous night (timed seconds of the whole trial). Their "
        "steps and steps to target must match (determinism); their times show how this "
        "machine's speed moved between nights.",
        "",
    ]
    if drift.empty:
        return [*lines, "No timing check ran.", ""]
    lines += _table(
        [
            "workload",
            "seed",
            "steps (to target) before",
            "steps (to target) now",
            "timed s before",
            "timed s now",
            "ratio",
        ],
        (
            (
                row.workload,
                int(row.seed),
                f"{_num(row.num_steps_before, 6)} ({_num(row.steps_to_target_before, 6)})",
                f"{_num(row.num_steps_now, 6)} ({_num(row.steps_to_target_now, 6)})",
                _num(row.timed_sec_before),
                _num(row.timed_sec_now),
                _num(row.ratio, 3),
            )
            for row in drift.itertuples(index=False)
        ),
    )
    mismatched = int((~drift["steps_match"] & drift["num_steps_before"].notna()).sum())
    lines += [
        "",
        f"Timing tolerance tonight: {tolerance:.3f} (the largest |ratio - 1| above, and never "
        "less than the configured floor). A time counts as slower only beyond it.",
    ]
    if mismatched:
        lines.append(
            f"**{mismatched} re-timed trial(s) changed steps to target: not the same "
            "computation as the previous night (another CPU build or a changed reference).**"
        )
    return [*lines, ""]


def _scores_lines(scores: pd.DataFrame) -> list[str]:
    header = [
        "submission",
        "rank",
        "score before",
        "score now",
        "delta (interval)",
        "interval before",
        "interval now",
        "intervals",
        "steps score",
        "FLOPs score",
        "verdict",
    ]
    rows = []
    for row in scores.itertuples(index=False):
        if row.regressed:
            verdict = f"REGRESSED ({row.regressed_workloads})"
        elif row.presence != "both":
            verdict = row.presence
        elif row.interval_shift == "lower":
            verdict = "score lower: others got faster, its own times did not regress"
        else:
            verdict = "ok"
        rows.append(
            (
                f"`{row.submission}`",
                f"{_rank(row.rank_before)} -> {_rank(row.rank_now)}",
                _num(row.score_before),
                _num(row.score_now),
                f"{_signed(row.delta)} ({_signed(row.delta_low)}..{_signed(row.delta_high)})",
                _interval(row.score_low_before, row.score_high_before),
                _interval(row.score_low_now, row.score_high_now),
                row.interval_shift,
                f"{_num(row.steps_score_before)} -> {_num(row.steps_score_now)}",
                f"{_num(row.flops_score_before)} -> {_num(row.flops_score_now)}",
                verdict,
            )
        )
    return _table(header, rows)


def _workload_lines(workloads: pd.DataFrame) -> list[str]:
    header = [
        "submission",
        "workload",
        "time before s (band)",
        "time now s (band)",
        "ratio",
        "study ratios",
        "steps before",
        "steps now",
        "verdict",
    ]

    def band(median, low, high) -> str:
        if pd.isna(median):
            return "-"
        return f"{_num(median)} ({_num(low)}..{_num(high)})"

    rows = [
        (
            f"`{row.submission}`",
            row.workload,
            band(row.median_before, row.low_before, row.high_before),
            band(row.median_now, row.low_now, row.high_now),
            _num(row.ratio, 3),
            "-"
            if pd.isna(row.study_ratio_low)
            else f"{_num(row.study_ratio_low, 3)}..{_num(row.study_ratio_high, 3)}",
            _num(row.steps_before, 6),
            _num(row.steps_now, 6),
            row.verdict,
        )
        for row in workloads.itertuples(index=False)
    ]
    return _table(header, rows)


def _changes_lines(scores: pd.DataFrame) -> list[str]:
    new = [f"`{s}`" for s in scores.loc[scores["presence"] == "new", "submission"]]
    removed = [f"`{s}`" for s in scores.loc[scores["presence"] == "removed", "submission"]]
    both = scores[scores["presence"] == "both"]
    moved = [
        f"`{r.submission}` {_rank(r.rank_before)} -> {_rank(r.rank_now)}"
        for r in both.itertuples(index=False)
        if int(r.rank_before) != int(r.rank_now)
    ]
    return [
        f"- new submissions: {', '.join(new) or 'none'}",
        f"- removed submissions: {', '.join(removed) or 'none'}",
        f"- rank changes: {', '.join(moved) or 'none'}",
    ]


def render(info: NightInfo, comparison: Comparison, drift: pd.DataFrame) -> str:
    """The whole report as Markdown."""
    previous = (
        f"snapshot {info.previous_snapshot_id} of {info.previous_date}"
        if info.previous_snapshot_id is not None
        else "none (first night with these settings: everything is new)"
    )
    lines = [
        f"# Nightly report, {info.date}",
        "",
        *_verdict_lines(comparison),
        "",
        f"- snapshot {info.snapshot_id}; compared with {previous}",
        f"- suite `{info.suite}`, rulesets {', '.join(info.rulesets)}; "
        f"submissions {', '.join(f'`{s}`' for s in info.submissions)}",
        f"- {info.trials_run} trials run tonight, {info.trials_reused} reused from the store",
        "- wall-clock times "
        + (
            "normalized by each night's machine speed (the reference's re-timed trials)"
            if info.normalized
            else "as measured (not normalized)"
        ),
    ]
    lines += [f"- skipped: {note}" for note in info.skipped]
    lines += [
        "",
        "A workload regresses when its target is newly missed, or when every study is slower "
        "than the same study (same points, same seeds) the previous night by more than the "
        "timing tolerance. "
        "Scores are relative to the fastest submission, so a score can fall because another "
        "submission got faster; only a submission's own times make it a regression. Steps and "
        "FLOPs scores do not depend on the machine's speed.",
        "",
        *_timing_lines(drift, comparison.tolerance, info.reference),
    ]
    for ruleset in sorted(comparison.scores["ruleset"].unique()):
        scores = comparison.scores[comparison.scores["ruleset"] == ruleset]
        workloads = comparison.workloads[comparison.workloads["ruleset"] == ruleset]
        lines += [
            f"## Ruleset {ruleset}",
            "",
            *_changes_lines(scores),
            "",
            "### Scores",
            "",
            *_scores_lines(scores),
            "",
            "### Time to target per workload (median over studies; band: min..max of studies)",
            "",
            *_workload_lines(workloads),
            "",
        ]
    return "\n".join(lines)
