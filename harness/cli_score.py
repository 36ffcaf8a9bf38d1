"""``optarena score`` and ``optarena leaderboard``: AlgoPerf scores, snapshots and their views.

``score --times FILE.csv`` scores a table of times (a published leaderboard, say) and touches
no store; ``score`` alone scores every benchmark trial stored and saves a dated snapshot;
``leaderboard`` shows the latest snapshot in the terminal or as a static HTML page.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from optarena.harness.cli import EXIT_OK, BadInput, _console, _open_store, _positive_int, _version

if TYPE_CHECKING:
    import pandas as pd


def read_times_file(path: str) -> pd.DataFrame:
    """Read and validate a CSV of times (see `scoring.times_table`); bad input is one line."""
    import pandas as pd

    from optarena.scoring.times_table import TimesTableError, validate_times

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


def _print_report(console, scores, workloads, pairs, stability) -> None:
    from optarena.leaderboard.tables import pairs_table, scores_table, stability_line

    for ruleset in scores["ruleset"].unique():
        console.print(scores_table(scores, workloads, ruleset))
        ranked = scores[scores["ruleset"] == ruleset].sort_values(["rank", "submission"])
        pairs_view = pairs_table(pairs, ruleset, list(ranked["submission"]))
        if pairs_view is not None:
            console.print(pairs_view)
        console.print(stability_line(stability, ruleset), markup=False)


def _settings(args: argparse.Namespace):
    from optarena.scoring.report import Settings

    if not 0 < args.level < 1:
        raise BadInput(f"--level must be between 0 and 1, got {args.level}")
    return Settings(replicates=args.replicates, seed=args.seed, level=args.level)


def _write_scores(scores: pd.DataFrame, output: str) -> None:
    columns = ("ruleset", "submission", "score", "score_low", "score_high")
    try:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        scores[[c for c in columns if c in scores.columns]].to_csv(output, index=False)
    except OSError as error:
        raise BadInput(f"cannot write {output}: {error}") from error


def cmd_score(args: argparse.Namespace) -> int:
    """Score a CSV of times (``--times``), or everything stored into a new snapshot."""
    settings = _settings(args)
    console = _console()
    if args.times is not None:
        from optarena.scoring.report import score_times_table

        times = read_times_file(args.times)
        try:
            report = score_times_table(times, settings)
        except ValueError as error:
            raise BadInput(f"{args.times}: {error}") from error
    else:
        from optarena.leaderboard.snapshots import NoSnapshotError, score_store
        from optarena.leaderboard.store import StoreError

        store = _open_store(args.db, create=False)
        try:
            snapshot_id, report = score_store(store, settings, version=_version())
        except (NoSnapshotError, StoreError, ValueError) as error:
            raise BadInput(str(error)) from error
        console.print(f"snapshot {snapshot_id} saved in {store.url}", markup=False)
    _print_report(console, report.scores, report.workloads, report.pairwise, report.stability)
    if args.output:
        _write_scores(report.scores, args.output)
    return EXIT_OK


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Show the latest snapshot (or ``--snapshot ID``); ``--html DIR`` writes a static page."""
    from optarena.leaderboard.snapshots import NoSnapshotError, load_snapshot

    store = _open_store(args.db, create=False)
    try:
        snapshot = load_snapshot(store, args.snapshot, ruleset=args.ruleset)
    except NoSnapshotError as error:
        raise BadInput(str(error)) from error
    console = _console()
    console.print(
        f"snapshot {snapshot.id} of {snapshot.created_at:%Y-%m-%d %H:%M:%S} UTC "
        f"({len(snapshot.trials)} trials, inputs sha256 {snapshot.inputs_sha256[:12]})",
        markup=False,
    )
    _print_report(console, snapshot.scores, snapshot.workloads, snapshot.pairs, snapshot.stability)
    if args.html:
        from optarena.leaderboard import html_page
        from optarena.leaderboard.snapshots import eval_curves

        curves = eval_curves(store, snapshot.trials["trial_id"])
        try:
            page = html_page.write(Path(args.html), snapshot, curves)
        except OSError as error:
            raise BadInput(f"cannot write {args.html}: {error}") from error
        console.print(f"wrote {page}", markup=False)
    return EXIT_OK


def _level(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def register(commands, add_store: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``score`` and ``leaderboard`` to the ``optarena`` parser's subcommands."""
    help_text = (
        "Score times to target the AlgoPerf way: a CSV of times (--times), or every stored "
        "benchmark trial, saved as a dated snapshot."
    )
    sub = commands.add_parser("score", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_score)
    sub.add_argument(
        "--times",
        metavar="FILE.csv",
        help="CSV with columns ruleset, submission, workload, base_workload, time_to_target_sec "
        "('inf' = not reached), optionally study; the store is not used",
    )
    sub.add_argument(
        "--output", metavar="FILE.csv", help="also write ruleset, submission, score (, interval)"
    )
    sub.add_argument(
        "--replicates",
        type=_positive_int,
        default=1000,
        help="bootstrap replicates for intervals and win probabilities (default 1000)",
    )
    sub.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    sub.add_argument(
        "--level", type=_level, default=0.95, help="interval confidence level (default 0.95)"
    )
    add_store(sub)

    help_text = "Show the latest score snapshot: table, intervals, rank stability; or HTML."
    sub = commands.add_parser("leaderboard", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_leaderboard)
    sub.add_argument("--ruleset", help="only this ruleset (e.g. external, self)")
    sub.add_argument("--snapshot", type=int, help="snapshot id (default: the latest)")
    sub.add_argument(
        "--html", metavar="DIR", help="write a self-contained page DIR/index.html with plots"
    )
    add_store(sub)
