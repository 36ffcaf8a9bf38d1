"""What every command needs: exit statuses, consoles, JSON output, argument types and options,
the store and the data directory."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    import pandas as pd

    from optarena.leaderboard.store import Store


class Exit(IntEnum):
    """The command line's exit statuses."""

    OK = 0
    FAILED = 1
    """A check failed (``optarena check``)."""
    BAD_INPUT = 2
    """Input that cannot be acted on; one line on stderr says why."""
    REGRESSION = 3
    """The nightly job found a regression."""
    MISMATCH = 4
    """A reproduction did not match what was recorded."""
    INTERRUPTED = 130
    """Stopped by SIGINT (the shell's status); finished trials are stored."""


def console(*, stderr: bool = False) -> Console:
    """A rich console; wide when not a terminal so that logs keep whole table rows.

    Markup is off: the strings it prints come from stores, files and submissions (a
    submission named ``x[/]`` would otherwise break the table it is in), so styled text is
    built with `styled`, never by writing markup into a string."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(
        highlight=False, markup=False, stderr=stderr, width=None if stream.isatty() else 140
    )


def styled(text: str, style: str) -> Text:
    """``text`` (any string, printed as it is) in ``style``."""
    return Text(str(text), style=style)


def say(out: Console, text: str) -> None:
    """Print plain text (no markup, no highlighting, never wrapped mid-line)."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def finite_json(value: Any) -> Any:
    """Infinity and NaN are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return finite_json(value.item())
    return value


def print_json(payload: Any) -> None:
    """``payload`` as indented JSON on stdout (non-finite numbers as null, dates as ISO 8601)."""

    def default(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.isoformat()
        return str(value)

    sys.stdout.write(json.dumps(finite_json(payload), indent=2, default=default) + "\n")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts (missing values as null)."""
    return finite_json(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))


def format_time(seconds: float) -> str:
    return "-" if not math.isfinite(seconds) else f"{seconds:.2f}"


def format_steps(steps: float | None) -> str:
    return "-" if steps is None or not math.isfinite(steps) else f"{steps:.0f}"


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


MAX_COUNT = 10**9
"""The largest count any option takes: a typo of a few digits is refused, not planned."""


def positive_int(text: str, *, limit: int = MAX_COUNT) -> int:
    """A positive integer of at most ``limit``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    if value > limit:
        raise argparse.ArgumentTypeError(f"must be at most {limit}, got {text!r}")
    return value


def count(limit: int) -> Callable[[str], int]:
    """An argparse type: a positive integer of at most ``limit`` (studies, trials, seeds)."""

    def parse(text: str) -> int:
        return positive_int(text, limit=limit)

    parse.__name__ = "count"
    return parse


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a confidence level)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names."""
    found = tuple(part.strip() for part in text.split(",") if part.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return found


def add_store(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--db", help="SQLAlchemy URL of the store (default: $OPTARENA_DB or sqlite:///optarena.db)"
    )


def add_data(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--data-dir",
        help="TFDS data directory (default: $OPTARENA_DATA_DIR "
        "or ~/.cache/optarena/tensorflow_datasets)",
    )


def add_json(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--json", action="store_true", help="print JSON on stdout (inf and NaN as null)"
    )


def add_executor(sub: argparse.ArgumentParser, *, default: str = "child-process") -> None:
    from optarena.harness.executors import ExecutorKind

    sub.add_argument(
        "--executor",
        choices=[kind.value for kind in ExecutorKind],
        default=default,
        help=f"child-process (contains crashes and hangs), in-process (debugging), ray (a Ray "
        f"cluster) or slurm (a SLURM job per trial); default {default}",
    )


def isolate_in_process_trials(args: argparse.Namespace) -> None:
    """Trials that run in this process get what a child process gets: one core and the same
    XLA flags (`optarena.harness.isolation`). Call before anything touches JAX."""
    from optarena.harness import isolation

    if getattr(args, "executor", "in-process") == "in-process":
        isolation.isolate()


def data_dir(args: argparse.Namespace) -> str:
    from optarena.workloads.data import default_data_dir

    return args.data_dir or default_data_dir()


def open_store(args: argparse.Namespace, *, create: bool = True) -> Store:
    """The store of ``--db``; with ``create=False`` it must exist already (for reading)."""
    from optarena.leaderboard.store import Store

    return Store(args.db, create=create)
