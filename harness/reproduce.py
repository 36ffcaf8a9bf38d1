"""Reproduction: recompute recorded scores, re-run recorded trials, say what differs.

Scores: a stored snapshot's recorded trial times are scored again with the snapshot's own
bootstrap settings (`rescore_snapshot`); a CSV of times is scored and compared with recorded
scores (`rescore_times`). Each submission's recorded and recomputed values must agree within
`SCORE_TOLERANCE`.

Trials: stored trials are re-run from their recorded seed, hyperparameters, budget and step
cap (`rerun`). The submission's source and the workload's spec must hash to what the trial
recorded (else nothing runs). Every evaluation (step, examples, training loss, validation and
test metrics), the status and the steps to target must match exactly: the same seed on the
same CPU build computes the same numbers. Wall-clock times are reported as ratios: they may
move.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from optarena.errors import UserError
from optarena.harness import csv_inputs, describing
from optarena.harness.executors import Executor
from optarena.leaderboard.snapshots import load_snapshot
from optarena.leaderboard.store import Store
from optarena.records import EvalPoint, SubmissionRef, Trial, TrialConfig, TrialResult
from optarena.scoring.report import score_trials
from optarena.submissions import loader
from optarena.workloads import registry
from optarena.workloads.spec import WorkloadSpec

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


def rescore_snapshot(store: Store, snapshot_id: int) -> pd.DataFrame:
    """Score a stored snapshot's recorded trials again with its own settings and compare every
    submission's score, interval bounds, steps score and FLOPs score with the recorded ones."""
    snapshot = load_snapshot(store, snapshot_id)
    report = score_trials(snapshot.trials, snapshot.settings)
    columns = ["ruleset", "submission", *SCORE_COLUMNS]
    return compare_scores(snapshot.scores[columns], report.scores[columns], list(SCORE_COLUMNS))


def rescore_times(times_path: str, scores_path: str) -> pd.DataFrame:
    """Score a CSV of times and compare with the recorded scores of another CSV."""
    recomputed = csv_inputs.score_times_file(times_path).scores[["ruleset", "submission", "score"]]
    return compare_scores(csv_inputs.read_recorded_scores(scores_path), recomputed, ["score"])


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


def trial_of_record(record: Mapping[str, Any]) -> Trial:
    """A stored trial (`Store.trial`) as the `Trial` that re-runs it: a built-in or a plugin by
    name, a file by its recorded path."""
    origin = str(record["submission_origin"])
    if origin.startswith("builtin:"):
        reference = origin.removeprefix("builtin:")
    elif origin.startswith("entry_point:"):
        reference = str(record["submission"])
    else:
        reference = origin
    return Trial(
        submission=SubmissionRef(
            name=str(record["submission"]),
            reference=reference,
            origin=origin,
            source_sha256=str(record["source_sha256"]),
        ),
        spec=WorkloadSpec.from_dict(dict(record["spec"])),
        config=TrialConfig(
            seed=int(record["seed"]),
            hparams=record["hparams"],
            budget_sec=float(record["budget_sec"]),
            max_steps=record["max_steps"],
        ),
    )


def installed_mismatch(trial: Trial) -> str | None:
    """Why the installed submission or workload is not what the trial ran, if it is not."""
    ref = trial.submission
    try:
        loaded = describing.describe(ref.reference)
    except loader.SubmissionError as error:
        return f"cannot load its submission: {error}"
    if loaded.source_sha256 != ref.source_sha256:
        return (
            f"{ref.name}'s source changed since it ran (recorded sha256 "
            f"{ref.source_sha256[:12]}, installed {loaded.source_sha256[:12]})"
        )
    try:
        installed = registry.get(trial.workload).spec.sha256()
    except registry.UnknownWorkloadError as error:
        return str(error)
    if installed != trial.spec.sha256():
        return f"workload {trial.workload}'s spec changed since it ran"
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


def chosen_trials(
    store: Store,
    *,
    snapshot: int | None = None,
    submission: str | None = None,
    workload: str | None = None,
    ruleset: str | None = None,
) -> list[int]:
    """The ids of a snapshot's trials, or of the stored benchmark trials a filter matches."""
    if snapshot is not None:
        return [int(i) for i in load_snapshot(store, snapshot).trials["trial_id"]]
    frame = store.benchmark_trials(ruleset)
    if submission is not None:
        frame = frame[frame["submission"] == submission]
    if workload is not None:
        frame = frame[frame["workload"] == workload]
    if frame.empty:
        raise UserError("no stored benchmark trial matches the filter")
    return [int(i) for i in frame["trial_id"]]


@dataclasses.dataclass(frozen=True)
class Rerun:
    """What re-running stored trials found: trials that cannot be re-run as recorded (and
    why; then nothing ran), or one check per trial."""

    cannot_rerun: Mapping[int, str]
    checks: tuple[TrialCheck, ...]

    @property
    def mismatched(self) -> list[int]:
        return [check.trial_id for check in self.checks if not check.matches]


def rerun(
    store: Store,
    trial_ids: Sequence[int],
    executor: Executor,
    *,
    on_checked: Callable[[TrialCheck], None] | None = None,
) -> Rerun:
    """Re-run stored trials from their records and compare each with what was stored."""
    records = {trial_id: store.trial(trial_id) for trial_id in trial_ids}
    trials = {trial_id: trial_of_record(record) for trial_id, record in records.items()}
    problems = {tid: installed_mismatch(trial) for tid, trial in trials.items()}
    problems = {tid: why for tid, why in problems.items() if why is not None}
    if problems:
        return Rerun(problems, ())
    waiting = list(trials.items())
    checks = []
    for done in executor.run(list(trials.values())):
        trial_id = next(tid for tid, trial in waiting if trial == done.trial)
        waiting.remove((trial_id, done.trial))
        check = check_trial(trial_id, records[trial_id], store.eval_points(trial_id), done.result)
        checks.append(check)
        if on_checked is not None:
            on_checked(check)
    return Rerun({}, tuple(checks))
