"""``optarena nightly``: benchmark every submission, score, compare with the previous night
(`optarena.harness.nightly`); exit 3 when a submission regressed."""

from __future__ import annotations

import argparse
import dataclasses

from optarena.harness.cli import common, progress


def cmd_nightly(args: argparse.Namespace) -> int:
    """One night: benchmark, score into a snapshot, compare, report; exit 3 on a regression."""
    from optarena.harness import nightly, nightly_config

    config = nightly_config.load(args.config)
    overrides = {"store": args.db, "output_dir": args.output_dir}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.normalize_timing:
        config = dataclasses.replace(config, normalize_timing=True)
    data_dir = common.data_dir(args)
    night = nightly.plan(config, data_dir)
    log = common.console(stderr=True)
    common.say(
        log,
        f"nightly: {len(night.campaigns)} benchmarks (submission x ruleset), "
        f"{night.total_trials} trials, {night.reused_trials} already stored; timing check: "
        f"{night.reference.name} x {len(night.timing)} trials",
    )
    for note in night.skipped:
        common.say(log, f"skipped {note}")

    def on_timing(done) -> None:
        result = done.result
        common.say(
            log,
            f"timing check: {done.trial.label}: {result.status.value}, time to target "
            f"{result.time_to_target_sec:.3f} s, steps to target {result.steps_to_target}",
        )

    pending = [trial for planned in night.campaigns for trial in planned.pending]
    bar = progress.CampaignProgress(
        log, pending, done_before=night.reused_trials, total=night.total_trials
    )
    try:
        with bar:
            result = nightly.run(
                night,
                nightly.executor_for(config, data_dir),
                on_timing=on_timing,
                on_start=bar.on_start,
                on_finished=bar.on_finished,
            )
    except KeyboardInterrupt:
        common.say(
            log,
            "interrupted: finished benchmark trials are stored; run the nightly again to resume",
        )
        return common.Exit.INTERRUPTED
    out = common.console()
    common.say(
        out,
        f"snapshot {result.snapshot_id}: {result.trials_run} trials run, {result.trials_reused} "
        f"reused; report {result.report_dir / 'report.md'}, page "
        f"{result.report_dir / 'index.html'}",
    )
    if result.regressed:
        regressed = ", ".join(
            f"{submission} ({ruleset})" for ruleset, submission in result.regressed
        )
        common.say(out, f"REGRESSION: {regressed}")
        return common.Exit.REGRESSION
    common.say(out, "no regression")
    return common.Exit.OK


def register(commands) -> None:
    help_text = (
        "Benchmark every registered submission (or the config's), score into a dated snapshot, "
        "compare with the previous night and write a report; exit 3 on a regression."
    )
    sub = commands.add_parser("nightly", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_nightly)
    sub.add_argument("--config", metavar="FILE.toml", help="settings (default: every default)")
    sub.add_argument("--output-dir", help="where reports go (overrides the config's output_dir)")
    sub.add_argument(
        "--normalize-timing",
        action="store_true",
        help="divide trial times by their night's machine speed before scoring",
    )
    common.add_store(sub)
    common.add_data(sub)
