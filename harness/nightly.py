"""The nightly job: benchmark every submission, score, compare with the previous night.

One night (`plan`, then `run`): check the config and every submission (nothing runs or is
written on bad input); re-time the reference submission's fixed trials (the machine's own
run-to-run variation); benchmark each submission under each ruleset as a campaign, reusing
every trial already stored for the same sources and specs; score tonight's trials into a
dated snapshot; compare it with the previous night of the same settings; write the Markdown
report and the HTML leaderboard into a dated folder of the output directory (and into
``latest/``); record the night in the store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
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
from optarena.records import FinishedTrial, Ruleset, Trial, TrialConfig
from optarena.scoring import night_comparison
from optarena.scoring.report import Settings, score_trials
from optarena.submissions import loader
from optarena.submissions.loader import SubmissionInfo
from optarena.workloads import registry, suites

TIMING_BUDGET_FACTOR = 10.0
"""The reference's timing trials get this factor on the workload's budget, so that the step
cap (or the target) and never the clock ends them: each night times the same steps."""
TIMING_COLUMNS = ["night", "workload", "seed", "timed_sec", "num_steps", "steps_to_target"]


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
    return benchmark.BenchmarkConfig.for_ruleset(
        ruleset,
        studies=config.studies,
        trials=config.trials if ruleset == Ruleset.EXTERNAL else None,
        seed=config.seed,
        budget_factor=config.budget_factor,
        max_steps=config.max_steps,
        held_out=config.held_out,
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
    return make_executor(config.executor, data_dir, WallClockLimit())


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


def _timing_now(store: Store, trial_ids: Sequence[int]) -> pd.DataFrame:
    """Tonight's re-timed reference trials (night ``"now"``), as `machine_drift` takes them."""
    trials = store.trials()
    frame = trials[trials["id"].isin(list(trial_ids))].rename(columns={"id": "trial_id"})
    return frame.assign(
        seed=frame["seed"].astype(int),
        steps_to_target=frame["steps_to_target"].astype(float),
        night="now",
    )


def _drift(store: Store, timing_now: pd.DataFrame, previous) -> pd.DataFrame:
    """The reference's trials tonight against the previous night's (see `machine_drift`)."""
    frames = [timing_now[TIMING_COLUMNS]]
    if previous is not None:
        before = nightly_store.timing_trials(store, [previous.id]).assign(night="before")
        frames.append(before[TIMING_COLUMNS])
    return night_comparison.machine_drift(pd.concat(frames, ignore_index=True))


def _write_outputs(directory: Path, latest: Path, report: str, snapshot, curves) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.md").write_text(report, encoding="utf-8")
        html_page.write(directory, snapshot, curves)
        latest.mkdir(parents=True, exist_ok=True)
        for name in ("report.md", "index.html"):
            shutil.copyfile(directory / name, latest / name)
    except OSError as error:
        raise OutputError(f"cannot write the night's report into {directory}: {error}") from error


def run(
    night: NightPlan,
    executor: Executor,
    *,
    on_timing: Callable[[FinishedTrial], None] | None = None,
    on_start: campaign.OnStart | None = None,
    on_finished: campaign.OnFinished | None = None,
) -> Night:
    """Run the planned night: timing check, campaigns, snapshot, comparison, report, record."""
    config, store = night.config, night.store
    timing = []
    for done in executor.run(night.timing):
        timing.append((store.add(done), done.trial.workload, done.trial.config.seed))
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
    timing_now = _timing_now(store, [trial_id for trial_id, _, _ in timing])
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
    snapshot_id = save_snapshot(store, trials, report, settings, version=provenance.version())
    snapshot = load_snapshot(store, snapshot_id)
    before = load_snapshot(store, previous.snapshot_id) if previous is not None else None
    empty = snapshot.scores.iloc[0:0], snapshot.trials.iloc[0:0]
    scores_before, trials_before = (before.scores, before.trials) if before else empty
    comparison = night_comparison.compare(
        scores_before, trials_before, snapshot.scores, snapshot.trials, tolerance=tolerance
    )
    output_dir = Path(config.output_dir)
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
    curves = eval_curves(store, snapshot.trials["trial_id"])
    _write_outputs(night_dir, output_dir / "latest", text, snapshot, curves)
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
        timing=timing,
        run_trial_ids=ran,
    )
    return Night(
        snapshot_id=snapshot_id,
        report_dir=night_dir,
        trials_run=len(ran),
        trials_reused=len(ids) - len(ran),
        regressed=tuple(comparison.regressed),
    )
