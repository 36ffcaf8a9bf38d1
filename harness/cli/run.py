"""``optarena run``: one timed trial, checked, run here with a live bar, and stored."""

from __future__ import annotations

import argparse
import json
from typing import Any

from optarena.errors import UserError
from optarena.harness.cli import common, progress


def parse_hparams(text: str | None) -> dict[str, Any] | None:
    """``--hparams``: a JSON object, or nothing."""
    if text is None:
        return None

    def not_a_number(token: str) -> None:
        raise UserError(f"--hparams: {token} is not a finite number")

    try:
        value = json.loads(text, parse_constant=not_a_number)
    except json.JSONDecodeError as error:
        raise UserError(f"--hparams is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise UserError(f"--hparams must be a JSON object, got {type(value).__name__}")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    from optarena.harness import single
    from optarena.leaderboard.store import Store

    common.isolate_in_process_trials(args)
    prepared = single.prepare(
        args.workload,
        args.submission,
        hparams=parse_hparams(args.hparams),
        seed=args.seed,
        budget_sec=args.budget,
        max_steps=args.max_steps,
    )
    store = Store(args.db)
    store.check_writable()
    log = common.console(stderr=True)
    with progress.trial_bar(log, prepared.trial, enabled=not args.json) as on_eval:
        done = single.run(prepared, common.data_dir(args), on_eval=on_eval)
    trial_id = store.add(done)
    result = done.result
    if args.json:
        common.print_json({"trial_id": trial_id, **result.summary()})
        return common.Exit.OK
    common.say(
        common.console(),
        f"trial {trial_id}: {result.status.value} ({result.reason}); "
        f"time to target {common.format_time(result.time_to_target_sec)} s, "
        f"{result.num_steps} steps, compile {result.compile_sec:.2f} s; stored in {store.url}",
    )
    return common.Exit.OK


def register(commands) -> None:
    sub = commands.add_parser("run", help="Run one timed trial and store it.")
    sub.set_defaults(handler=cmd_run)
    sub.add_argument("--workload", required=True, help="registered workload name")
    sub.add_argument(
        "--submission",
        required=True,
        help="built-in or group entry name (e.g. v05_baseline), .py path, or installed plugin name",
    )
    sub.add_argument("--hparams", help="JSON object overriding the submission's default point")
    sub.add_argument("--seed", type=int, default=0, help="trial seed (default 0)")
    sub.add_argument(
        "--budget",
        type=common.positive_float,
        help="time budget in timed seconds (default: the workload's)",
    )
    sub.add_argument("--max-steps", type=common.positive_int, help="stop after this many steps")
    common.add_json(sub)
    common.add_store(sub)
    common.add_data(sub)
