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

from optarena.harness import benchmark
from optarena.harness.benchmark import BenchmarkConfig
from optarena.harness.executors import Executor
from optarena.leaderboard.store import Store
from optarena.records import FinishedTrial, Ruleset, Trial
from optarena.submissions import loader
from optarena.submissions.loader import LoadedSubmission
from optarena.workloads import registry, suites

OnStart = Callable[[Trial], None]
OnFinished = Callable[[FinishedTrial, int], None]


@dataclasses.dataclass(frozen=True)
class Campaign:
    """One submission's planned trials and which of them the store holds already."""

    submission: LoadedSubmission
    config: BenchmarkConfig
    variants: Mapping[str, str]
    """The held-out variant drawn for each base workload."""
    trials: tuple[Trial, ...]
    stored: Mapping[tuple[Any, ...], int]
    """Stored trial ids by identity (`Trial.identity`), for the planned trials stored."""

    @property
    def pending(self) -> list[Trial]:
        return [trial for trial in self.trials if trial.identity not in self.stored]

    @property
    def workloads(self) -> list[str]:
        return list(dict.fromkeys(trial.workload for trial in self.trials))


def preflight(loaded: LoadedSubmission, trials: Sequence[Trial], data_dir: str) -> None:
    """Check, before anything runs, what would otherwise fail every trial the same way.

    Under self-tuning the submission must build an optimizer from ``hparams=None``; every
    workload's data must be there (offline datasets are prepared now, untimed).
    """
    from optarena.harness import tracing

    workloads = {trial.workload: registry.get(trial.workload) for trial in trials}
    if trials and trials[0].place and trials[0].place.ruleset is Ruleset.SELF:
        workload = next(iter(workloads.values()))
        try:
            # One device: this process must not initialize an accelerator (and hold its
            # memory) that the trials' processes need.
            info = tracing.workload_info(
                workload, loaded.submission, trials[0].config.budget_sec, num_devices=1
            )
            tracing.make_optimizer(loaded.submission, None, info)
        except (ValueError, tracing.SubmissionFailure) as error:
            raise benchmark.PlanError(
                f"{loaded.name} cannot run under the self-tuning ruleset: {error}"
            ) from error
    for workload in workloads.values():
        workload.load_split("validation", data_dir)


def prepare(
    reference: str,
    suite: str,
    config: BenchmarkConfig,
    store: Store,
    data_dir: str,
    *,
    workloads: Sequence[str] = (),
    loaded: LoadedSubmission | None = None,
) -> Campaign:
    """Plan ``reference``'s benchmark on ``suite`` (or on the named base ``workloads`` of it),
    look up what ``store`` holds and preflight the rest; raises a `UserError` on bad input."""
    loaded = loaded or loader.load(reference)
    bases = suites.base_workloads(suite, workloads)
    variants = benchmark.draw_variants(bases, config.seed) if config.held_out else {}
    names = benchmark.benchmark_workloads(bases, variants)
    trials = benchmark.plan(loaded, reference, names, config)
    campaign = Campaign(loaded, config, variants, tuple(trials), store.stored_ids(trials))
    preflight(loaded, campaign.pending, data_dir)
    return campaign


def run(
    campaign: Campaign,
    executor: Executor,
    store: Store,
    *,
    on_start: OnStart | None = None,
    on_finished: OnFinished | None = None,
) -> list[tuple[FinishedTrial, int]]:
    """Run the campaign's pending trials and store each as it finishes; returns each finished
    trial with its stored id. ``on_finished`` is called after each is stored."""
    finished = []
    for done in executor.run(campaign.pending, on_start=on_start):
        trial_id = store.add(done)
        finished.append((done, trial_id))
        if on_finished is not None:
            on_finished(done, trial_id)
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
    config = BenchmarkConfig.for_ruleset(
        Ruleset.DEFAULT_POINT, studies=seeds, seed=seed, held_out=False
    )
    campaigns = []
    for reference in loader.builtin_names():
        loaded = loader.load(reference)
        trials = benchmark.plan(loaded, reference, names, config)
        campaign = Campaign(loaded, config, {}, tuple(trials), store.stored_ids(trials))
        preflight(loaded, campaign.pending, data_dir)
        campaigns.append(campaign)
    return campaigns
