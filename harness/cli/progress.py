"""Live progress on stderr: a bar for one trial's budget, and one for a campaign's trials with
a line per finished trial, the trials running on how many workers, and the time left at the
rate of those workers."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

from optarena.harness.cli import common
from optarena.records import EvalPoint, FinishedTrial, Trial


@contextlib.contextmanager
def trial_bar(
    out: Console, trial: Trial, *, enabled: bool
) -> Iterator[Callable[[EvalPoint], None]]:
    """A bar of the trial's timed seconds against its budget, with its last validation value;
    yields the ``on_eval`` callback that moves it."""
    spec, budget = trial.spec, trial.config.budget_sec
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.completed:.1f}/{task.total:.0f} timed s"),
        TextColumn("{task.fields[status]}", markup=False),
        TimeElapsedColumn(),
        console=out,
        disable=not (enabled and out.is_terminal),
        transient=True,
    ) as progress:
        task = progress.add_task(trial.label, total=budget, status="compiling...")

        def on_eval(point: EvalPoint) -> None:
            value = point.validation.get(spec.metric, math.nan)
            progress.update(
                task,
                completed=min(point.timed_sec, budget),
                status=f"step {point.step}  val {spec.metric} {value:.4g} "
                f"(target {spec.validation_target:g})",
            )

        yield on_eval


def time_left(
    budget_left: float, wall_per_budget: float, *, workers: int, trials_left: int
) -> float:
    """Seconds until the trials left are done at the cluster's rate.

    ``budget_left`` budget seconds of trials take ``wall_per_budget`` wall seconds each (the
    rate seen so far, per trial); ``workers`` run trials side by side, but never more at once
    than the ``trials_left``, so the last trials are not counted as sharing the workers.
    """
    if budget_left < 0 or wall_per_budget < 0 or workers < 1 or trials_left < 0:
        raise ValueError(f"{budget_left=}, {wall_per_budget=}, {workers=}, {trials_left=}")
    return budget_left * wall_per_budget / max(1, min(workers, trials_left))


class Eta:
    """Time left: the budgets of the trials left, scaled by wall seconds per budget second so
    far, shared among the workers (`time_left`).

    Before any trial is done, every trial is assumed to use its whole budget. The workers are
    the most trials seen running at once: one for the local executors, a cluster's trial
    slots (Ray) or running jobs (SLURM) once they are busy.
    """

    def __init__(self, pending: Sequence[Trial]):
        self._budget_left = sum(trial.config.budget_sec for trial in pending)
        self._trials_left = len(pending)
        self._budget_done = 0.0
        self._wall_done = 0.0
        self.running = 0
        self.workers = 1

    def started(self, trial: Trial) -> None:
        del trial
        self.running += 1
        self.workers = max(self.workers, self.running)

    def finished(self, done: FinishedTrial) -> None:
        self.running = max(self.running - 1, 0)
        self._trials_left -= 1
        self._budget_left -= done.trial.config.budget_sec
        self._budget_done += done.trial.config.budget_sec
        self._wall_done += done.wall_sec

    def seconds(self) -> float:
        ratio = self._wall_done / self._budget_done if self._budget_done else 1.0
        return time_left(
            max(self._budget_left, 0.0),
            ratio,
            workers=self.workers,
            trials_left=max(self._trials_left, 0),
        )


def _workers(count: int) -> str:
    return f"{count} worker{'s' * (count != 1)}"


class _EtaColumn(ProgressColumn):
    """The time left to the estimated end, counting down between trials."""

    def render(self, task) -> Text:
        left = max(task.fields["eta_at"] - time.monotonic(), 0.0)
        return Text(f"ETA {common.format_duration(left)}")


class CampaignProgress:
    """A bar over trials (done of total, ETA) and a line per finished trial on ``out``.

    Use as a context manager; pass `on_start` and `on_finished` to the campaign.
    """

    def __init__(self, out: Console, pending: Sequence[Trial], *, done_before: int, total: int):
        self._out = out
        self._eta = Eta(pending)
        self._done = done_before
        self._total = total
        self._progress = Progress(
            MofNCompleteColumn(),
            TextColumn("trials"),
            BarColumn(bar_width=20),
            _EtaColumn(table_column=Column(no_wrap=True, min_width=10)),
            TimeElapsedColumn(),
            TextColumn("{task.fields[workers]}", markup=False),
            TextColumn(
                "{task.description}",
                markup=False,
                table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"),
            ),
            console=out,
            disable=not out.is_terminal,
            transient=True,
        )
        self._task = self._progress.add_task(
            "starting",
            total=total,
            completed=done_before,
            eta_at=self._deadline(),
            workers=self._workers(),
        )

    def _deadline(self) -> float:
        return time.monotonic() + self._eta.seconds()

    def _workers(self) -> str:
        return f"{self._eta.running} running on {_workers(self._eta.workers)}"

    def __enter__(self) -> CampaignProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def on_start(self, trial: Trial) -> None:
        self._eta.started(trial)
        self._progress.update(
            self._task,
            description=trial.label,
            eta_at=self._deadline(),
            workers=self._workers(),
        )

    def on_finished(self, done: FinishedTrial, trial_id: int) -> None:
        self._eta.finished(done)
        self._done += 1
        self._progress.update(
            self._task, completed=self._done, eta_at=self._deadline(), workers=self._workers()
        )
        result = done.result
        common.say(
            self._out,
            f"[{self._done}/{self._total}] {done.trial.label}: {result.status.value} "
            f"({result.reason}), {result.timed_sec:.2f} of {done.trial.config.budget_sec:g} "
            f"timed s, {done.wall_sec:.1f} s wall; trial {trial_id}; "
            f"{_workers(self._eta.workers)}; "
            f"ETA {common.format_duration(self._eta.seconds())}",
        )
