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
  While a trial is measured, the next one is traced and compiled on another core (its
  lookahead), so that neither waits on the trial core.
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
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    trial: Trial,
    program: OptimizerProgram,
    data_dir: str,
    cache: Any = None,
    ahead: Sequence[Any] = (),
) -> TrialResult:
    """Run one trial's exported optimizer in this process; any exception becomes an error or
    oom result. No submission code runs here. ``cache`` is a `runner.WorkloadCache` kept
    across the trials this process measures; ``ahead``, the trial's programs compiled ahead
    (`runner.CompiledAhead`), which it loads instead of compiling them."""
    from optarena.harness import runner
    from optarena.workloads import registry

    try:
        workload = registry.get(trial.workload)
        if workload.spec.sha256() != trial.spec.sha256():
            raise SpecMismatch(f"workload {trial.workload} changed since the benchmark was planned")
        cache = cache or runner.WorkloadCache()
        cache.add_ahead(ahead)
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
            trial, program, ahead = connection.recv()
        except (EOFError, OSError):
            return
        try:
            outcome: tuple[TrialResult, Provenance] | SpecMismatch = (
                measure(trial, program, data_dir, cache, ahead),
                provenance.collect(),
            )
        except SpecMismatch as error:
            outcome = error
        connection.send(outcome)


def _compiling_worker(data_dir: str, core: int | None, lifeline, connection) -> None:
    """A compiling process: compiles the programs of the trials it is sent ahead of their
    measurement (`runner.precompile`) and sends them back serialized, until its connection
    closes. A measuring-side process: it never imports a submission. A trial whose programs it
    cannot compile gets none; its measuring process then compiles (and fails) as it would."""
    from optarena.harness import runner
    from optarena.workloads import registry

    isolation.isolate(core)
    sandbox.die_with_parent(lifeline)
    cache = runner.WorkloadCache()
    while True:
        try:
            trial, program = connection.recv()
        except (EOFError, OSError):
            return
        try:
            workload = registry.get(trial.workload)
            ahead = []
            if workload.spec.sha256() == trial.spec.sha256():
                ahead = runner.precompile(
                    workload, program, trial.config, data_dir=data_dir, cache=cache
                )
        except Exception:
            ahead = []
        connection.send(ahead)


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
    """A running measuring-side process (``target``: `_measuring_worker` or
    `_compiling_worker`) and this end of its connections."""

    def __init__(self, data_dir: str, core: int | None, target: Callable = _measuring_worker):
        ctx = sandbox.context()
        self._lifeline, their_lifeline = ctx.Pipe(duplex=True)
        self.connection, theirs = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=target,
            args=(data_dir, core, their_lifeline, theirs),
            name="optarena measuring-side process",
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


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """A trial ready to measure: its program and what was compiled of it ahead, or why it
    cannot run."""

    program: OptimizerProgram | None = None
    ahead: tuple[Any, ...] = ()
    failure: TrialResult | None = None


class _Lookahead:
    """``fn(*args)`` in a daemon thread of this process (it only waits on child processes);
    `result` waits for it and returns what it returned or raises what it raised."""

    def __init__(self, fn: Callable[..., Any], *args: Any):
        self._outcome: tuple[bool, Any] = (False, RuntimeError("lookahead did not finish"))
        self._thread = threading.Thread(
            target=self._run, args=(fn, args), name="optarena lookahead", daemon=True
        )
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            self._outcome = (True, fn(*args))
        except BaseException as error:  # re-raised by `result` in the caller's thread
            self._outcome = (False, error)

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self.wait()
        done, value = self._outcome
        if not done:
            raise value
        return value


class ChildProcessExecutor:
    """Runs each trial in two child processes, one at a time, under wall-clock limits.

    A sandboxed tracing process (`optarena.harness.sandbox`) imports the submission and exports
    its optimizer (`trace`); a measuring process runs those programs by the timing rules
    (`measure`) and never imports submission code, so nothing a submission does can reach the
    clock, the data or the result. Both are forked from a fork server that has imported the
    harness (never a submission), so each starts in a fraction of a second; both are killed
    when the benchmark process dies. Each runs on one core (``core``, default:
    `isolation.trial_core`; `optarena.harness.isolation`).

    **Lookahead**: while a trial is measured, the next trial of the same submission is traced
    and its programs compiled (`runner.precompile`, in a compiling process that never imports
    a submission either) on another core (``lookahead_core``, default:
    `isolation.spare_core`; none where the process has one core, or with
    ``lookahead=False``). The measuring process then loads the compiled programs instead of
    compiling them (the same executable: the trial's results are bit for bit the same), and
    the compile seconds recorded are those spent ahead. The next trial's submission code has
    always ended before a trial's result is handed back, so the store's seal and the footprint
    checked after each trial cover it.
    """

    def __init__(
        self,
        data_dir: str,
        limit: WallClockLimit | None = None,
        *,
        core: int | None = None,
        lookahead: bool = True,
        lookahead_core: int | None = None,
    ):
        self.data_dir = data_dir
        self.limit = limit or WallClockLimit()
        self.core = isolation.trial_core() if core is None else core
        self.lookahead_core = (
            None
            if not lookahead
            else lookahead_core
            if lookahead_core is not None
            else isolation.spare_core(self.core)
        )
        self._worker: _Worker | None = None
        self._compiler: _Worker | None = None

    def run(
        self, trials: Iterable[Trial], *, on_start: OnStart | None = None
    ) -> Iterator[FinishedTrial]:
        trials = list(trials)
        ahead: _Lookahead | None = None
        try:
            for index, trial in enumerate(trials):
                if on_start is not None:
                    on_start(trial)
                started_at = _now()
                prepared = ahead.result() if ahead is not None else self._trace(trial, self.core)
                ahead = None
                following = trials[index + 1] if index + 1 < len(trials) else None
                if (
                    following is not None
                    and self.lookahead_core is not None
                    and following.submission == trial.submission
                ):
                    ahead = _Lookahead(self._prepare_ahead, following)
                finished = self._finish(trial, prepared, started_at)
                if ahead is not None:
                    ahead.wait()
                yield finished
        finally:
            self.close()

    def run_one(self, trial: Trial) -> FinishedTrial:
        """Run one trial, traced and compiled on its own core; the measuring process stays for
        the next call (`close` ends it), as it does between the trials of `run`."""
        started_at = _now()
        return self._finish(trial, self._trace(trial, self.core), started_at)

    def close(self) -> None:
        """End the measuring and compiling processes kept between trials, if any."""
        for worker in (self._worker, self._compiler):
            if worker is not None:
                worker.stop()
        self._worker = self._compiler = None

    def _trace(self, trial: Trial, core: int | None) -> _Prepared:
        try:
            return _Prepared(
                program=trace_in_sandbox(trial, limit_sec=self.limit.setup_sec, core=core)
            )
        except sandbox.SandboxFailure as failed:
            return _Prepared(failure=TrialResult.failed(failed.status, str(failed)))

    def _prepare_ahead(self, trial: Trial) -> _Prepared:
        """Trace ``trial`` and compile its programs on the lookahead core."""
        prepared = self._trace(trial, self.lookahead_core)
        if prepared.program is None:
            return prepared
        return dataclasses.replace(prepared, ahead=self._compile_ahead(trial, prepared.program))

    def _compile_ahead(self, trial: Trial, program: OptimizerProgram) -> tuple[Any, ...]:
        """The trial's programs compiled by the compiling process; none when it fails, runs
        past the trial's own wall-clock limit or dies (it is replaced for the next one)."""
        if self._compiler is None:
            self._compiler = _Worker(self.data_dir, self.lookahead_core, _compiling_worker)
        compiler = self._compiler
        try:
            compiler.connection.send((trial, program))
            if compiler.connection.poll(self.limit.seconds(trial.config.budget_sec)):
                return tuple(compiler.connection.recv())
        except (EOFError, OSError):
            pass
        self._compiler = None
        compiler.stop(kill=True)
        return ()

    def _finish(self, trial: Trial, prepared: _Prepared, started_at: dt.datetime) -> FinishedTrial:
        if prepared.failure is not None or prepared.program is None:
            result = prepared.failure or TrialResult.failed(TrialStatus.ERROR, "no program")
            where = provenance.collect()
        else:
            result, where = self._measure(trial, prepared.program, prepared.ahead)
        return FinishedTrial(
            trial=trial, result=result, provenance=where, started_at=started_at, finished_at=_now()
        )

    def _measure(
        self, trial: Trial, program: OptimizerProgram, ahead: tuple[Any, ...] = ()
    ) -> tuple[TrialResult, Provenance]:
        """The trial's result from the measuring process, and that process's provenance (this
        process's, when it died without a word). A measuring process that times out or dies is
        replaced for the next trial."""
        limit = self.limit.seconds(trial.config.budget_sec)
        start = time.monotonic()
        if self._worker is None:
            self._worker = _Worker(self.data_dir, self.core)
        worker = self._worker
        try:
            worker.connection.send((trial, program, ahead))
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
