"""``optarena calibrate``: derive a workload's targets and budget, or verify its record."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat in {text!r}")
    return seeds


def add_parser(commands, add_data, positive_int) -> None:
    """Register ``calibrate`` on the CLI's subcommands."""
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
    sub.add_argument("--seeds", type=_seeds, default=(0, 1, 2), help="seeds (default 0,1,2)")
    sub.add_argument("--tuning-seed", type=int, default=0, help="seed of the tuning runs (0)")
    sub.add_argument(
        "--finalists",
        type=positive_int,
        default=3,
        help="best tuning points rerun on every seed (default 3)",
    )
    sub.add_argument(
        "--steps",
        type=positive_int,
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
    add_data(sub)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from optarena.harness import calibration, runner
    from optarena.harness.cli import EXIT_OK, BadInput, _data_dir
    from optarena.submissions import loader
    from optarena.workloads import registry

    try:
        workload = registry.get(args.workload)
        loaded = loader.load(args.submission)
    except (registry.UnknownWorkloadError, loader.SubmissionError) as error:
        raise BadInput(str(error)) from error
    spec = workload.spec
    if not spec.offline:
        raise BadInput(f"{spec.name} needs downloaded data; calibrate it where the data is")
    console = Console(stderr=True)
    data_dir = _data_dir(args)
    run = calibration.trial_runner(workload, loaded.submission, data_dir)
    if args.verify:
        return _verify(spec, workload, loaded.submission, data_dir, console)
    submission = loaded.submission
    if submission.default_hparams is None or "learning_rate" not in submission.default_hparams:
        raise BadInput(f"{loaded.name} has no default point with a learning_rate to calibrate")
    try:
        plan = calibration.CalibrationPlan(
            workload=spec.name,
            submission=loaded.name,
            points=args.points,
            tuning_seed=args.tuning_seed,
            seeds=args.seeds,
            steps=args.steps,
            finalists=args.finalists,
        )
    except ValueError as error:
        raise BadInput(str(error)) from error
    base_spec = registry.get(spec.base).spec if spec.base else None
    with console.status(f"calibrating {spec.name}") as status:
        try:
            record = calibration.calibrate(
                plan,
                spec,
                base_spec,
                submission.default_hparams,
                submission.search_space,
                run,
                on_progress=lambda text: status.update(f"calibrating {spec.name}: {text}"),
            )
        except (calibration.CalibrationError, runner.SubmissionFailure) as error:
            raise BadInput(str(error)) from error
    command = (
        f"optarena calibrate {spec.name} --submission {loaded.name} --points {plan.points} "
        f"--seeds {','.join(map(str, plan.seeds))} --tuning-seed {plan.tuning_seed} "
        f"--finalists {plan.finalists} "
        f"--steps {record['plan']['steps']} --write"
    )
    record = calibration.stamp(record, command)
    _print_record(record, Console())
    if args.write:
        path = calibration.write_record(record)
        Console().print(f"record written to {path}")
    mismatches = calibration.spec_mismatches(spec, record)
    if mismatches:
        Console().print("the spec differs from this calibration: " + "; ".join(mismatches))
    return EXIT_OK


def _print_record(record, console: Console) -> None:
    derived = record["derived"]
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
    console.print(table)
    console.print(
        f"validation target {derived['validation_target']:g}, test target "
        f"{derived['test_target']:g}, budget {derived['budget_sec']:g} s, step_hint "
        f"{derived['step_hint']}; chosen {record['chosen_hparams']}; random points reaching "
        f"the target {record['checks']['random_points_reaching_target']}; learning rate / 100 "
        f"best {record['checks']['bad_setting']['best_validation']:.6g}"
    )


def _verify(spec, workload, submission, data_dir: str, console: Console) -> int:
    """Re-run a committed record: every seed reaches the target in budget, lr / 100 does not."""
    from optarena.harness import calibration, runner
    from optarena.harness.cli import EXIT_OK, BadInput

    record = calibration.load_record(spec.name)
    if record is None:
        raise BadInput(f"{spec.name} has no calibration record; run optarena calibrate --write")
    problems = calibration.spec_mismatches(spec, record)
    rows = []
    settings = [(run["seed"], record["chosen_hparams"], True) for run in record["seed_runs"]]
    bad = record["checks"]["bad_setting"]
    settings.append((record["plan"]["seeds"][0], bad["hparams"], False))
    for seed, hparams, should_reach in settings:
        config = runner.TrialConfig(
            seed=seed,
            hparams=hparams,
            budget_sec=spec.budget_sec,
            max_steps=None if should_reach else spec.step_hint,
        )
        with console.status(f"verifying {spec.name}, seed {seed}"):
            result = runner.run_trial(workload, submission, config, data_dir=data_dir)
        rows.append((seed, should_reach, result))
        if result.reached != should_reach:
            problems.append(
                f"seed {seed} {'missed' if should_reach else 'reached'} the target "
                f"({result.reason})"
            )
        if should_reach and result.reached:
            recorded = next(r for r in record["seed_runs"] if r["seed"] == seed)
            if result.steps_to_target != recorded["steps_to_target"]:
                problems.append(
                    f"seed {seed} took {result.steps_to_target} steps, the record says "
                    f"{recorded['steps_to_target']}"
                )
    table = Table(title=f"Verification of {spec.name} (budget {spec.budget_sec:g} s)")
    for column in ("seed", "setting", "status", "steps to target", "time to target s", "of budget"):
        table.add_column(column, justify="right")
    for seed, should_reach, result in rows:
        table.add_row(
            str(seed),
            "chosen" if should_reach else "lr / 100",
            result.status.value,
            str(result.steps_to_target),
            f"{result.time_to_target_sec:.2f}",
            f"{result.time_to_target_sec / spec.budget_sec:.2f}" if result.reached else "-",
        )
    Console().print(table)
    if problems:
        raise BadInput(f"{spec.name} does not reproduce its record: " + "; ".join(problems))
    Console().print(f"{spec.name}: the calibration record reproduces")
    return EXIT_OK
