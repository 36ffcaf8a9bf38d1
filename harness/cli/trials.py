"""``optarena trials`` and ``optarena trial ID``: what the store holds, as a list or in full."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import TYPE_CHECKING

from rich.table import Table

from optarena.harness.cli import common

if TYPE_CHECKING:
    import pandas as pd

LEFT = ("submission", "workload", "status")


def trials_table(frame: pd.DataFrame, title: str) -> Table:
    """One row per stored trial: outcome, time and steps to target, timed and compile seconds."""
    table = Table(title=title)
    for column in (
        "id",
        "submission",
        "workload",
        "seed",
        "status",
        "time to target s",
        "steps to target",
        "timed s",
        "compile s",
        "steps",
    ):
        table.add_column(column, justify="left" if column in LEFT else "right")
    for row in frame.itertuples():
        steps = None if row.steps_to_target is None else float(row.steps_to_target)
        table.add_row(
            str(row.id),
            row.submission,
            row.workload,
            str(row.seed),
            row.status if row.status == "reached" else common.styled(row.status, "yellow"),
            common.format_time(row.time_to_target_sec),
            common.format_steps(steps),
            f"{row.timed_sec:.2f}",
            f"{row.compile_sec:.2f}",
            str(row.num_steps),
        )
    return table


def cmd_trials(args: argparse.Namespace) -> int:
    store = common.open_store(args, create=False)
    frame = store.trials(workload=args.workload, submission=args.submission)
    if args.json:
        common.print_json(common.records(frame))
        return common.Exit.OK
    common.console().print(trials_table(frame, f"Trials in {store.url}"))
    return common.Exit.OK


def cmd_trial(args: argparse.Namespace) -> int:
    """One stored trial in full: outcome, hyperparameters, provenance and its evaluation curve."""
    store = common.open_store(args, create=False)
    trial = store.trial(args.id)
    points = store.eval_points(args.id)
    if args.json:
        common.print_json({**trial, "eval_points": [dataclasses.asdict(p) for p in points]})
        return common.Exit.OK
    out = common.console()
    details = Table(title=f"Trial {args.id}", show_header=False)
    details.add_column("field")
    details.add_column("value")
    for key, value in trial.items():
        if key != "spec":
            shown = json.dumps(value, default=str) if isinstance(value, dict) else str(value)
            details.add_row(key, shown)
    out.print(details)
    spec = trial["spec"]
    metric = spec["metric"]
    curve = Table(
        title=f"Evaluations (target: validation {metric} {spec['mode']} "
        f"{spec['validation_target']:g})"
    )
    for column in ("step", "timed s", "train loss", f"validation {metric}", f"test {metric}"):
        curve.add_column(column, justify="right")
    for p in points:
        curve.add_row(
            str(p.step),
            f"{p.timed_sec:.3f}",
            f"{p.train_loss:.4g}",
            f"{p.validation.get(metric, math.nan):.4g}",
            f"{p.test.get(metric, math.nan):.4g}",
        )
    out.print(curve)
    return common.Exit.OK


def register(commands) -> None:
    sub = commands.add_parser("trials", help="List stored trials.")
    sub.set_defaults(handler=cmd_trials)
    sub.add_argument("--workload", help="only this workload")
    sub.add_argument("--submission", help="only this submission")
    common.add_json(sub)
    common.add_store(sub)

    sub = commands.add_parser(
        "trial", help="Show one stored trial: provenance and evaluation curve."
    )
    sub.set_defaults(handler=cmd_trial)
    sub.add_argument("id", type=int, help="trial id (see `optarena trials`)")
    common.add_json(sub)
    common.add_store(sub)
