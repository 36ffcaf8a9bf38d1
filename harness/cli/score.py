"""``optarena score``: AlgoPerf scores of a CSV of times, or of every stored benchmark trial
(saved as a dated snapshot)."""

from __future__ import annotations

import argparse
from pathlib import Path

from optarena.errors import UserError
from optarena.harness.cli import common, report


def cmd_score(args: argparse.Namespace) -> int:
    """Score a CSV of times (``--times``), or everything stored into a new snapshot."""
    from optarena.scoring.report import Settings

    settings = Settings(replicates=args.replicates, seed=args.seed, level=args.level)
    out = common.console()
    header = {}
    if args.times is not None:
        from optarena.harness.csv_inputs import score_times_file

        scored = score_times_file(args.times, settings)
        header["times"] = args.times
    else:
        from optarena.harness.provenance import version
        from optarena.leaderboard.snapshots import score_store

        store = common.open_store(args, create=False)
        snapshot_id, scored = score_store(store, settings, version=version(), time_basis=args.time)
        header.update(snapshot_id=snapshot_id, store=store.url, time_basis=args.time)
        if not args.json:
            common.say(out, f"snapshot {snapshot_id} saved in {store.url}")
    if args.output:
        columns = ("ruleset", "submission", "score", "score_low", "score_high")
        try:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            kept = [c for c in columns if c in scored.scores.columns]
            scored.scores[kept].to_csv(args.output, index=False)
        except OSError as error:
            raise UserError(f"cannot write {args.output}: {error}") from error
    tables = (scored.scores, scored.workloads, scored.pairwise, scored.stability)
    if args.json:
        common.print_json(report.payload(*tables, **header))
    else:
        report.print_tables(out, *tables)
    return common.Exit.OK


def register(commands) -> None:
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
        type=common.count(1_000_000),
        default=1000,
        help="bootstrap replicates for intervals and win probabilities (default 1000)",
    )
    sub.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    sub.add_argument(
        "--level",
        type=common.fraction,
        default=0.95,
        help="interval confidence level, between 0 and 1 (default 0.95)",
    )
    sub.add_argument(
        "--time",
        choices=["scored", "wall"],
        default="scored",
        help="stored trials' time to score: scored (steps x step time, compile excluded; "
        "the default) or wall (AlgoPerf's raw wall clock, compile included)",
    )
    common.add_json(sub)
    common.add_store(sub)
