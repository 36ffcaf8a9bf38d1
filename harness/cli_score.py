"""``optarena score``: AlgoPerf scores of a table of times to target, or of everything stored."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from rich.table import Table

from harness.cli import EXIT_OK, BadInput, _console

MARK_TEXT = {
    "missing": "[dim]no data",
    "missed": "[red]missed",
    "over_4x": "[yellow]>4x",
    "variant_missed": "[yellow]variant",
}
MARKS_LEGEND = (
    "normalized time = time / fastest; missed: target not reached; >4x: over 4 times the "
    "fastest; variant: a held-out variant missed or was too slow; no data: no trials"
)


def read_times_file(path: str) -> pd.DataFrame:
    """Read and validate a CSV of times (see `scoring.times_table`); bad input is one line."""
    from scoring.times_table import TimesTableError, validate_times

    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as error:
        raise BadInput(f"{path}: no such file") from error
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise BadInput(f"{path}: not a readable CSV file: {error}".splitlines()[0]) from error
    try:
        return validate_times(raw)
    except TimesTableError as error:
        raise BadInput(f"{path}: {error}") from error


def _format_ratio(ratio: float, mark: str) -> str:
    if mark == "counted":
        return f"{ratio:.2f}"
    return MARK_TEXT[mark]


def _format_score(row: pd.Series) -> str:
    text = f"{row['score']:.4f}"
    if "score_low" in row and not math.isnan(row["score_low"]):
        text += f" [{row['score_low']:.3f}, {row['score_high']:.3f}]"
    return text


def scores_table(scores: pd.DataFrame, workloads: pd.DataFrame, ruleset: str) -> Table:
    """Rank, submission, score (with its interval when known) and per-workload normalized times."""
    rows = scores[scores["ruleset"] == ruleset]
    per_workload = workloads[workloads["ruleset"] == ruleset]
    names = sorted(per_workload["workload"].unique())
    table = Table(title=f"{ruleset}: scores (1.0 = fastest on every workload)")
    table.add_column("rank", justify="right")
    table.add_column("submission")
    table.add_column("score", justify="right")
    extras = [c for c in ("steps_score", "flops_score") if c in rows.columns]
    for column in extras:
        table.add_column(column.replace("_", " "), justify="right")
    for name in names:
        table.add_column(name, justify="right")
    cells = per_workload.set_index(["submission", "workload"])
    for row in rows.itertuples(index=False):
        record = pd.Series(row._asdict())
        table.add_row(
            str(int(record["rank"])),
            record["submission"],
            _format_score(record),
            *("-" if math.isnan(record[c]) else f"{record[c]:.4f}" for c in extras),
            *(
                _format_ratio(*cells.loc[(record["submission"], name), ["ratio", "mark"]])
                for name in names
            ),
        )
    table.caption = MARKS_LEGEND
    return table


def cmd_score(args: argparse.Namespace) -> int:
    """Score a CSV of times (``--times``) and print the table; ``--output`` writes the scores."""
    from scoring.report import score_times_table

    times = read_times_file(args.times)
    try:
        report = score_times_table(times)
    except ValueError as error:
        raise BadInput(f"{args.times}: {error}") from error
    console = _console()
    for ruleset in report.scores["ruleset"].unique():
        console.print(scores_table(report.scores, report.workloads, ruleset))
    if args.output:
        columns = ("ruleset", "submission", "score", "score_low", "score_high")
        output = report.scores[[c for c in columns if c in report.scores.columns]]
        try:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            output.to_csv(args.output, index=False)
        except OSError as error:
            raise BadInput(f"cannot write {args.output}: {error}") from error
    return EXIT_OK


def register(commands, add_store: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the scoring commands to the ``optarena`` parser's subcommands."""
    help_text = "Score times to target the AlgoPerf way (performance profiles)."
    sub = commands.add_parser("score", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_score)
    sub.add_argument(
        "--times",
        required=True,
        metavar="FILE.csv",
        help="CSV with columns ruleset, submission, workload, base_workload, time_to_target_sec "
        "('inf' = not reached), optionally study",
    )
    sub.add_argument("--output", metavar="FILE.csv", help="write ruleset, submission, score here")
    add_store(sub)
