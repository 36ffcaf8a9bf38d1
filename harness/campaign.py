"""Campaigns: run planned trials against a store through an executor, storing each as it ends.

Planning is pure (`optarena.harness.benchmark`). A campaign is one submission's plan under
one ruleset, with the planned trials the store already holds: a campaign is resumable, so
killing it at any moment loses at most the trial in flight and preparing it again picks up
where it stopped. `prepare` also checks, before anything runs, what would fail every trial
the same way; `run` sends the pending trials through an executor and stores each one as soon
as it finishes, in one transaction. The benchmark command, the main job and the nightly job
are all campaigns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optarena.errors import UserError
from optarena.harness import benchmark, describing, evidence, executors, sandbox
from optarena.harness.benchmark import BenchmarkConfig
from optarena.harness.executors import Executor
from optarena.harness.footprint import Footprint, FootprintChanged, code_roots
from optarena.leaderboard.store import Store, StoreError
from optarena.records import FinishedTrial, Ruleset, Trial, TrialResult, TrialStatus
from optarena.submissions import loader
from optarena.submissions.loader import SubmissionInfo
from optarena.workloads import data, registry, suites

OnStart = Callable[[Trial], None]
OnFinished = Callable[[FinishedTrial, int], None]


@dataclasses.dataclass(frozen=True)
class Campaign:
    """One submission's planned trials and which of them the store holds already."""

    submission: SubmissionInfo
    config: BenchmarkConfig
    variants: Mapping[str, tuple[str, ...]]
    """The held-out variants drawn for each base workload (none by default)."""
    trials: tuple[Trial, ...]
    stored: Mapping[tuple[Any, ...], int]
    """Stored trial ids by identity (`Trial.identity`), for the planned trials stored."""

    @property
    def pending(self) -> list[Trial]:
        return [trial for trial in self.trials if trial.identity not in self.stored]

    @property
    def workloads(self) -> list[str]:
        return list(dict.fromkeys(trial.workload for trial in self.trials))


def preflight(
    loaded: SubmissionInfo, trials: Sequence[Trial], data_dir: str, *, trace_first: bool = True
) -> None:
    """Check, before anything runs, what would otherwise fail every trial the same way.

    With ``trace_first``, the first trial's optimizer must trace (in a sandboxed process, as
    every trial's does): a factory that fails on its first point (under self-tuning, on
    ``hparams=None``) is refused here. Every workload's data must be there (offline datasets
    are prepared now, untimed).
    """
    if trials and trace_first:
        first = trials[0]
        try:
            executors.trace_in_sandbox(first)
        except sandbox.SandboxFailure as error:
            under = (
                "under the self-tuning ruleset"
                if first.place and first.place.ruleset is Ruleset.SELF
                else f"its first trial ({first.label})"
            )
            raise benchmark.PlanError(f"{loaded.name} cannot run {under}: {error}") from None
    for name in dict.fromkeys(trial.workload for trial in trials):
        registry.get(name).load_split("validation", data_dir)


def prepare(
    reference: str,
    suite: str,
    config: BenchmarkConfig,
    store: Store,
    data_dir: str,
    *,
    workloads: Sequence[str] = (),
    loaded: SubmissionInfo | None = None,
) -> Campaign:
    """Plan ``reference``'s benchmark on ``suite`` (or on the named base ``workloads`` of it),
    look up what ``store`` holds and preflight the rest; raises a `UserError` on bad input.

    The submission is described (`describing.describe`) and traced in sandboxed processes:
    this process never imports it."""
    loaded = loaded or describing.describe(reference)
    bases = suites.base_workloads(suite, workloads)
    variants = benchmark.draw_variants(bases, config.seed, config.held_out_variants)
    names = benchmark.benchmark_workloads(bases, variants)
    trials = benchmark.plan(loaded, reference, names, config)
    campaign = Campaign(loaded, config, variants, tuple(trials), store.stored_ids(trials))
    preflight(loaded, campaign.pending, data_dir)
    if campaign.pending:
        store.check_writable()
    return campaign


class StoreTampered(StoreError):
    """Rows stored before a trial changed while it ran."""


class _StoreGuard:
    """Seals what a store holds when a trial starts and checks it when the trial ends.

    Rows are only ever added to a store, so the trials stored before a trial started must be
    the same, row for row, when it ends (`Store.digest`); anything else means something (the
    submission's code, most likely: it runs in processes of its own, under the same user)
    edited or deleted them.
    """

    def __init__(self, store: Store):
        self.store = store
        self._seal: tuple[int, str] | None = None

    def seal(self) -> None:
        last = self.store.last_trial_id()
        self._seal = (last, self.store.digest(last))

    def changed(self) -> bool:
        if self._seal is None:
            return False
        last, digest = self._seal
        return self.store.digest(last) != digest


def run(
    campaign: Campaign,
    executor: Executor,
    store: Store,
    *,
    on_start: OnStart | None = None,
    on_finished: OnFinished | None = None,
) -> list[tuple[FinishedTrial, int]]:
    """Run the campaign's pending trials and store each as it finishes; returns each finished
    trial with its stored id. ``on_finished`` is called after each is stored.

    A result that contradicts its own evaluation points (`evidence.mismatch`) is stored as an
    ``error`` saying why. Raises `StoreTampered` when the trials stored before a trial changed
    while it ran, and `FootprintChanged` when optarena's code or the prepared data did
    (`optarena.harness.footprint`): that trial is stored as an ``error`` saying so, and nothing
    else runs.
    """
    guard = _StoreGuard(store)
    footprint = Footprint.take([*code_roots(), *data.prepared_dirs()])

    def started(trial: Trial) -> None:
        guard.seal()
        if on_start is not None:
            on_start(trial)

    finished = []
    for done in executor.run(campaign.pending, on_start=started):
        unfounded = evidence.mismatch(done.trial, done.result)
        if unfounded is not None:
            done = dataclasses.replace(
                done,
                result=TrialResult.failed(
                    TrialStatus.ERROR, f"the result contradicts its evaluations: {unfounded}"
                ),
            )
        tampered: UserError | None = None
        if guard.changed():
            tampered = StoreTampered(
                f"{store.url}: trials stored before {done.trial.label} were edited or deleted "
                "while it ran"
            )
        elif (moved := footprint.changed()) is not None:
            tampered = FootprintChanged(f"while {done.trial.label} ran, {moved}")
        if tampered is not None:
            done = dataclasses.replace(
                done, result=TrialResult.failed(TrialStatus.ERROR, str(tampered))
            )
        trial_id = store.add(done)
        finished.append((done, trial_id))
        if on_finished is not None:
            on_finished(done, trial_id)
        if tampered is not None:
            raise type(tampered)(
                f"{tampered}; it is stored as an error (trial {trial_id}) and nothing else runs"
            )
    return finished


def trial_ids(campaign: Campaign, finished: Sequence[tuple[FinishedTrial, int]]) -> list[int]:
    """Every stored trial id of the campaign: those it found stored and those it ran."""
    return [*campaign.stored.values(), *(trial_id for _, trial_id in finished)]


def main_job(
    suite: str, store: Store, data_dir: str, *, seeds: int = 3, seed: int = 0
) -> list[Campaign]:
    """The main job: every built-in submission at its default point on ``suite``'s workloads
    (held-out variants included when the suite lists them), one study per seed
    ``seed, seed + 1, ...``. Nothing is tuned, so it ranks default points, not algorithms."""
    names = suites.workloads(suite)
    config = BenchmarkConfig.for_ruleset(Ruleset.DEFAULT_POINT, studies=seeds, seed=seed)
    store.check_writable()
    campaigns = []
    for reference in loader.builtin_names():
        loaded = describing.describe(reference)
        trials = benchmark.plan(loaded, reference, names, config)
        campaign = Campaign(loaded, config, {}, tuple(trials), store.stored_ids(trials))
        # A built-in that cannot train is a broken installation, which its trials report.
        preflight(loaded, campaign.pending, data_dir, trace_first=False)
        campaigns.append(campaign)
    return campaigns
