"""``optarena leaderboard``: the latest score snapshot (or one by id) in the terminal, as JSON,
or as a static HTML page with plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from optarena.errors import UserError
from optarena.harness.cli import common, report


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Show the latest snapshot (or ``--snapshot ID``); ``--html DIR`` writes a static page."""
    from optarena.leaderboard.snapshots import eval_curves, load_snapshot

    store = common.open_store(args, create=False)
    snapshot = load_snapshot(store, args.snapshot, ruleset=args.ruleset)
    tables = (snapshot.scores, snapshot.workloads, snapshot.pairs, snapshot.stability)
    out = common.console()
    if args.json:
        common.print_json(
            report.payload(
                *tables,
                snapshot_id=snapshot.id,
                created_at=snapshot.created_at,
                inputs_sha256=snapshot.inputs_sha256,
                num_trials=len(snapshot.trials),
                store=store.url,
            )
        )
    else:
        common.say(
            out,
            f"snapshot {snapshot.id} of {snapshot.created_at:%Y-%m-%d %H:%M:%S} UTC "
            f"({len(snapshot.trials)} trials, inputs sha256 {snapshot.inputs_sha256[:12]})",
        )
        report.print_tables(out, *tables)
    if args.html:
        from optarena.leaderboard import html_page

        curves = eval_curves(store, snapshot.trials["trial_id"])
        try:
            page = html_page.write(Path(args.html), snapshot, curves)
        except OSError as error:
            raise UserError(f"cannot write {args.html}: {error}") from error
        common.say(common.console(stderr=args.json), f"wrote {page}")
    return common.Exit.OK


def register(commands) -> None:
    help_text = "Show the latest score snapshot: table, intervals, rank stability; or HTML."
    sub = commands.add_parser("leaderboard", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_leaderboard)
    sub.add_argument("--ruleset", help="only this ruleset (external, self or default)")
    sub.add_argument("--snapshot", type=int, help="snapshot id (default: the latest)")
    sub.add_argument(
        "--html", metavar="DIR", help="write a self-contained page DIR/index.html with plots"
    )
    common.add_json(sub)
    common.add_store(sub)
