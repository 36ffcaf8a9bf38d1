"""``optarena calibrate``: derive a workload's targets and budget, or verify its record."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from optarena.errors import UserError
from optarena.harness.cli import common


def seeds(text: str) -> tuple[int, ...]:
    """``--seeds``: distinct comma-separated integers."""
    try:
        found = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if len(set(found)) != len(found):
        raise argparse.ArgumentTypeError(f"seeds repeat in {text!r}")
    return found


def record_table(record: dict[str, Any]) -> Table:
    table = Table(title=f"Calibration of {record['workload']}")
    for column in ("seed", "best validation", "steps to target", "quiet time to target s"):
        table.add_column(column, justify="right")
    for run in record["seed_runs"]:
        table.add_row(
            str(run["seed"]),
            f"{run['best_validation']:.6g}",
            str(run["steps_to_target"]),
            f"{run['quiet_time_to_target_sec']:.2f}",
        )
    return table


def record_line(record: dict[str, Any]) -> str:
    derived, checks = record["derived"], record["checks"]
    return (
        f"validation target {derived['validation_target']:g}, test target "
        f"{derived['test_target']:g}, budget {derived['budget_sec']:g} s, step_hint "
        f"{derived['step_hint']}; chosen {record['chosen_hparams']}; random points reaching "
        f"the target {checks['random_points_reaching_target']}; learning rate / 100 "
        f"best {checks['bad_setting']['best_validation']:.6g}"
    )


def verification_table(spec, runs) -> Table:
    table = Table(title=f"Verification of {spec.name} (budget {spec.budget_sec:g} s)")
    for column in ("seed", "setting", "status", "steps to target", "time to target s", "of budget"):
        table.add_column(column, justify="right")
    for run in runs:
        result = run.result
        table.add_row(
            str(run.seed),
            "chosen" if run.chosen else "lr / 100",
            result.status.value,
            str(result.steps_to_target),
            f"{result.time_to_target_sec:.2f}",
            f"{result.time_to_target_sec / spec.budget_sec:.2f}" if result.reached else "-",
        )
    return table


def cmd_calibrate(args: argparse.Namespace) -> int:
    from optarena.harness import calibration
    from optarena.submissions import loader
    from optarena.workloads import registry

    common.isolate_in_process_trials(args)
    workload = registry.get(args.workload)
    loaded = loader.load(args.submission)
    spec = workload.spec
    if not spec.offline:
        raise UserError(f"{spec.name} needs downloaded data; calibrate it where the data is")
    log = common.console(stderr=True)
    out = common.console()
    data_dir = common.data_dir(args)
    if args.verify:
        with log.status(f"verifying {spec.name}") as status:
            runs, problems = calibration.verify(
                workload, loaded.submission, data_dir, on_progress=status.update
            )
        out.print(verification_table(spec, runs))
        if problems:
            raise calibration.CalibrationError(
                f"{spec.name} does not reproduce its record: " + "; ".join(problems)
            )
        common.say(out, f"{spec.name}: the calibration record reproduces")
        return common.Exit.OK
    submission = loaded.submission
    if submission.default_hparams is None or "learning_rate" not in submission.default_hparams:
        raise UserError(f"{loaded.name} has no default point with a learning_rate to calibrate")
    plan = calibration.CalibrationPlan(
        workload=spec.name,
        submission=loaded.name,
        points=args.points,
        tuning_seed=args.tuning_seed,
        seeds=args.seeds,
        steps=args.steps,
        finalists=args.finalists,
    )
    base_spec = registry.get(spec.base).spec if spec.base else None
    run = calibration.trial_runner(workload, submission, data_dir)
    with log.status(f"calibrating {spec.name}") as status:
        record = calibration.calibrate(
            plan,
            spec,
            base_spec,
            submission.default_hparams,
            submission.search_space,
            run,
            calibration.split_sizes(workload, data_dir),
            on_progress=lambda text: status.update(f"calibrating {spec.name}: {text}"),
        )
    record = calibration.stamp(record, plan.command(record["plan"]["steps"]))
    written = calibration.write_record(record) if args.write else None
    if args.json:
        common.print_json(record)
    else:
        out.print(record_table(record))
        common.say(out, record_line(record))
    if written is not None:
        common.say(log, f"record written to {written}")
    mismatches = calibration.spec_mismatches(spec, record)
    if mismatches:
        common.say(log, "the spec differs from this calibration: " + "; ".join(mismatches))
    return common.Exit.OK


def register(commands) -> None:
    sub = commands.add_parser(
        "calibrate",
        help="Derive a workload's targets, budget and step_hint from baseline runs.",
        description="Tune the baseline, rerun the winner over seeds and derive the validation "
        "and test targets, the budget and step_hint by the rule in harness/calibration.py; "
        "--write saves the record next to the workload's spec, --verify re-checks a "
        "committed record.",
    )
    sub.set_defaults(handler=cmd_calibrate)
    sub.add_argument("workload", help="registered workload name")
    sub.add_argument("--submission", default="nadamw", help="baseline to tune (default nadamw)")
    sub.add_argument(
        "--points", type=int, default=8, help="quasi-random points besides the default (8)"
    )
    sub.add_argument("--seeds", type=seeds, default=(0, 1, 2), help="seeds (default 0,1,2)")
    sub.add_argument("--tuning-seed", type=int, default=0, help="seed of the tuning runs (0)")
    sub.add_argument(
        "--finalists",
        type=common.count(100),
        default=3,
        help="best tuning points rerun on every seed (default 3)",
    )
    sub.add_argument(
        "--steps",
        type=common.positive_int,
        help="training steps per run, the future step_hint (default: the spec's step_hint; "
        "a held-out variant always uses its base's)",
    )
    mode = sub.add_mutually_exclusive_group()
    mode.add_argument(
        "--write", action="store_true", help="save the record in workloads/calibration/"
    )
    mode.add_argument(
        "--verify", action="store_true", help="re-run and check the committed record instead"
    )
    common.add_json(sub)
    common.add_data(sub)
