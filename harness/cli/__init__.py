"""The ``optarena`` command line: one module per command, each of which parses its arguments,
calls one library function and prints.

Every error a user can fix derives from `optarena.errors.UserError`; `main` prints it as one
line on stderr and exits with status 2, before anything is written. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from optarena.errors import UserError
from optarena.harness.cli import (
    benchmark,
    calibrate,
    check,
    common,
    data,
    leaderboard,
    nightly,
    quickstart,
    reproduce,
    run,
    score,
    submissions,
    trials,
    workloads,
)

COMMANDS = (
    workloads,
    submissions,
    check,
    run,
    trials,
    data,
    calibrate,
    quickstart,
    benchmark,
    score,
    leaderboard,
    nightly,
    reproduce,
)
"""The command modules, in the order ``optarena --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``optarena`` parser with every command's subparser."""
    from optarena.harness.provenance import version

    parser = argparse.ArgumentParser(
        prog="optarena", description="An AlgoPerf-style benchmark for training algorithms."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a `UserError` is one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UserError as error:
        message = " ".join(str(error).split())
        sys.stderr.write(f"optarena: error: {message}\n")
        return common.Exit.BAD_INPUT
