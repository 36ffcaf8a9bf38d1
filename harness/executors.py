"""Executors run planned trials and hand back what they produced; the caller alone stores them.

An `Executor` takes `Trial`s (plain data) and yields a `FinishedTrial` per trial as each
finishes (its result, and the provenance of the process that ran it), so an engine that runs
trials elsewhere (a cluster, a queue of machines) can plug in behind the same interface.
Two are built in:

- `ChildProcessExecutor` (the default): one trial at a time, each in two child processes: a
  tracing process, the only one that runs the submission's code, exports its optimizer as XLA
  programs (`optarena.harness.tracing`); a measuring process that never imports the submission
  runs them by the timing rules. Timing is not disturbed by other trials, and a crash or a
  hang is contained. The parent enforces a wall-clock limit on tracing
  (`WallClockLimit.setup_sec`) and one of ``budget x margin + setup allowance`` on measuring,
  and kills a child that runs past it (status ``timeout``); a child killed by SIGKILL without
  a result (the kernel's out-of-memory killer) is ``oom``; any other death is ``error``.
- `InProcessExecutor`: runs trials in this process, for tests and debugging (no containment).

In both, a trial whose submission code raises (``SystemExit`` included) or that raises is
``error`` with the exception's line as reason, a
``MemoryError`` or XLA ``RESOURCE_EXHAUSTED`` is ``oom``, and a non-finite loss is
``diverged`` (the runner's own status).

A third, `optarena.harness.ray_executor.RayExecutor`, runs each trial through a
`ChildProcessExecutor` on a node of a Ray cluster, several at once (Ray is an optional extra);
a fourth, `optarena.harness.slurm_executor.SlurmExecutor`, does so in a SLURM job per trial
(submitit is an optional extra).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from typing import Any, Protocol

from optarena.errors import UserError
from optarena.harness import isolation, provenance, sandbox
from optarena.harness.optimizer_program import OptimizerProgram, SubmissionFailure
from optarena.records import FinishedTrial, Provenance, Trial, TrialResult, TrialStatus

OnStart = Callable[[Trial], None]

MAX_REASON_CHARS = 500


class SpecMismatch(UserError, RuntimeError):
    """The submission or workload found at run time is not the one the trial was planned with."""


class Executor(Protocol):
    """Runs trials and yields each outcome as it finishes (in any order)."""

    def run(
        self, trials: Iterable[Trial], *, on_start: OnStart | None = None
    ) -> Iterator[FinishedTrial]:
        """Run ``trials``; ``on_start`` is called as each one starts."""
        ...


def _reason(error: BaseException) -> str:
    line = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    return line[:MAX_REASON_CHARS]


def _is_out_of_memory(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError) or "RESOURCE_EXHAUSTED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def trace(trial: Trial) -> OptimizerProgram:
    """Load the trial's submission and export its optimizer: the one step that runs submission
    code. Raises `SpecMismatch` when the submission or the workload can no longer be loaded, or
    no longer hash to what the trial was planned with, and `SubmissionFailure` when the
    submission's own code fails."""
    from optarena.harness import runner, tracing
    from optarena.submissions import loader
    from optarena.workloads import registry

    planned = trial.submission
    try:
        loaded = loader.load(planned.reference)
        workload = registry.get(trial.workload)
    except (loader.SubmissionError, registry.UnknownWorkloadError) as error:
        raise SpecMismatch(f"cannot load what the trial was planned with: {error}") from error
    if loaded.source_sha256 != planned.source_sha256:
        raise SpecMismatch(
            f"{planned.reference} changed since the benchmark was planned "
            f"(sha256 {loaded.source_sha256[:12]}, planned {planned.source_sha256[:12]})"
        )
    if workload.spec.sha256() != trial.spec.sha256():
        raise SpecMismatch(f"workload {trial.workload} changed since the benchmark was planned")
    config = trial.config
    return tracing.trace(
        workload, loaded.submission, config.hparams, config.budget_sec, runner.make_mesh().size
    )


def measure(
    trial: Trial, program: OptimizerProgram, data_dir: str, cache: Any = None
) -> TrialResult:
    """Run one trial's exported optimizer in this process; any exception becomes an error or
    oom result. No submission code runs here. ``cache`` is a `runner.WorkloadCache` kept
    across the trials this process measures."""
    from optarena.harness import runner
    from optarena.workloads import registry

    try:
        workload = registry.get(trial.workload)
        if workload.spec.sha256() != trial.spec.sha256():
            raise SpecMismatch(f"workload {trial.workload} changed since the benchmark was planned")
        return runner.run_program(workload, program, trial.config, data_dir=data_dir, cache=cache)
    except SpecMismatch:
        raise
    except Exception as error:
        return _failed(error)


def _failed(error: BaseException) -> TrialResult:
    status = TrialStatus.OOM if _is_out_of_memory(error) else TrialStatus.ERROR
    return TrialResult.failed(status, _reason(error))


def execute(trial: Trial, data_dir: str) -> TrialResult:
    """Trace and run one trial in this process (no containment); a failure of the submission's
    code is an error result, as is any other exception the trial raises."""
    try:
        program = trace(trial)
    except SpecMismatch:
        raise
    except Exception as error:
        return _failed(error)
    return measure(trial, program, data_dir)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class InProcessExecutor:
    """Runs each trial in this process, one at a time: no crash or hang containment."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir

    def run(
        self, trials: Iterable[Trial], *, on_start: OnStart | None = None
    ) -> Iterator[FinishedTrial]:
        for trial in trials:
            if on_start is not None:
                on_start(trial)
            started_at = _now()
            result = execute(trial, self.data_dir)
            yield FinishedTrial(
                trial=trial,
                result=result,
                provenance=provenance.collect(),
                started_at=started_at,
                finished_at=_now(),
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class WallClockLimit:
    """A trial's wall-clock limit: ``budget_sec * margin + setup_sec``.

    The margin covers untimed evaluations; the setup allowance covers starting the process,
    loading data and initializing the model. Tracing the submission (importing it, calling its
    factory, exporting its optimizer) has the setup allowance as its own limit.
    """

    margin: float = 2.0
    setup_sec: float = 60.0

    def __post_init__(self) -> None:
        if not (self.margin > 0 and self.setup_sec > 0):
            raise ValueError(
                f"need margin > 0 and setup_sec > 0, got {self.margin=}, {self.setup_sec=}"
            )

    def seconds(self, budget_sec: float) -> float:
        return budget_sec * self.margin + self.setup_sec


def _traced(trial: Trial) -> list[bytes]:
    """`trace` for a sandboxed process: the program as byte strings."""
    try:
        return trace(trial).to_frames()
    except SpecMismatch as error:
        raise sandbox.Refused(str(error)) from error


def _measuring_worker(data_dir: str, core: int | None, lifeline, connection) -> None:
    """A measuring process: measures the trials it is sent, one at a time, until its
    connection closes; never imports a submission. It keeps each workload's data and compiled
    evaluation between trials (`runner.WorkloadCache`)."""
    from optarena.harness import runner

    isolation.isolate(core)
    sandbox.die_with_parent(lifeline)
    cache = runner.WorkloadCache()
    while True:
        try:
            trial, program = connection.recv()
        except (EOFError, OSError):
            return
        try:
            outcome: tuple[TrialResult, Provenance] | SpecMismatch = (
                measure(trial, program, data_dir, cache),
                provenance.collect(),
            )
        except SpecMismatch as error:
            outcome = error
        connection.send(outcome)


def trace_in_sandbox(
    trial: Trial, *, limit_sec: float = WallClockLimit.setup_sec, core: int | None = None
) -> OptimizerProgram:
    """The trial's optimizer program, traced in a sandboxed process within ``limit_sec``.

    Raises `SandboxFailure` when it gives none (the submission's code failed, exited, hung),
    and `SpecMismatch` when the submission is no longer the one the trial was planned with.
    """
    try:
        frames = sandbox.call(
            _traced, (trial,), limit_sec=limit_sec, what="tracing the submission", core=core
        )
    except sandbox.Refused as error:
        raise SpecMismatch(str(error)) from None
    try:
        return OptimizerProgram.from_frames(frames)
    except SubmissionFailure as error:
        raise sandbox.SandboxFailure(TrialStatus.ERROR, _reason(error)) from None


class _Worker:
    """A running measuring process and this end of its connections."""

    def __init__(self, data_dir: str, core: int | None):
        ctx = sandbox.context()
        self._lifeline, their_lifeline = ctx.Pipe(duplex=True)
        self.connection, theirs = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_measuring_worker,
            args=(data_dir, core, their_lifeline, theirs),
            name="optarena measuring process",
        )
        with sandbox.caller_script_hidden():
            self.process.start()
        their_lifeline.close()
        theirs.close()

    def stop(self, *, kill: bool = False) -> None:
        self.connection.close()
        self._lifeline.close()
        if not kill:
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


class ChildProcessExecutor:
    """Runs each trial in two child processes, one at a time, under wall-clock limits.

    A sandboxed tracing process (`optarena.harness.sandbox`) imports the submission and exports
    its optimizer (`trace`); a measuring process runs those programs by the timing rules
    (`measure`) and never imports submission code, so nothing a submission does can reach the
    clock, the data or the result. Both are forked from a fork server that has imported the
    harness (never a submission), so each starts in a fraction of a second; both are killed
    when the benchmark process dies. Each runs on one core (``core``, default:
    `isolation.trial_core`; `optarena.harness.isolation`).
    """

    def __init__(
        self, data_dir: str, limit: WallClockLimit | None = None, *, core: int | None = None
    ):
        self.data_dir = data_dir
        self.limit = limit or WallClockLimit()
        self.core = isolation.trial_core() if core is None else core
        self._worker: _Worker | None = None

    def run(
        self, trials: Iterable[Trial], *, on_start: OnStart | None = None
    ) -> Iterator[FinishedTrial]:
        try:
            for trial in trials:
                if on_start is not None:
                    on_start(trial)
                yield self.run_one(trial)
        finally:
            self.close()

    def run_one(self, trial: Trial) -> FinishedTrial:
        """Run one trial; the measuring process stays for the next call (`close` ends it), as
        it does between the trials of `run`."""
        started_at = _now()
        try:
            program = trace_in_sandbox(trial, limit_sec=self.limit.setup_sec, core=self.core)
            result, where = self._measure(trial, program)
        except sandbox.SandboxFailure as failed:
            result = TrialResult.failed(failed.status, str(failed))
            where = provenance.collect()
        return FinishedTrial(
            trial=trial, result=result, provenance=where, started_at=started_at, finished_at=_now()
        )

    def close(self) -> None:
        """End the measuring process kept between trials, if any."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _measure(self, trial: Trial, program: OptimizerProgram) -> tuple[TrialResult, Provenance]:
        """The trial's result from the measuring process, and that process's provenance (this
        process's, when it died without a word). A measuring process that times out or dies is
        replaced for the next trial."""
        limit = self.limit.seconds(trial.config.budget_sec)
        start = time.monotonic()
        if self._worker is None:
            self._worker = _Worker(self.data_dir, self.core)
        worker = self._worker
        try:
            worker.connection.send((trial, program))
            if not worker.connection.poll(limit):
                self._worker = None
                worker.stop(kill=True)
                return TrialResult.failed(
                    TrialStatus.TIMEOUT,
                    f"no result after {time.monotonic() - start:.0f} s of wall clock (limit: "
                    f"budget {trial.config.budget_sec:g} s x {self.limit.margin:g} + "
                    f"{self.limit.setup_sec:g} s setup); killed",
                ), provenance.collect()
            outcome = worker.connection.recv()
        except (EOFError, OSError):
            self._worker = None
            worker.stop(kill=True)
            died = sandbox.died(worker.process.exitcode, "trial's process")
            return TrialResult.failed(died.status, str(died)), provenance.collect()
        if isinstance(outcome, SpecMismatch):
            raise outcome
        return outcome


class ExecutorKind(StrEnum):
    """The executors a command or a nightly config can choose."""

    CHILD_PROCESS = "child-process"
    """Each trial in its own process, under a wall-clock limit (the default)."""
    IN_PROCESS = "in-process"
    """Each trial in this process: no containment, for debugging."""
    RAY = "ray"
    """Each trial as a Ray task, in its own processes on a node of a Ray cluster."""
    SLURM = "slurm"
    """Each trial as a SLURM job (submitit), in its own processes on a node of the cluster."""


def make_executor(
    kind: ExecutorKind | str,
    data_dir: str,
    limit: WallClockLimit | None = None,
    *,
    ray_address: str | None = None,
    slurm_partition: str | None = None,
    slurm_gpus_per_trial: int = 0,
) -> Executor:
    """The executor of ``kind`` reading data from ``data_dir``; ``ray_address`` is the Ray
    cluster's (`optarena.harness.ray_executor.RayExecutor`), ``slurm_partition`` and
    ``slurm_gpus_per_trial`` what each SLURM job asks for
    (`optarena.harness.slurm_executor.SlurmExecutor`)."""
    kind = ExecutorKind(kind)
    if kind is ExecutorKind.SLURM:
        from optarena.harness.slurm_executor import SlurmExecutor

        return SlurmExecutor(
            data_dir,
            limit,
            local=ChildProcessExecutor,
            partition=slurm_partition,
            gpus_per_trial=slurm_gpus_per_trial,
        )
    if kind is ExecutorKind.RAY:
        from optarena.harness.ray_executor import RayExecutor

        return RayExecutor(data_dir, limit, local=ChildProcessExecutor, address=ray_address)
    if kind is ExecutorKind.IN_PROCESS:
        return InProcessExecutor(data_dir)
    return ChildProcessExecutor(data_dir, limit)
