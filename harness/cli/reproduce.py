"""``optarena reproduce``: recompute recorded scores, or re-run stored trials, and report what
differs (`optarena.harness.reproduce`). Exit 0: everything matches; 4: something does not (or
cannot be re-run as recorded); 2: bad input."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table

from optarena.errors import UserError
from optarena.harness.cli import common

if TYPE_CHECKING:
    import pandas as pd

    from optarena.harness.reproduce import TrialCheck


def scores_table(comparison: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    for column in ("ruleset", "submission", "value", "recorded", "recomputed", "difference"):
        table.add_column(
            column, justify="right" if column in ("recorded", "recomputed") else "left"
        )
    table.add_column("match")
    for row in comparison.itertuples(index=False):
        table.add_row(
            row.ruleset,
            row.submission,
            row.value,
            f"{row.recorded:.6f}",
            f"{row.recomputed:.6f}",
            f"{row.difference:+.2e}" if math.isfinite(row.difference) else "-",
            "yes" if row.match else common.styled("NO", "red"),
        )
    return table


def _difference(check: TrialCheck) -> str:
    if check.status[0] != check.status[1]:
        return f"status {check.status[0]} vs {check.status[1]}"
    if check.steps_to_target[0] != check.steps_to_target[1]:
        return f"steps to target {check.steps_to_target[0]} vs {check.steps_to_target[1]}"
    return str(check.first_difference)


def trials_table(checks: Sequence[TrialCheck]) -> Table:
    table = Table(title="Trials re-run from their records")
    for column in (
        "trial",
        "what",
        "status",
        "steps to target",
        "evaluations",
        "time to target ratio",
        "timed s ratio",
        "match",
    ):
        table.add_column(column)
    for check in checks:
        before, after = check.steps_to_target
        table.add_row(
            str(check.trial_id),
            check.label,
            check.status[0] if check.status[0] == check.status[1] else " -> ".join(check.status),
            "same" if before == after else f"{before} -> {after}",
            f"{check.evaluations} identical"
            if check.first_difference is None
            else common.styled(check.first_difference, "red"),
            "-" if math.isnan(check.time_ratio) else f"{check.time_ratio:.3f}",
            "-" if math.isnan(check.timed_ratio) else f"{check.timed_ratio:.3f}",
            "yes" if check.matches else common.styled("NO", "red"),
        )
    return table


def _trial_ids(args: argparse.Namespace, store) -> list[int]:
    from optarena.harness import reproduce

    if args.trials is not None:
        try:
            ids = [int(part) for part in args.trials.split(",") if part.strip()]
        except ValueError as error:
            raise UserError(
                f"--trials must be comma-separated trial ids, got {args.trials!r}"
            ) from error
        if not ids:
            raise UserError("--trials names no trial")
        return ids
    return reproduce.chosen_trials(
        store,
        snapshot=args.snapshot,
        submission=args.submission,
        workload=args.workload,
        ruleset=args.ruleset,
    )


def _rerun(args: argparse.Namespace) -> int:
    from optarena.harness import reproduce
    from optarena.harness.executors import make_executor

    common.isolate_in_process_trials(args)
    store = common.open_store(args, create=False)
    log = common.console(stderr=True)

    def on_checked(check: TrialCheck) -> None:
        verdict = "matches" if check.matches else f"DIFFERS: {_difference(check)}"
        common.say(log, f"trial {check.trial_id} ({check.label}): {verdict}")

    found = reproduce.rerun(
        store,
        _trial_ids(args, store),
        make_executor(args.executor, common.data_dir(args)),
        on_checked=on_checked,
    )
    for trial_id, why in found.cannot_rerun.items():
        common.say(log, f"trial {trial_id} cannot be re-run as recorded: {why}")
    if args.json:
        common.print_json(
            {
                "cannot_rerun": found.cannot_rerun,
                "checks": [
                    {**dataclasses.asdict(check), "matches": check.matches}
                    for check in found.checks
                ],
            }
        )
    elif found.checks:
        out = common.console()
        out.print(trials_table(found.checks))
        mismatched = found.mismatched
        common.say(
            out,
            f"{len(found.checks) - len(mismatched)} of {len(found.checks)} trials reproduced "
            "exactly" + (f"; differ: {', '.join(map(str, mismatched))}" if mismatched else ""),
        )
    bad = found.cannot_rerun or found.mismatched
    return common.Exit.MISMATCH if bad else common.Exit.OK


def _check_arguments(args: argparse.Namespace) -> bool:
    """Whether the arguments ask for re-runs; raises on a combination that means nothing."""
    rerun = args.rerun or args.trials is not None
    if args.times is not None and (rerun or args.snapshot is not None):
        raise UserError("--times re-scores a CSV; it does not combine with --snapshot or re-runs")
    if args.scores is not None and args.times is None:
        raise UserError("--scores goes with --times")
    if args.trials is not None and args.snapshot is not None:
        raise UserError("give --trials or --snapshot, not both")
    if not rerun and args.times is None and args.snapshot is None:
        raise UserError("give --snapshot ID, --times FILE, --trials IDS or --rerun with a filter")
    filters = (args.submission, args.workload, args.ruleset)
    if any(f is not None for f in filters) and not (args.rerun and args.snapshot is None):
        raise UserError("--submission, --workload and --ruleset filter --rerun without --snapshot")
    return rerun


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Re-score (``--snapshot``, ``--times``) or re-run (``--trials``, ``--rerun``)."""
    from optarena.harness import csv_inputs, reproduce

    if _check_arguments(args):
        return _rerun(args)
    out = common.console()
    if args.times is not None and args.scores is None:
        scores = csv_inputs.score_times_file(args.times).scores[["ruleset", "submission", "score"]]
        if args.json:
            common.print_json(common.records(scores))
            return common.Exit.OK
        table = Table(title=f"Scores of {args.times} (no recorded scores given)")
        for column in ("ruleset", "submission", "score"):
            table.add_column(column)
        for row in scores.itertuples(index=False):
            table.add_row(row.ruleset, row.submission, f"{row.score:.6f}")
        out.print(table)
        return common.Exit.OK
    if args.times is not None:
        comparison = reproduce.rescore_times(args.times, args.scores)
        title = f"{args.times} against {args.scores}"
    else:
        comparison = reproduce.rescore_snapshot(
            common.open_store(args, create=False), args.snapshot
        )
        title = f"Snapshot {args.snapshot} re-scored from its recorded trials"
    bad = comparison[~comparison["match"]]
    if args.json:
        common.print_json(common.records(comparison))
    else:
        out.print(scores_table(comparison, title))
        common.say(
            out,
            f"{len(comparison) - len(bad)} of {len(comparison)} values within "
            f"{reproduce.SCORE_TOLERANCE:g}",
        )
    return common.Exit.MISMATCH if len(bad) else common.Exit.OK


def register(commands) -> None:
    help_text = (
        "Recompute recorded scores (a snapshot, or a CSV of times) or re-run stored trials "
        "from their records, and report what differs; exit 4 on a mismatch."
    )
    sub = commands.add_parser("reproduce", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_reproduce)
    sub.add_argument("--snapshot", type=int, help="a stored snapshot: re-score it (or --rerun)")
    sub.add_argument("--times", metavar="FILE.csv", help="a CSV of times to re-score")
    sub.add_argument(
        "--scores",
        metavar="FILE.csv",
        help="recorded scores for --times: ruleset, submission, score (or published_score)",
    )
    sub.add_argument("--trials", metavar="IDS", help="comma-separated trial ids to re-run")
    sub.add_argument(
        "--rerun",
        action="store_true",
        help="re-run trials: every trial of --snapshot, or the benchmark trials of the filter",
    )
    sub.add_argument("--submission", help="filter for --rerun: this submission's name")
    sub.add_argument("--workload", help="filter for --rerun: this workload")
    sub.add_argument("--ruleset", help="filter for --rerun: this ruleset")
    common.add_executor(sub)
    common.add_json(sub)
    common.add_store(sub)
    common.add_data(sub)
