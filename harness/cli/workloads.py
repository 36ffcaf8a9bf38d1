"""``optarena workloads``: the registered workloads, their targets and budgets."""

from __future__ import annotations

import argparse

from rich.table import Table

from optarena.harness.cli import common

COLUMNS = (
    "name",
    "base",
    "family",
    "dataset",
    "metric",
    "val target",
    "test target",
    "budget s",
    "step hint",
    "batch",
    "calibrated",
)


def cmd_workloads(args: argparse.Namespace) -> int:
    from optarena.workloads import registry

    specs = [registry.get(name).spec for name in registry.names()]
    if args.json:
        common.print_json([spec.to_dict() for spec in specs])
        return common.Exit.OK
    table = Table(title="Workloads")
    for column in COLUMNS:
        table.add_column(column)
    for spec in specs:
        table.add_row(
            spec.name,
            spec.base or "-",
            spec.family,
            spec.dataset,
            f"{spec.metric} ({spec.mode.value})",
            f"{spec.validation_target:g}",
            f"{spec.test_target:g}",
            f"{spec.budget_sec:g}",
            str(spec.step_hint),
            str(spec.batch_size),
            "yes" if spec.calibrated else common.styled("no", "yellow"),
        )
    common.console().print(table)
    return common.Exit.OK


def register(commands) -> None:
    sub = commands.add_parser("workloads", help="List the registered workloads.")
    sub.set_defaults(handler=cmd_workloads)
    common.add_json(sub)
