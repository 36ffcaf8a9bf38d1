"""The nightly job: benchmark every submission, score, compare with the previous night.

One night (`plan`, then `run`): check the config and every submission (nothing runs or is
written on bad input); re-time the reference submission's fixed trials (the machine's own
run-to-run variation); benchmark each submission under each ruleset as a campaign, reusing
every trial already stored for the same sources and specs; score tonight's trials into a
dated snapshot; compare it with the previous night of the same settings; write the Markdown
report and the HTML leaderboard into a dated folder of the output directory (and into
``latest/``); record the night in the store.

A night killed at any point leaves nothing half-done: its timing trials, snapshot and record
are committed together or not at all, its report is renamed into place only once they are,
and the next night finishes or removes whatever the killed one left in the output directory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from optarena.errors import UserError
from optarena.harness import benchmark, campaign, describing, provenance
from optarena.harness.campaign import Campaign
from optarena.harness.executors import Executor, WallClockLimit, make_executor
from optarena.harness.nightly_config import NightlyConfig
from optarena.leaderboard import html_page, nightly_report, nightly_store
from optarena.leaderboard.snapshots import eval_curves, load_snapshot, save_snapshot
from optarena.leaderboard.store import Store
from optarena.records import FinishedTrial, Trial, TrialConfig
from optarena.scoring import night_comparison
from optarena.scoring.report import Settings, score_trials
from optarena.submissions import loader
from optarena.submissions.loader import SubmissionInfo
from optarena.workloads import registry, suites

TIMING_BUDGET_FACTOR = 10.0
"""The reference's timing trials get this factor on the workload's budget, so that the step
cap (or the target) and never the clock ends them: each night times the same steps."""
TIMING_COLUMNS = ["night", "workload", "seed", "timed_sec", "num_steps", "steps_to_target"]
PARTIAL = ".partial"
"""The suffix of a folder being written in the output directory (a hidden ``.NAME.partial``)."""


class OutputError(UserError, OSError):
    """The night's report cannot be written where the config says."""


@dataclasses.dataclass(frozen=True)
class NightPlan:
    """What a night will run: its campaigns, the reference's timing trials, what it skips."""

    config: NightlyConfig
    store: Store
    reference: SubmissionInfo
    timing: tuple[Trial, ...]
    campaigns: tuple[Campaign, ...]
    skipped: tuple[str, ...]
    """One line per (submission, ruleset) that cannot run, with the reason."""
    started_at: dt.datetime

    @property
    def total_trials(self) -> int:
        return sum(len(c.trials) for c in self.campaigns)

    @property
    def reused_trials(self) -> int:
        return sum(len(c.stored) for c in self.campaigns)


@dataclasses.dataclass(frozen=True)
class Night:
    """A finished night: its snapshot, report and verdict."""

    snapshot_id: int
    report_dir: Path
    trials_run: int
    trials_reused: int
    regressed: tuple[tuple[str, str], ...]
    """(ruleset, submission) of each submission that regressed."""


def registered_submissions() -> list[str]:
    """Every registered submission: built-ins, then installed plugins, by name."""
    return loader.builtin_names() + sorted(loader.entry_points())


def _ruleset_config(config: NightlyConfig, ruleset: str) -> benchmark.BenchmarkConfig:
    return benchmark.ruleset_config(
        ruleset,
        external_trials=config.trials,
        studies=config.studies,
        seed=config.seed,
        budget_factor=config.budget_factor,
        max_steps=config.max_steps,
        held_out_variants=config.held_out_variants,
    )


def timing_trials(
    config: NightlyConfig, reference: SubmissionInfo, bases: Sequence[str]
) -> list[Trial]:
    """The reference's fixed trials: its default point, seeds 0.., each base workload, capped
    at ``timing_steps`` steps."""
    ref = benchmark.submission_ref(reference, config.reference)
    trials = []
    for base in bases:
        spec = registry.get(base).spec
        for seed in range(config.timing_seeds):
            trials.append(
                Trial(
                    submission=ref,
                    spec=spec,
                    config=TrialConfig(
                        seed=seed,
                        hparams=reference.default_hparams,
                        budget_sec=spec.budget_sec * TIMING_BUDGET_FACTOR,
                        max_steps=config.timing_steps,
                    ),
                )
            )
    return trials


def plan(config: NightlyConfig, data_dir: str) -> NightPlan:
    """Check the config and plan every (ruleset, submission); a submission that cannot run a
    ruleset is skipped with a note (a self-tuning-only submission under external tuning)."""
    output_dir = Path(config.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"output_dir {output_dir} exists and is not a directory")
    started_at = dt.datetime.now(dt.UTC)
    store = Store(config.store)
    store.check_writable()
    references = list(config.submissions) or registered_submissions()
    if not references:
        raise UserError("no submission is registered and the config names none")
    reference = describing.describe(config.reference)
    bases = suites.base_workloads(config.suite, config.workloads)
    loaded = {ref: describing.describe(ref) for ref in references}
    names = [sub.name for sub in loaded.values()]
    if len(set(names)) != len(names):
        raise UserError(f"two submissions share a name: {', '.join(sorted(names))}")
    campaigns, skipped = [], []
    for ruleset in config.rulesets:
        bench = _ruleset_config(config, ruleset)
        for ref, sub in loaded.items():
            try:
                campaigns.append(
                    campaign.prepare(
                        ref,
                        config.suite,
                        bench,
                        store,
                        data_dir,
                        workloads=config.workloads,
                        loaded=sub,
                    )
                )
            except benchmark.PlanError as error:
                skipped.append(f"{sub.name} under {ruleset}: {error}")
    if not campaigns:
        raise UserError("nothing to benchmark: " + "; ".join(skipped))
    return NightPlan(
        config=config,
        store=store,
        reference=reference,
        timing=tuple(timing_trials(config, reference, bases)),
        campaigns=tuple(campaigns),
        skipped=tuple(skipped),
        started_at=started_at,
    )


def executor_for(config: NightlyConfig, data_dir: str) -> Executor:
    """The executor the config names, with the benchmark's default wall-clock limit."""
    return make_executor(
        config.executor,
        data_dir,
        WallClockLimit(),
        ray_address=config.ray_address,
        slurm_partition=config.slurm_partition,
        slurm_gpus_per_trial=config.slurm_gpus_per_trial or 0,
    )


def _speed_factors(store: Store, timing_now: pd.DataFrame) -> pd.DataFrame:
    """night_id, base_workload, factor: each night's reference median time over tonight's
    (tonight is night 0)."""
    history = nightly_store.timing_trials(store)
    now = timing_now.groupby("workload")["timed_sec"].median()
    past = history.groupby(["run_id", "workload"])["timed_sec"].median().reset_index()
    past["factor"] = past["timed_sec"] / past["workload"].map(now)
    rows = past.rename(columns={"run_id": "night_id", "workload": "base_workload"})
    current = pd.DataFrame({"night_id": 0, "base_workload": list(now.index), "factor": 1.0})
    return pd.concat([rows[["night_id", "base_workload", "factor"]], current], ignore_index=True)


def _timing_now(timing: Sequence[FinishedTrial]) -> pd.DataFrame:
    """Tonight's re-timed reference trials (night ``"now"``), as `machine_drift` takes them."""
    rows = [
        (
            "now",
            done.trial.workload,
            done.trial.config.seed,
            done.result.timed_sec,
            done.result.num_steps,
            math.nan if done.result.steps_to_target is None else done.result.steps_to_target,
        )
        for done in timing
    ]
    frame = pd.DataFrame(rows, columns=TIMING_COLUMNS)
    return frame.astype(
        {"seed": "int64", "timed_sec": float, "num_steps": "int64", "steps_to_target": float}
    )


def _drift(store: Store, timing_now: pd.DataFrame, previous) -> pd.DataFrame:
    """The reference's trials tonight against the previous night's (see `machine_drift`)."""
    frames = [timing_now[TIMING_COLUMNS]]
    if previous is not None:
        before = nightly_store.timing_trials(store, [previous.id]).assign(night="before")
        frames.append(before[TIMING_COLUMNS])
    return night_comparison.machine_drift(pd.concat(frames, ignore_index=True))


def _partial(path: Path) -> Path:
    """Where ``path`` is written before it takes its name: a hidden sibling."""
    return path.with_name(f".{path.name}{PARTIAL}")


def _write_report(directory: Path, report: str, snapshot, curves) -> None:
    try:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        (directory / "report.md").write_text(report, encoding="utf-8")
        html_page.write(directory, snapshot, curves)
    except OSError as error:
        raise OutputError(f"cannot write the night's report into {directory}: {error}") from error


def _replace_latest(source: Path, latest: Path) -> None:
    """Make ``latest`` a copy of ``source`` by renames, so that it is never half-written."""
    staged, old = _partial(latest), _partial(latest.with_name(f"{latest.name}-old"))
    for leftover in (staged, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(source, staged)
    if latest.exists():
        os.replace(latest, old)
    os.replace(staged, latest)
    shutil.rmtree(old, ignore_errors=True)


def _publish(night_dir: Path, latest: Path) -> None:
    """Give the recorded night's report its final name and make it ``latest``."""
    try:
        os.replace(_partial(night_dir), night_dir)
        _replace_latest(night_dir, latest)
    except OSError as error:
        raise OutputError(f"cannot publish the night's report {night_dir}: {error}") from error


def recover_outputs(store: Store, output_dir: Path) -> None:
    """Finish or remove what a killed night left in ``output_dir``.

    A partial report of a recorded night (killed between its record and its rename) takes its
    final name and becomes ``latest``; every other partial folder is removed; a missing
    ``latest`` is the newest recorded report of the folder again.
    """
    if not output_dir.is_dir():
        return
    recorded = [Path(d).resolve() for d in nightly_store.report_dirs(store)]
    latest = output_dir / "latest"
    try:
        finished = False
        for partial in sorted(output_dir.glob(f".*{PARTIAL}")):
            final = partial.with_name(partial.name[1 : -len(PARTIAL)])
            if partial.is_dir() and final.resolve() in recorded and not final.exists():
                os.replace(partial, final)
                finished = True
            elif partial.is_dir():
                shutil.rmtree(partial)
            else:
                partial.unlink()
        if finished or not latest.exists():
            here = output_dir.resolve()
            newest = next((d for d in reversed(recorded) if d.parent == here and d.is_dir()), None)
            if newest is not None:
                _replace_latest(newest, latest)
    except OSError as error:
        raise OutputError(f"cannot clean up {output_dir}: {error}") from error


def run(
    night: NightPlan,
    executor: Executor,
    *,
    on_timing: Callable[[FinishedTrial], None] | None = None,
    on_start: campaign.OnStart | None = None,
    on_finished: campaign.OnFinished | None = None,
) -> Night:
    """Run the planned night: timing check, campaigns, snapshot, comparison, report, record.

    Benchmark trials are stored as they finish (a rerun reuses them); the timing trials, the
    snapshot and the night's record are stored in one transaction at the end, with the report
    written beside its final name first and renamed once that transaction is committed.
    """
    config, store = night.config, night.store
    output_dir = Path(config.output_dir)
    recover_outputs(store, output_dir)
    timing = []
    for done in executor.run(night.timing):
        timing.append(done)
        if on_timing is not None:
            on_timing(done)
    ids, ran = set(), []
    for planned in night.campaigns:
        finished = campaign.run(
            planned, executor, store, on_start=on_start, on_finished=on_finished
        )
        ran += [trial_id for _, trial_id in finished]
        ids |= set(campaign.trial_ids(planned, finished))

    previous = nightly_store.previous_run(store, config.comparison_key())
    trials = store.benchmark_trials()
    trials = trials[trials["trial_id"].isin(list(ids))].reset_index(drop=True)
    timing_now = _timing_now(timing)
    drift = _drift(store, timing_now, previous)
    tolerance = night_comparison.tolerance(drift, config.timing_tolerance)
    if config.normalize_timing:
        nights = nightly_store.nights_of_trials(store)
        nights = pd.concat([nights, pd.Series(0, index=ran, dtype="int64")])
        trials = night_comparison.normalize_times(trials, _speed_factors(store, timing_now), nights)

    settings = Settings(
        replicates=config.replicates, seed=config.bootstrap_seed, level=config.level
    )
    report = score_trials(trials, settings)
    before = load_snapshot(store, previous.snapshot_id) if previous is not None else None
    curves = eval_curves(store, trials["trial_id"])
    with store.transaction() as session:
        timing_ids = [store.add(done, session=session) for done in timing]
        snapshot_id = save_snapshot(
            store, trials, report, settings, version=provenance.version(), session=session
        )
        snapshot = load_snapshot(store, snapshot_id, session=session)
        empty = snapshot.scores.iloc[0:0], snapshot.trials.iloc[0:0]
        scores_before, trials_before = (before.scores, before.trials) if before else empty
        comparison = night_comparison.compare(
            scores_before, trials_before, snapshot.scores, snapshot.trials, tolerance=tolerance
        )
        night_dir = output_dir / f"{night.started_at:%Y-%m-%d}-snapshot{snapshot_id}"
        info = nightly_report.NightInfo(
            date=f"{night.started_at:%Y-%m-%d %H:%M} UTC",
            snapshot_id=snapshot_id,
            previous_snapshot_id=previous.snapshot_id if previous else None,
            previous_date=f"{previous.started_at:%Y-%m-%d %H:%M} UTC" if previous else None,
            suite=config.suite,
            rulesets=config.rulesets,
            submissions=sorted({c.submission.name for c in night.campaigns}),
            trials_run=len(ran),
            trials_reused=len(ids) - len(ran),
            reference=night.reference.name,
            normalized=config.normalize_timing,
            skipped=list(night.skipped),
        )
        text = nightly_report.render(info, comparison, drift)
        _write_report(_partial(night_dir), text, snapshot, curves)
        nightly_store.record_run(
            store,
            started_at=night.started_at,
            comparison_key=config.comparison_key(),
            settings=config.to_dict(),
            snapshot_id=snapshot_id,
            previous_run_id=previous.id if previous else None,
            tolerance=tolerance,
            regressions=len(comparison.regressed),
            report_dir=str(night_dir),
            timing=[
                (trial_id, done.trial.workload, done.trial.config.seed)
                for trial_id, done in zip(timing_ids, timing, strict=True)
            ],
            run_trial_ids=ran,
            session=session,
        )
    _publish(night_dir, output_dir / "latest")
    return Night(
        snapshot_id=snapshot_id,
        report_dir=night_dir,
        trials_run=len(ran),
        trials_reused=len(ids) - len(ran),
        regressed=tuple(comparison.regressed),
    )
