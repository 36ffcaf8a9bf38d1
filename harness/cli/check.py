"""``optarena check``: the conformance checklist a submitter runs before submitting."""

from __future__ import annotations

import argparse
import sys

from optarena.harness.cli import common


def cmd_check(args: argparse.Namespace) -> int:
    """Print the checklist on stdout; exit 0 when every check passes, else 1, with the first
    failure repeated as one line on stderr. The checks run in a sandboxed process, so that a
    submission that exits, crashes or hangs fails them instead of ending this one."""
    from optarena.harness import check

    results = check.check_in_sandbox(
        args.submission, data_dir=common.data_dir(args), limit_sec=args.timeout
    )
    if args.json:
        common.print_json([vars(result) for result in results])
    else:
        for result in results:
            sys.stdout.write(check.format_line(result) + "\n")
    failed = [result for result in results if not result.passed]
    if failed:
        sys.stderr.write(
            f"optarena: check: {len(failed)} check(s) failed for {args.submission}; "
            f"first: {failed[0].name}: {failed[0].message}\n"
        )
        return common.Exit.FAILED
    if not args.json:
        sys.stdout.write(f"{args.submission}: all {len(results)} checks passed\n")
    return common.Exit.OK


def register(commands) -> None:
    help_text = (
        "Check that a submission conforms (loads, builds on every workload, pure, no "
        "recompilation, finite updates, valid search space) before submitting it."
    )
    sub = commands.add_parser("check", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_check)
    sub.add_argument(
        "submission", metavar="SUBMISSION", help="built-in name, .py path or installed plugin"
    )
    sub.add_argument(
        "--timeout",
        type=common.positive_float,
        default=600.0,
        help="seconds the whole checklist may take; a submission that hangs past it fails "
        "(default 600)",
    )
    common.add_json(sub)
    common.add_data(sub)
