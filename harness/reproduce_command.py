"""``optarena reproduce``: recompute recorded scores, re-run recorded trials, say what differs.

Scores: ``--snapshot ID`` re-scores a stored snapshot's recorded trial times with the
snapshot's own bootstrap settings; ``--times FILE`` scores a CSV of times (the ``optarena
score --times`` format) and, with ``--scores FILE``, compares with recorded scores. Each
submission's recorded and recomputed values must agree within ``SCORE_TOLERANCE``.

Trials: ``--trials IDS``, ``--snapshot ID --rerun`` or ``--rerun`` with a benchmark filter
re-run stored trials from their recorded seed, hyperparameters, budget and step cap. The
submission's source and the workload's spec must hash to what the trial recorded (else
nothing runs). Every evaluation (step, examples, training loss, validation and test metrics),
the status and the steps to target must match exactly: the same seed on the same CPU build
computes the same numbers. Wall-clock times are reported as ratios: they may move.

Exit status 0: everything matches; 4: something does not (or cannot be re-run as recorded);
2: bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

from optarena.harness.cli import EXIT_OK, BadInput, _console, _data_dir, _open_store

if TYPE_CHECKING:
    import pandas as pd

    from optarena.harness.benchmark import TrialSpec
    from optarena.harness.results import EvalPoint, TrialResult

EXIT_MISMATCH = 4
SCORE_TOLERANCE = 1e-4
SCORE_COLUMNS = ("score", "score_low", "score_high", "steps_score", "flops_score")


# ---------------------------------------------------------------- scores


def _agree(recorded: float, recomputed: float) -> bool:
    if math.isnan(recorded) and math.isnan(recomputed):
        return True
    return abs(recorded - recomputed) <= SCORE_TOLERANCE


def compare_scores(recorded: pd.DataFrame, recomputed: pd.DataFrame, columns) -> pd.DataFrame:
    """Per (ruleset, submission, column): recorded, recomputed, difference, match.

    A submission on one side only is a mismatch (NaN on the other side)."""
    import pandas as pd

    merged = recorded.merge(
        recomputed, on=["ruleset", "submission"], how="outer", suffixes=("_rec", "_new")
    )
    rows = []
    for row in merged.to_dict(orient="records"):
        for column in columns:
            old = float(row.get(f"{column}_rec", math.nan))
            new = float(row.get(f"{column}_new", math.nan))
            present = not (
                pd.isna(row.get(f"{columns[0]}_rec")) or pd.isna(row.get(f"{columns[0]}_new"))
            )
            rows.append(
                {
                    "ruleset": row["ruleset"],
                    "submission": row["submission"],
                    "value": column,
                    "recorded": old,
                    "recomputed": new,
                    "difference": new - old,
                    "match": present and _agree(old, new),
                }
            )
    return pd.DataFrame(rows)


def _read_recorded_scores(path: str) -> pd.DataFrame:
    """ruleset, submission, score from a CSV with a ``score`` or ``published_score`` column."""
    import pandas as pd

    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as error:
        raise BadInput(f"{path}: no such file") from error
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise BadInput(f"{path}: not a readable CSV file: {error}".splitlines()[0]) from error
    column = next((c for c in ("score", "published_score") if c in raw.columns), None)
    missing = [c for c in ("ruleset", "submission") if c not in raw.columns]
    if column is None or missing:
        raise BadInput(
            f"{path}: needs the columns ruleset, submission and score (or published_score)"
        )
    frame = raw[["ruleset", "submission"]].copy()
    try:
        frame["score"] = raw[column].astype(float)
    except ValueError as error:
        raise BadInput(f"{path}: {column} must be numbers: {error}") from error
    if frame.duplicated(["ruleset", "submission"]).any():
        raise BadInput(f"{path}: a (ruleset, submission) appears twice")
    return frame


def _scores_table(comparison: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    for column in (
        "ruleset",
        "submission",
        "value",
        "recorded",
        "recomputed",
        "difference",
        "match",
    ):
        table.add_column(
            column, justify="right" if column in ("recorded", "recomputed") else "left"
        )
    for row in comparison.itertuples(index=False):
        table.add_row(
            row.ruleset,
            row.submission,
            row.value,
            f"{row.recorded:.6f}",
            f"{row.recomputed:.6f}",
            f"{row.difference:+.2e}" if math.isfinite(row.difference) else "-",
            "yes" if row.match else "[red]NO",
        )
    return table


def _rescore_snapshot(store, snapshot_id: int) -> pd.DataFrame:
    from optarena.leaderboard.reproduction import snapshot_settings
    from optarena.leaderboard.snapshots import NoSnapshotError, load_snapshot
    from optarena.scoring.report import score_trials

    try:
        snapshot = load_snapshot(store, snapshot_id)
        settings = snapshot_settings(store, snapshot_id)
    except (NoSnapshotError, LookupError) as error:
        raise BadInput(str(error)) from error
    report = score_trials(snapshot.trials, settings)
    columns = ["ruleset", "submission", *SCORE_COLUMNS]
    return compare_scores(snapshot.scores[columns], report.scores[columns], list(SCORE_COLUMNS))


def _rescore_times(times_path: str, scores_path: str | None) -> pd.DataFrame | None:
    from optarena.harness.cli_score import read_times_file
    from optarena.scoring.report import score_times_table

    times = read_times_file(times_path)
    try:
        report = score_times_table(times)
    except ValueError as error:
        raise BadInput(f"{times_path}: {error}") from error
    recomputed = report.scores[["ruleset", "submission", "score"]]
    if scores_path is None:
        table = Table(title=f"Scores of {times_path} (no recorded scores given)")
        for column in ("ruleset", "submission", "score"):
            table.add_column(column)
        for row in recomputed.itertuples(index=False):
            table.add_row(row.ruleset, row.submission, f"{row.score:.6f}")
        _console().print(table)
        return None
    return compare_scores(_read_recorded_scores(scores_path), recomputed, ["score"])


# ---------------------------------------------------------------- trials


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialCheck:
    """One stored trial re-run: what matched and how far the clock moved."""

    trial_id: int
    label: str
    status: tuple[str, str]
    steps_to_target: tuple[int | None, int | None]
    evaluations: int
    first_difference: str | None
    """The first evaluation that differs (``None``: all match)."""
    time_ratio: float
    """Re-run time to target / stored (NaN when either missed)."""
    timed_ratio: float

    @property
    def matches(self) -> bool:
        return (
            self.status[0] == self.status[1]
            and self.steps_to_target[0] == self.steps_to_target[1]
            and self.first_difference is None
        )


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _same_metrics(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return set(a) == set(b) and all(_same(float(a[k]), float(b[k])) for k in a)


def first_difference(stored: Sequence[EvalPoint], rerun: Sequence[EvalPoint]) -> str | None:
    """Where two evaluation curves first differ (exactly), or None when identical."""
    for old, new in zip(stored, rerun, strict=False):
        for field in ("step", "examples"):
            if getattr(old, field) != getattr(new, field):
                before, after = getattr(old, field), getattr(new, field)
                return f"evaluation at step {old.step}: {field} {before} vs {after}"
        if not _same(float(old.train_loss), float(new.train_loss)):
            return f"step {old.step}: train loss {old.train_loss!r} vs {new.train_loss!r}"
        for split in ("validation", "test"):
            if not _same_metrics(getattr(old, split), getattr(new, split)):
                return (
                    f"step {old.step}: {split} {dict(getattr(old, split))} vs "
                    f"{dict(getattr(new, split))}"
                )
    if len(stored) != len(rerun):
        return f"{len(stored)} evaluations stored, {len(rerun)} re-run"
    return None


def _reference(trial: Mapping[str, Any]) -> str:
    """How to load the trial's submission again: its origin (a path or a built-in), or, for
    a plugin, its name."""
    origin = str(trial["submission_origin"])
    if origin.startswith("builtin:"):
        return origin.removeprefix("builtin:")
    if origin.startswith("entry_point:"):
        return str(trial["submission"])
    return origin


def _spec_for(trial_id: int, trial: Mapping[str, Any]) -> TrialSpec:
    """The trial as recorded, or BadInput-free mismatch text when it cannot be re-run."""
    from optarena.harness.benchmark import Ruleset, TrialSpec

    stored_spec = hashlib.sha256(json.dumps(trial["spec"], sort_keys=True).encode()).hexdigest()
    return TrialSpec(
        submission=_reference(trial),
        submission_name=str(trial["submission"]),
        submission_sha256=str(trial["source_sha256"]),
        workload=str(trial["workload"]),
        workload_sha256=stored_spec,
        ruleset=Ruleset.EXTERNAL,
        study=0,
        trial=trial_id,
        seed=int(trial["seed"]),
        benchmark_seed=0,
        hparams=trial["hparams"],
        budget_sec=float(trial["budget_sec"]),
        max_steps=trial["max_steps"],
    )


def _installed_mismatch(spec: TrialSpec) -> str | None:
    """Why the installed submission or workload is not what the trial ran, if it is not."""
    from optarena.submissions import loader
    from optarena.workloads import registry

    try:
        loaded = loader.load(spec.submission)
    except loader.SubmissionError as error:
        return f"cannot load its submission: {error}"
    if loaded.source_sha256 != spec.submission_sha256:
        return (
            f"{spec.submission_name}'s source changed since it ran (recorded sha256 "
            f"{spec.submission_sha256[:12]}, installed {loaded.source_sha256[:12]})"
        )
    try:
        installed = registry.get(spec.workload).spec.sha256()
    except registry.UnknownWorkloadError as error:
        return str(error)
    if installed != spec.workload_sha256:
        return f"workload {spec.workload}'s spec changed since it ran"
    return None


def _ratio(new: float, old: float) -> float:
    if math.isfinite(new) and math.isfinite(old) and old > 0:
        return new / old
    return math.nan


def check_trial(
    trial_id: int, trial: Mapping[str, Any], stored: Sequence[EvalPoint], result: TrialResult
) -> TrialCheck:
    """Compare a stored trial with its re-run."""
    return TrialCheck(
        trial_id=trial_id,
        label=f"{trial['submission']} on {trial['workload']} (seed {trial['seed']})",
        status=(str(trial["status"]), result.status.value),
        steps_to_target=(trial["steps_to_target"], result.steps_to_target),
        evaluations=len(stored),
        first_difference=first_difference(stored, result.eval_points),
        time_ratio=_ratio(result.time_to_target_sec, float(trial["time_to_target_sec"])),
        timed_ratio=_ratio(result.timed_sec, float(trial["timed_sec"])),
    )


def _chosen_trials(args: argparse.Namespace, store) -> list[int]:
    if args.trials is not None:
        try:
            ids = [int(part) for part in args.trials.split(",") if part.strip()]
        except ValueError as error:
            raise BadInput(
                f"--trials must be comma-separated trial ids, got {args.trials!r}"
            ) from error
        if not ids:
            raise BadInput("--trials names no trial")
        return ids
    if args.snapshot is not None:
        from optarena.leaderboard.snapshots import NoSnapshotError, load_snapshot

        try:
            return [int(i) for i in load_snapshot(store, args.snapshot).trials["trial_id"]]
        except NoSnapshotError as error:
            raise BadInput(str(error)) from error
    frame = store.benchmark_trials(args.ruleset)
    for column in ("submission", "workload"):
        value = getattr(args, column)
        if value is not None:
            frame = frame[frame[column] == value]
    if frame.empty:
        raise BadInput("no stored benchmark trial matches the filter")
    return [int(i) for i in frame["trial_id"]]


def _difference(check: TrialCheck) -> str:
    if check.status[0] != check.status[1]:
        return f"status {check.status[0]} vs {check.status[1]}"
    if check.steps_to_target[0] != check.steps_to_target[1]:
        return f"steps to target {check.steps_to_target[0]} vs {check.steps_to_target[1]}"
    return str(check.first_difference)


def _trials_table(checks: Sequence[TrialCheck]) -> Table:
    table = Table(title="Trials re-run from their records")
    for column in (
        "trial",
        "what",
        "status",
        "steps to target",
        "evaluations",
        "time to target ratio",
        "timed s ratio",
        "match",
    ):
        table.add_column(column)
    for check in checks:
        steps = (
            "same"
            if check.steps_to_target[0] == check.steps_to_target[1]
            else (f"{check.steps_to_target[0]} -> {check.steps_to_target[1]}")
        )
        table.add_row(
            str(check.trial_id),
            check.label,
            check.status[0] if check.status[0] == check.status[1] else " -> ".join(check.status),
            steps,
            f"{check.evaluations} identical"
            if check.first_difference is None
            else f"[red]{check.first_difference}",
            "-" if math.isnan(check.time_ratio) else f"{check.time_ratio:.3f}",
            "-" if math.isnan(check.timed_ratio) else f"{check.timed_ratio:.3f}",
            "yes" if check.matches else "[red]NO",
        )
    return table


def _rerun(args: argparse.Namespace) -> int:
    from optarena.harness.executors import InProcessExecutor, SpecMismatch

    store = _open_store(args.db, create=False)
    ids = _chosen_trials(args, store)
    trials, specs = {}, {}
    for trial_id in ids:
        try:
            trials[trial_id] = store.trial(trial_id)
        except KeyError as error:
            raise BadInput(f"no trial with id {trial_id} in {store.url}") from error
        specs[trial_id] = _spec_for(trial_id, trials[trial_id])
    console = _console(stderr=True)
    problems = {tid: _installed_mismatch(spec) for tid, spec in specs.items()}
    problems = {tid: why for tid, why in problems.items() if why is not None}
    for trial_id, why in problems.items():
        console.print(f"trial {trial_id} cannot be re-run as recorded: {why}", markup=False)
    if problems:
        return EXIT_MISMATCH
    data_dir = _data_dir(args)
    if args.executor == "in-process":
        executor = InProcessExecutor(data_dir)
    else:
        from optarena.harness.executors import ChildProcessExecutor

        executor = ChildProcessExecutor(data_dir)
    checks = []
    try:
        for outcome in executor.run([specs[tid] for tid in ids]):
            trial_id = outcome.spec.trial
            check = check_trial(
                trial_id, trials[trial_id], store.eval_points(trial_id), outcome.result
            )
            console.print(
                f"trial {trial_id} ({check.label}): "
                + ("matches" if check.matches else f"DIFFERS: {_difference(check)}"),
                markup=False,
            )
            checks.append(check)
    except SpecMismatch as error:
        raise BadInput(str(error)) from error
    _console().print(_trials_table(checks))
    mismatched = [c.trial_id for c in checks if not c.matches]
    _console().print(
        f"{len(checks) - len(mismatched)} of {len(checks)} trials reproduced exactly"
        + (f"; differ: {', '.join(map(str, mismatched))}" if mismatched else ""),
        markup=False,
    )
    return EXIT_MISMATCH if mismatched else EXIT_OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Re-score (``--snapshot``, ``--times``) or re-run (``--trials``, ``--rerun``)."""
    rerun = args.rerun or args.trials is not None
    if args.times is not None and (rerun or args.snapshot is not None):
        raise BadInput("--times re-scores a CSV; it does not combine with --snapshot or re-runs")
    if args.scores is not None and args.times is None:
        raise BadInput("--scores goes with --times")
    if args.trials is not None and args.snapshot is not None:
        raise BadInput("give --trials or --snapshot, not both")
    if not rerun and args.times is None and args.snapshot is None:
        raise BadInput("give --snapshot ID, --times FILE, --trials IDS or --rerun with a filter")
    filters = (args.submission, args.workload, args.ruleset)
    if any(f is not None for f in filters) and not (args.rerun and args.snapshot is None):
        raise BadInput("--submission, --workload and --ruleset filter --rerun without --snapshot")
    if rerun:
        return _rerun(args)
    if args.times is not None:
        comparison = _rescore_times(args.times, args.scores)
        if comparison is None:
            return EXIT_OK
        title = f"{args.times} against {args.scores}"
    else:
        comparison = _rescore_snapshot(_open_store(args.db, create=False), args.snapshot)
        title = f"Snapshot {args.snapshot} re-scored from its recorded trials"
    console = _console()
    console.print(_scores_table(comparison, title))
    bad = comparison[~comparison["match"]]
    console.print(
        f"{len(comparison) - len(bad)} of {len(comparison)} values within {SCORE_TOLERANCE:g}",
        markup=False,
    )
    return EXIT_MISMATCH if len(bad) else EXIT_OK


def register(commands, add_store, add_data) -> None:
    """Add ``reproduce`` to the ``optarena`` parser's subcommands."""
    help_text = (
        "Recompute recorded scores (a snapshot, or a CSV of times) or re-run stored trials "
        "from their records, and report what differs; exit 4 on a mismatch."
    )
    sub = commands.add_parser("reproduce", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_reproduce)
    sub.add_argument("--snapshot", type=int, help="a stored snapshot: re-score it (or --rerun)")
    sub.add_argument("--times", metavar="FILE.csv", help="a CSV of times to re-score")
    sub.add_argument(
        "--scores",
        metavar="FILE.csv",
        help="recorded scores for --times: ruleset, submission, score (or published_score)",
    )
    sub.add_argument("--trials", metavar="IDS", help="comma-separated trial ids to re-run")
    sub.add_argument(
        "--rerun",
        action="store_true",
        help="re-run trials: every trial of --snapshot, or the benchmark trials of the filter",
    )
    sub.add_argument("--submission", help="filter for --rerun: this submission's name")
    sub.add_argument("--workload", help="filter for --rerun: this workload")
    sub.add_argument("--ruleset", help="filter for --rerun: this ruleset")
    sub.add_argument(
        "--executor",
        choices=("child-process", "in-process"),
        default="child-process",
        help="how re-runs run (default child-process)",
    )
    add_store(sub)
    add_data(sub)
