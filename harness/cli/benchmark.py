"""``optarena benchmark``: run every trial of a suite under a ruleset, resumably.

The campaign (`optarena.harness.campaign`) plans every (workload, study, trial), skips the ones
the store already holds and stores each other one as soon as it finishes: killing the command
loses at most the trial in flight, and running it again picks up where it stopped.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import TYPE_CHECKING

from rich.table import Table

from optarena.errors import UserError
from optarena.harness import benchmark
from optarena.harness.cli import common, progress

if TYPE_CHECKING:
    from optarena.harness.campaign import Campaign
    from optarena.leaderboard.store import Store


def summary(campaign: Campaign, store: Store, trial_ids: list[int]) -> Table:
    """Per workload: planned trials and how the stored ones ended."""
    frame = store.benchmark_trials(campaign.config.ruleset.value)
    frame = frame[frame["trial_id"].isin(trial_ids)]
    table = Table(
        title=f"Benchmark of {campaign.submission.name} ({campaign.config.ruleset.value})"
    )
    for column in ("workload", "base", "trials", "statuses"):
        table.add_column(column)
    planned = Counter(trial.workload for trial in campaign.trials)
    for workload, count in planned.items():
        rows = frame[frame["workload"] == workload]
        statuses = Counter(rows["status"])
        table.add_row(
            workload,
            rows["base_workload"].iloc[0] if len(rows) else "-",
            f"{len(rows)}/{count}",
            ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())),
        )
    return table


def held_out_variants(text: str) -> int:
    """``--held-out-variants``: checked here rather than by argparse, so that a bad value is
    one line (`benchmark.PlanError`) like every other refused benchmark."""
    try:
        value = int(text)
    except ValueError:
        value = text
    return benchmark.check_held_out_variants(value)


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Plan, skip what is stored, run the rest one at a time, store each trial as it ends."""
    from optarena.harness import campaign
    from optarena.harness.benchmark import BenchmarkConfig
    from optarena.harness.executors import WallClockLimit, make_executor
    from optarena.leaderboard.store import Store

    common.isolate_in_process_trials(args)
    config = BenchmarkConfig.for_ruleset(
        args.ruleset,
        studies=args.studies,
        trials=args.trials,
        seed=args.seed,
        budget_factor=args.budget_factor,
        max_steps=args.max_steps,
        held_out_variants=held_out_variants(args.held_out_variants),
    )
    store = Store(args.db)
    data_dir = common.data_dir(args)
    if args.ray_address is not None and args.executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    if (args.slurm_partition, args.slurm_gpus_per_trial) != (None, None) and (
        args.executor != "slurm"
    ):
        raise UserError("--slurm-partition and --slurm-gpus-per-trial need --executor slurm")
    executor = make_executor(
        args.executor,
        data_dir,
        WallClockLimit(margin=args.timeout_margin, setup_sec=args.setup),
        ray_address=args.ray_address,
        slurm_partition=args.slurm_partition,
        slurm_gpus_per_trial=args.slurm_gpus_per_trial or 0,
    )
    planned = campaign.prepare(
        args.submission, args.suite, config, store, data_dir, workloads=args.workloads
    )
    pending = planned.pending
    log = common.console(stderr=True)
    drawn = ", ".join(
        f"{base} -> {' + '.join(variants)}" for base, variants in planned.variants.items()
    )
    common.say(
        log,
        f"{planned.submission.name}, {config.ruleset.value} ruleset, suite {args.suite}: "
        f"{len(planned.workloads)} workloads x {config.studies} studies x {config.trials} "
        f"trials = {len(planned.trials)} trials; {len(planned.stored)} already stored, "
        f"{len(pending)} to run. Held-out variants per base: {config.held_out_variants}"
        + (f", drawn with seed {config.seed}: {drawn}" if drawn else ""),
    )
    started = time.monotonic()
    bar = progress.CampaignProgress(
        log, pending, done_before=len(planned.stored), total=len(planned.trials)
    )
    try:
        with bar:
            finished = campaign.run(
                planned, executor, store, on_start=bar.on_start, on_finished=bar.on_finished
            )
    except KeyboardInterrupt:
        common.say(
            log,
            "interrupted: the trial in flight is lost, finished ones are stored; "
            "run the same command again to resume",
        )
        return common.Exit.INTERRUPTED
    ids = campaign.trial_ids(planned, finished)
    missed = sum(1 for done, _ in finished if not done.result.reached)
    elapsed = common.format_duration(time.monotonic() - started)
    if args.json:
        frame = store.benchmark_trials(config.ruleset.value)
        common.print_json(common.records(frame[frame["trial_id"].isin(ids)]))
        return common.Exit.OK
    out = common.console()
    if ids:
        out.print(summary(planned, store, ids))
    common.say(
        out,
        f"{len(finished)} trials run ({missed} without reaching the target) in {elapsed}, "
        f"{len(planned.stored)} skipped as already stored; in {store.url}",
    )
    return common.Exit.OK


def register(commands) -> None:
    help_text = (
        "Run a submission on every workload of a suite under a ruleset (studies x trials), "
        "storing each trial; rerun to resume."
    )
    sub = commands.add_parser("benchmark", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_benchmark)
    sub.add_argument(
        "--submission",
        required=True,
        help="built-in or group entry name (e.g. v05_baseline), .py path, or plugin name",
    )
    sub.add_argument(
        "--ruleset",
        required=True,
        help="external or self (or default: the submission's default point, seeds as studies)",
    )
    sub.add_argument("--suite", required=True, help="workload suite, e.g. quick or cpu")
    sub.add_argument(
        "--workloads",
        type=common.names,
        default=(),
        help="comma-separated base workloads of the suite to run (default: all of them)",
    )
    sub.add_argument(
        "--held-out-variants",
        default="0",
        metavar="N",
        help="held-out variants per base workload drawn, run and scored: 0 (the default) as "
        "AlgoPerf v0.6, 1 as v0.5 (a base counts only if its variant reaches its target too)",
    )
    sub.add_argument(
        "--studies",
        type=common.count(benchmark.MAX_STUDIES),
        help="studies per workload (default 3)",
    )
    sub.add_argument(
        "--trials",
        type=common.count(benchmark.MAX_TRIALS),
        help="trials per study (default: 5 under external tuning, 1 under self-tuning)",
    )
    sub.add_argument(
        "--seed",
        type=int,
        default=0,
        help="benchmark seed: held-out draw, study points and trial seeds (default 0)",
    )
    sub.add_argument(
        "--budget-factor",
        type=common.positive_float,
        help="factor on workload budgets (default: 1 under external tuning, 1.5 under self)",
    )
    sub.add_argument(
        "--max-steps", type=common.positive_int, help="cap every trial at this many steps"
    )
    sub.add_argument(
        "--timeout-margin",
        type=common.positive_float,
        default=2.0,
        help="a trial is killed after budget x this + the setup allowance (default 2)",
    )
    sub.add_argument(
        "--setup-allowance",
        dest="setup",
        type=common.positive_float,
        default=60.0,
        help="wall-clock seconds allowed for a trial's setup, and for tracing its submission "
        "(default 60)",
    )
    common.add_executor(sub)
    sub.add_argument(
        "--ray-address",
        help="with --executor ray: the Ray cluster's HEAD:PORT (default: $RAY_ADDRESS, or a "
        "cluster started on this machine, or a local one-slot cluster)",
    )
    sub.add_argument(
        "--slurm-partition",
        help="with --executor slurm: the partition each trial's job is submitted to (default: "
        "the cluster's default partition)",
    )
    sub.add_argument(
        "--slurm-gpus-per-trial",
        type=common.positive_int,
        help="with --executor slurm: GPUs each trial's job asks for (default none)",
    )
    common.add_json(sub)
    common.add_store(sub)
    common.add_data(sub)
