"""``optarena benchmark``: run every trial of a suite under a ruleset, resumably.

The command plans every (workload, study, trial) (`harness.benchmark`), skips the ones the
store already holds, runs the others one at a time through an executor
(`harness.executors`) and stores each as soon as it finishes, in one transaction. Killing it
at any moment loses at most the trial in flight; running the same command again picks up
where it stopped. Bad input is reported in one line (exit status 2) before anything runs.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from optarena.harness.cli import (
    EXIT_OK,
    BadInput,
    _console,
    _data_dir,
    _LazyStore,
    _positive_float,
    _positive_int,
)

if TYPE_CHECKING:
    from optarena.harness.benchmark import BenchmarkConfig, TrialSpec
    from optarena.harness.executors import Executor, TrialOutcome
    from optarena.leaderboard.store import BenchmarkIdentity

EXECUTORS = ("child-process", "in-process")
EXIT_INTERRUPTED = 130  # the shell's status for a command stopped by SIGINT


def add_arguments(sub: argparse.ArgumentParser) -> None:
    """The benchmark command's own options (``--db`` and ``--data-dir`` are added by the CLI)."""
    sub.add_argument(
        "--submission",
        required=True,
        help="built-in name, path to a .py file, or installed plugin name",
    )
    sub.add_argument("--ruleset", required=True, help="external or self")
    sub.add_argument("--suite", required=True, help="workload suite, e.g. quick or cpu")
    sub.add_argument(
        "--workloads",
        help="comma-separated base workloads of the suite to run (default: all of them)",
    )
    sub.add_argument(
        "--no-held-out",
        dest="held_out",
        action="store_false",
        help="skip the held-out variants (a development run; not comparable to a full one)",
    )
    sub.add_argument(
        "--studies", type=_positive_int, help="studies per workload (default 3 in both rulesets)"
    )
    sub.add_argument(
        "--trials",
        type=_positive_int,
        help="trials per study (default: 5 under external tuning, 1 under self-tuning)",
    )
    sub.add_argument(
        "--seed",
        type=int,
        default=0,
        help="benchmark seed: held-out draw, study points and trial seeds (default 0)",
    )
    sub.add_argument(
        "--budget-factor",
        type=_positive_float,
        help="factor on workload budgets (default: 1 under external tuning, 1.5 under self)",
    )
    sub.add_argument("--max-steps", type=_positive_int, help="cap every trial at this many steps")
    sub.add_argument(
        "--timeout-margin",
        type=_positive_float,
        default=2.0,
        help="a trial is killed after budget x this + the setup allowance (default 2)",
    )
    sub.add_argument(
        "--setup-allowance",
        type=_positive_float,
        default=60.0,
        help="wall-clock seconds allowed for a trial's setup (default 60)",
    )
    sub.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=EXECUTORS[0],
        help="child-process (default: contains crashes and hangs) or in-process (debugging)",
    )


def _selected_bases(suite: str, workloads: str | None) -> list[str]:
    from optarena.workloads import registry, suites

    try:
        names = suites.workloads(suite)
    except suites.UnknownSuiteError as error:
        raise BadInput(str(error)) from error
    bases = [name for name in names if registry.get(name).spec.base is None]
    if workloads is None:
        return bases
    wanted = [name.strip() for name in workloads.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in bases]
    if not wanted or unknown:
        raise BadInput(
            f"--workloads must name base workloads of suite {suite!r} "
            f"({', '.join(bases)}); got {', '.join(unknown) or 'none'}"
        )
    return [name for name in bases if name in wanted]


def _config(args: argparse.Namespace) -> BenchmarkConfig:
    from optarena.harness.benchmark import BenchmarkConfig, Ruleset

    if args.ruleset not in tuple(Ruleset):
        raise BadInput(
            f"unknown ruleset {args.ruleset!r}; known: {', '.join(r.value for r in Ruleset)}"
        )
    return BenchmarkConfig.for_ruleset(
        args.ruleset,
        studies=args.studies,
        trials=args.trials,
        seed=args.seed,
        budget_factor=args.budget_factor,
        max_steps=args.max_steps,
        held_out=args.held_out,
    )


def _preflight(loaded, trials: Sequence[TrialSpec], data_dir: str) -> None:
    """Check, before anything runs, what would otherwise fail every trial the same way.

    Under self-tuning the submission must build an optimizer from ``hparams=None``; every
    workload's data must be there (offline datasets are prepared now, untimed).
    """
    from optarena.harness import runner
    from optarena.harness.benchmark import Ruleset
    from optarena.workloads import registry
    from optarena.workloads.catalog import DataNotPreparedError

    workloads = {spec.workload: registry.get(spec.workload) for spec in trials}
    if trials and trials[0].ruleset is Ruleset.SELF:
        workload = next(iter(workloads.values()))
        try:
            # One device: the benchmark process must not initialize an accelerator (and hold
            # its memory) that the trials' processes need.
            info = runner.workload_info(
                workload, loaded.submission, trials[0].budget_sec, num_devices=1
            )
            runner.make_optimizer(loaded.submission, None, info)
        except (ValueError, runner.SubmissionFailure) as error:
            raise BadInput(
                f"{loaded.name} cannot run under the self-tuning ruleset: {error}"
            ) from error
    for workload in workloads.values():
        try:
            workload.load_split("validation", data_dir)
        except DataNotPreparedError as error:
            raise BadInput(str(error)) from error


def _identity(spec: TrialSpec) -> BenchmarkIdentity:
    from optarena.leaderboard.store import BenchmarkIdentity

    return BenchmarkIdentity(
        submission_sha256=spec.submission_sha256,
        workload_sha256=spec.workload_sha256,
        ruleset=spec.ruleset.value,
        study=spec.study,
        trial=spec.trial,
        seed=spec.seed,
        budget_sec=spec.budget_sec,
        max_steps=spec.max_steps,
    )


def _stored_ids(url: str, trials: Sequence[TrialSpec]) -> dict[BenchmarkIdentity, int]:
    """Stored trial ids of the planned trials the store holds (a missing store holds none)."""
    from optarena.leaderboard.store import Store, StoreError

    try:
        store = Store(url, create=False)
    except StoreError:
        return {}
    try:
        found = {_identity(spec): store.benchmark_trial_id(_identity(spec)) for spec in trials}
    finally:
        store.close()
    return {identity: trial_id for identity, trial_id in found.items() if trial_id is not None}


def _executor(args: argparse.Namespace, data_dir: str) -> Executor:
    from optarena.harness.executors import ChildProcessExecutor, InProcessExecutor, WallClockLimit

    if args.executor == "in-process":
        return InProcessExecutor(data_dir)
    return ChildProcessExecutor(
        data_dir, WallClockLimit(margin=args.timeout_margin, setup_sec=args.setup_allowance)
    )


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class _Eta:
    """Time left: the budgets of the trials left, scaled by wall seconds per budget second so far.

    Before any trial of this run is done, every trial is assumed to use its whole budget.
    """

    def __init__(self, pending: Sequence[TrialSpec]):
        self._budget_left = sum(spec.budget_sec for spec in pending)
        self._budget_done = 0.0
        self._wall_done = 0.0

    def finished(self, outcome: TrialOutcome) -> None:
        self._budget_left -= outcome.spec.budget_sec
        self._budget_done += outcome.spec.budget_sec
        self._wall_done += outcome.wall_sec

    def seconds(self) -> float:
        ratio = self._wall_done / self._budget_done if self._budget_done else 1.0
        return max(self._budget_left, 0.0) * ratio

    def deadline(self) -> float:
        """When the benchmark should end, on the `time.monotonic` clock."""
        return time.monotonic() + self.seconds()


class _EtaColumn(ProgressColumn):
    """The time left to the estimated end, counting down between trials."""

    def render(self, task) -> Text:
        left = max(task.fields["eta_at"] - time.monotonic(), 0.0)
        return Text(f"ETA {_format_duration(left)}")


def _store_outcome(store: _LazyStore, loaded, outcome: TrialOutcome) -> int:
    """Store one finished trial; a store that fails is one line (earlier trials stay stored)."""
    from optarena.harness import provenance
    from optarena.leaderboard.store import StoreError, TrialSubmissionInfo
    from optarena.workloads import registry

    spec = outcome.spec
    try:
        return store.get().add_benchmark_trial(
            identity=_identity(spec),
            benchmark_seed=spec.benchmark_seed,
            submission=TrialSubmissionInfo(
                name=loaded.name, origin=loaded.origin, source_sha256=loaded.source_sha256
            ),
            spec=registry.get(spec.workload).spec,
            hparams=spec.hparams,
            result=outcome.result,
            provenance=provenance.collect(),
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
        )
    except StoreError as error:
        raise BadInput(str(error)) from error


def _run(
    executor: Executor,
    pending: Sequence[TrialSpec],
    store: _LazyStore,
    loaded,
    console: Console,
    *,
    done_before: int,
    total: int,
) -> list[tuple[TrialOutcome, int]]:
    """Run ``pending`` and store each outcome as it comes, with a progress display.

    Returns each outcome with its stored trial id.
    """
    eta = _Eta(pending)
    outcomes = []
    live = console.is_terminal
    with Progress(
        MofNCompleteColumn(),
        TextColumn("trials"),
        BarColumn(bar_width=20),
        _EtaColumn(table_column=Column(no_wrap=True, min_width=10)),
        TimeElapsedColumn(),
        TextColumn(
            "{task.description}",
            table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"),
        ),
        console=console,
        disable=not live,
        transient=True,
    ) as progress:
        task = progress.add_task(
            "starting", total=total, completed=done_before, eta_at=eta.deadline()
        )

        def on_start(spec: TrialSpec) -> None:
            progress.update(
                task, description=f"{spec.workload}, study {spec.study} trial {spec.trial}"
            )

        for outcome in executor.run(pending, on_start=on_start):
            trial_id = _store_outcome(store, loaded, outcome)
            eta.finished(outcome)
            outcomes.append((outcome, trial_id))
            done = done_before + len(outcomes)
            progress.update(task, completed=done, eta_at=eta.deadline())
            result = outcome.result
            console.print(
                f"[{done}/{total}] {outcome.spec.label}: {result.status.value} ({result.reason}), "
                f"{result.timed_sec:.2f} of {outcome.spec.budget_sec:g} timed s, "
                f"{outcome.wall_sec:.1f} s wall; trial {trial_id}; "
                f"ETA {_format_duration(eta.seconds())}",
                markup=False,
                soft_wrap=True,
                highlight=False,
            )
    return outcomes


def _summary(trials: Sequence[TrialSpec], trial_ids: Sequence[int], url: str) -> Table:
    """Per workload: planned trials and how the stored ones ended."""
    from optarena.leaderboard.store import Store

    store = Store(url, create=False)
    try:
        frame = store.benchmark_trials(trials[0].ruleset.value)
    finally:
        store.close()
    frame = frame[frame["trial_id"].isin(list(trial_ids))]
    table = Table(title=f"Benchmark of {trials[0].submission_name} ({trials[0].ruleset.value})")
    for column in ("workload", "base", "trials", "statuses"):
        table.add_column(column)
    planned = Counter(spec.workload for spec in trials)
    for workload, count in planned.items():
        rows = frame[frame["workload"] == workload]
        statuses = Counter(rows["status"])
        table.add_row(
            workload,
            rows["base_workload"].iloc[0] if len(rows) else "-",
            f"{len(rows)}/{count}",
            ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())),
        )
    return table


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Plan, skip what is stored, run the rest one at a time, store each trial as it ends."""
    from optarena.harness import benchmark
    from optarena.harness.executors import SpecMismatch
    from optarena.submissions import loader

    config = _config(args)
    bases = _selected_bases(args.suite, args.workloads)
    try:
        loaded = loader.load(args.submission)
    except loader.SubmissionError as error:
        raise BadInput(str(error)) from error
    store = _LazyStore(args.db)
    data_dir = _data_dir(args)
    variants = benchmark.draw_variants(bases, config.seed) if config.held_out else {}
    workloads = benchmark.benchmark_workloads(bases, variants)
    try:
        trials = benchmark.plan(loaded, args.submission, workloads, config)
    except benchmark.PlanError as error:
        raise BadInput(str(error)) from error
    stored = _stored_ids(store.url, trials)
    pending = [spec for spec in trials if _identity(spec) not in stored]
    _preflight(loaded, pending, data_dir)

    console = _console(stderr=True)
    console.print(
        f"{loaded.name}, {config.ruleset.value} ruleset, suite {args.suite}: "
        f"{len(workloads)} workloads x {config.studies} studies x {config.trials} trials "
        f"= {len(trials)} trials; {len(stored)} already stored, {len(pending)} to run. "
        f"Held-out variants drawn with seed {config.seed}: "
        + (", ".join(f"{base} -> {variant}" for base, variant in variants.items()) or "none"),
        markup=False,
        soft_wrap=True,
        highlight=False,
    )
    started = time.monotonic()
    try:
        outcomes = _run(
            _executor(args, data_dir),
            pending,
            store,
            loaded,
            console,
            done_before=len(stored),
            total=len(trials),
        )
    except SpecMismatch as error:
        raise BadInput(f"{error}; run the benchmark again to plan it anew") from error
    except KeyboardInterrupt:
        console.print(
            "interrupted: the trial in flight is lost, finished ones are stored; "
            "run the same command again to resume",
            markup=False,
            highlight=False,
        )
        return EXIT_INTERRUPTED
    failed = sum(1 for outcome, _ in outcomes if not outcome.result.reached)
    out = _console()
    trial_ids = [*stored.values(), *(trial_id for _, trial_id in outcomes)]
    if trial_ids:
        out.print(_summary(trials, trial_ids, store.url))
    out.print(
        f"{len(outcomes)} trials run ({failed} without reaching the target) in "
        f"{_format_duration(time.monotonic() - started)}, {len(stored)} skipped as already "
        f"stored; in {store.url}",
        markup=False,
        soft_wrap=True,
        highlight=False,
    )
    return EXIT_OK
