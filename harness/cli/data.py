"""``optarena data prepare``: prepare workloads' datasets ahead of time (offline; cached)."""

from __future__ import annotations

import argparse

from optarena.harness.cli import common


def cmd_data_prepare(args: argparse.Namespace) -> int:
    """Prepare the datasets of the named workloads (default: the offline ones)."""
    from optarena.workloads import catalog

    directory = common.data_dir(args)
    out = common.console()
    for name, sizes in catalog.prepare(args.workloads, directory, download=args.download):
        counts = ", ".join(f"{count} {split}" for split, count in sizes.items())
        common.say(out, f"{name}: {counts} in {directory}")
    return common.Exit.OK


def register(commands) -> None:
    data_parser = commands.add_parser("data", help="Manage prepared datasets.")
    actions = data_parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    sub = actions.add_parser(
        "prepare",
        help="Prepare workloads' datasets into the data directory (offline; cached afterwards).",
    )
    sub.set_defaults(handler=cmd_data_prepare)
    sub.add_argument(
        "workloads", nargs="*", metavar="WORKLOAD", help="default: every offline workload"
    )
    sub.add_argument(
        "--download",
        action="store_true",
        help="download TFDS catalog datasets (needs internet and optarena[real-data])",
    )
    common.add_data(sub)
