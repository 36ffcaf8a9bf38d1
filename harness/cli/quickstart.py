"""``optarena quickstart``: the main job. Every built-in submission at its default point on a
suite's workloads over a few seeds, stored, summarized and scored into a snapshot, so that
``optarena leaderboard`` shows it (as default points, not as a ruleset's score)."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from rich.table import Table

from optarena.harness.cli import common, progress, report

if TYPE_CHECKING:
    import pandas as pd


def summary_table(frame: pd.DataFrame) -> Table:
    """Per submission and workload: how many seeds reached the target, median time to target."""
    table = Table(title="Summary (median over seeds; a missed target counts as infinite)")
    for column in (
        "submission",
        "workload",
        "reached",
        "median time to target s",
        "median steps to target",
    ):
        table.add_column(
            column, justify="left" if column in ("submission", "workload") else "right"
        )
    for (submission, workload), group in frame.groupby(["submission", "workload"], sort=True):
        table.add_row(
            submission,
            workload,
            f"{int((group['status'] == 'reached').sum())}/{len(group)}",
            common.format_time(float(group["time_to_target_sec"].median())),
            common.format_steps(float(group["steps_to_target"].fillna(math.inf).median())),
        )
    return table


def cmd_quickstart(args: argparse.Namespace) -> int:
    from optarena.harness import campaign
    from optarena.harness.executors import make_executor
    from optarena.harness.provenance import version
    from optarena.leaderboard.snapshots import score_store
    from optarena.leaderboard.store import Store
    from optarena.scoring.report import Settings

    common.isolate_in_process_trials(args)
    store = Store(args.db)
    data_dir = common.data_dir(args)
    campaigns = campaign.main_job(args.suite, store, data_dir, seeds=args.seeds, seed=args.seed)
    pending = [trial for planned in campaigns for trial in planned.pending]
    total = sum(len(planned.trials) for planned in campaigns)
    log = common.console(stderr=True)
    executor = make_executor(args.executor, data_dir)
    ids: list[int] = []
    bar = progress.CampaignProgress(log, pending, done_before=total - len(pending), total=total)
    with bar:
        for planned in campaigns:
            finished = campaign.run(
                planned, executor, store, on_start=bar.on_start, on_finished=bar.on_finished
            )
            ids += campaign.trial_ids(planned, finished)
    snapshot_id, scored = score_store(store, Settings(), version=version(), trial_ids=ids)
    trials = store.benchmark_trials()
    trials = trials[trials["trial_id"].isin(ids)]
    tables = (scored.scores, scored.workloads, scored.pairwise, scored.stability)
    if args.json:
        common.print_json(
            {
                **report.payload(*tables, snapshot_id=snapshot_id, store=store.url),
                "trials": common.records(trials),
            }
        )
        return _verdict(trials)
    out = common.console()
    out.print(summary_table(trials))
    report.print_tables(out, *tables)
    common.say(
        out,
        f"{len(ids)} trials in {store.url} ({total - len(pending)} of them stored before), "
        f"scored as snapshot {snapshot_id}: `optarena leaderboard` shows it, "
        "`optarena trials` lists the trials.",
    )
    return _verdict(trials)


def _verdict(trials: pd.DataFrame) -> int:
    """A built-in trial that did not run to an outcome (error, timeout, oom) means the
    installation or the machine is broken, not a training algorithm: exit 1, saying which."""
    from optarena.records import FAILED_STATUSES

    failed = trials[trials["status"].isin([status.value for status in FAILED_STATUSES])]
    if failed.empty:
        return common.Exit.OK
    first = failed.iloc[0]
    common.say(
        common.console(stderr=True),
        f"optarena: quickstart: {len(failed)} of {len(trials)} trials did not run to an outcome "
        f"({', '.join(sorted(set(failed['status'])))}); first: {first['submission']} on "
        f"{first['workload']}: see `optarena trial {first['trial_id']}`",
    )
    return common.Exit.FAILED


def register(commands) -> None:
    help_text = (
        "The main job: every built-in submission at its default point on a suite's workloads "
        "over a few seeds, stored and scored (seeds as studies) into a snapshot."
    )
    sub = commands.add_parser("quickstart", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_quickstart)
    sub.add_argument("--seed", type=int, default=0, help="first trial seed (default 0)")
    sub.add_argument(
        "--seeds", type=common.count(100), default=3, help="seeds per pair (default 3)"
    )
    sub.add_argument("--suite", default="quick", help="workload suite (default: quick)")
    common.add_executor(sub)
    common.add_json(sub)
    common.add_store(sub)
    common.add_data(sub)
