"""``optarena submissions``: built-in and installed submissions, their rulesets and hashes;
``--group NAME`` lists a group's submissions instead (e.g. ``algoperf-v05``).

Each is loaded in a sandboxed process (`optarena.harness.describing`); one that fails to load
is listed with its error, not fatal to the listing.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from rich.table import Table

from optarena.harness.cli import common


def listing(group: str | None = None) -> list[dict[str, Any]]:
    """One row per registered submission (built-in and installed, or ``group``'s): what it is,
    or why it failed to load."""
    from optarena.harness import describing
    from optarena.submissions import loader

    if group is not None:
        names = loader.group_members(group)
    else:
        names = loader.builtin_names() + sorted(loader.entry_points())
    rows: list[dict[str, Any]] = []
    for name in names:
        try:
            loaded = describing.describe(name)
        except loader.SubmissionError as error:
            rows.append({"name": name, "origin": "?", "error": str(error)})
            continue
        rows.append(
            {
                "name": loaded.name,
                "origin": loaded.origin,
                "source_sha256": loaded.source_sha256,
                "external_tuning": loaded.search_space is not None,
                "self_tuning": loaded.self_tuning,
                "search_space": loaded.search_space,
                "default_hparams": loaded.default_hparams,
            }
        )
    if group is None:
        for name, why in sorted(loader.plugin_clashes().items()):
            rows.append({"name": name, "origin": "?", "error": why})
    return rows


def _space(space: Any) -> str:
    if space is None:
        return "-"
    return ", ".join(space) if isinstance(space, Mapping) else f"{len(space)} points"


def cmd_submissions(args: argparse.Namespace) -> int:
    rows = listing(args.group)
    if args.json:
        common.print_json(rows)
        return common.Exit.OK
    table = Table(title=f"Submissions: {args.group}" if args.group else "Submissions")
    for column in ("name", "origin", "source sha256", "rulesets", "search space"):
        table.add_column(column)
    for row in rows:
        if "error" in row:
            failure = common.styled(f"failed to load: {row['error']}", "red")
            table.add_row(row["name"], row["origin"], "-", "-", failure)
            continue
        rulesets = [("external", row["external_tuning"]), ("self-tuning", row["self_tuning"])]
        table.add_row(
            row["name"],
            row["origin"],
            row["source_sha256"][:12],
            ", ".join(name for name, allowed in rulesets if allowed) or "-",
            _space(row["search_space"]),
        )
    common.console().print(table)
    return common.Exit.OK


def register(commands) -> None:
    from optarena.submissions import loader

    sub = commands.add_parser("submissions", help="List built-in and installed submissions.")
    sub.add_argument(
        "--group",
        choices=loader.group_names(),
        help="list this group's submissions instead (loadable by name everywhere)",
    )
    sub.set_defaults(handler=cmd_submissions)
    common.add_json(sub)
