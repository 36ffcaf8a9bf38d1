"""Executors run planned trials and hand back what they produced; the caller alone stores them.

An `Executor` takes `Trial`s (plain data) and yields a `FinishedTrial` per trial as each
finishes (its result, and the provenance of the process that ran it), so an engine that runs
trials elsewhere (a cluster, a queue of machines) can plug in behind the same interface.
Two are built in:

- `ChildProcessExecutor` (the default): one trial at a time, each in a child process, so that
  timing is not disturbed by other trials and a crash or a hang is contained. The parent
  enforces a wall-clock limit of ``budget x margin + setup allowance`` and kills a child that
  runs past it (status ``timeout``); a child killed by SIGKILL without a result (the kernel's
  out-of-memory killer) is ``oom``; any other death is ``error``.
- `InProcessExecutor`: runs trials in this process, for tests and debugging (no containment).

In both, a trial that raises is ``error`` with the exception's line as reason, a
``MemoryError`` or XLA ``RESOURCE_EXHAUSTED`` is ``oom``, and a non-finite loss is
``diverged`` (the runner's own status).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib.machinery
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from typing import Protocol

from optarena.errors import UserError
from optarena.harness import isolation, provenance
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


def execute(trial: Trial, data_dir: str) -> TrialResult:
    """Run one trial in this process; any exception it raises becomes an error or oom result.

    Raises `SpecMismatch` (not a trial outcome) when the submission or the workload can no
    longer be loaded, or no longer hash to what the trial was planned with.
    """
    from optarena.harness import runner
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
    try:
        return runner.run_trial(workload, loaded.submission, trial.config, data_dir=data_dir)
    except Exception as error:
        status = TrialStatus.OOM if _is_out_of_memory(error) else TrialStatus.ERROR
        return TrialResult.failed(status, _reason(error))


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
    loading data and initializing the model.
    """

    margin: float = 2.0
    setup_sec: float = 60.0

    def __post_init__(self) -> None:
        if not (self.margin > 0 and self.setup_sec >= 0):
            raise ValueError(
                f"need margin > 0 and setup_sec >= 0, got {self.margin=}, {self.setup_sec=}"
            )

    def seconds(self, budget_sec: float) -> float:
        return budget_sec * self.margin + self.setup_sec


PRELOAD = (
    "optarena.harness.runner",
    "optarena.submissions.loader",
    "optarena.workloads.registry",
    "tensorflow_datasets",
)
"""Modules the fork server imports once, so that each trial's process starts without them."""


@contextlib.contextmanager
def _caller_script_hidden() -> Iterator[None]:
    """Start processes without the caller's ``__main__``.

    A new multiprocessing process first re-imports the parent's main script, which is only
    safe for scripts guarded by ``if __name__ == "__main__"`` and impossible for code read from
    stdin or typed in a notebook. A trial needs nothing from it (its target and arguments are
    importable from optarena), so while a child starts, ``__main__`` reads as a module named
    ``__main__``, which multiprocessing does not re-import.
    """
    main = sys.modules["__main__"]
    saved = main.__dict__.get("__spec__")
    main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        yield
    finally:
        main.__spec__ = saved


def _die_with_parent(connection) -> None:
    """Kill this process as soon as the parent's end of ``connection`` closes.

    The parent never writes, so the only thing a read can see is the end of the connection,
    when the benchmark process exits or is killed: then no orphan trial goes on training.
    """

    def watch() -> None:
        with contextlib.suppress(OSError, EOFError):
            connection.poll(None)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent watchdog", daemon=True).start()


def _child(trial: Trial, data_dir: str, core: int | None, connection) -> None:
    isolation.isolate(core)
    _die_with_parent(connection)
    try:
        outcome: tuple[TrialResult, Provenance] | SpecMismatch = (
            execute(trial, data_dir),
            provenance.collect(),
        )
    except SpecMismatch as error:
        outcome = error
    connection.send(outcome)
    connection.close()


class ChildProcessExecutor:
    """Runs each trial in its own child process, one at a time, under a wall-clock limit.

    Children are forked from a fork server that has imported the harness once, so a trial's
    process starts in a fraction of a second; it is killed when the benchmark process dies.
    Each child runs on one core (``core``, default: `isolation.trial_core`;
    `optarena.harness.isolation`).
    """

    def __init__(
        self, data_dir: str, limit: WallClockLimit | None = None, *, core: int | None = None
    ):
        self.data_dir = data_dir
        self.limit = limit or WallClockLimit()
        self.core = isolation.trial_core() if core is None else core
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(PRELOAD))

    def run(
        self, trials: Iterable[Trial], *, on_start: OnStart | None = None
    ) -> Iterator[FinishedTrial]:
        for trial in trials:
            if on_start is not None:
                on_start(trial)
            started_at = _now()
            result, where = self._run_one(trial)
            yield FinishedTrial(
                trial=trial,
                result=result,
                provenance=where,
                started_at=started_at,
                finished_at=_now(),
            )

    def _run_one(self, trial: Trial) -> tuple[TrialResult, Provenance]:
        """The trial's result and the provenance of the process that ran it (this process's,
        when the child died without a word)."""
        limit = self.limit.seconds(trial.config.budget_sec)
        receiver, sender = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_child,
            args=(trial, self.data_dir, self.core, sender),
            name=f"trial {trial.label}",
        )
        start = time.monotonic()
        with _caller_script_hidden():
            process.start()
        sender.close()  # the child holds the only other end: its death closes the connection
        try:
            if not receiver.poll(limit):
                process.kill()
                return TrialResult.failed(
                    TrialStatus.TIMEOUT,
                    f"no result after {time.monotonic() - start:.0f} s of wall clock (limit: "
                    f"budget {trial.config.budget_sec:g} s x {self.limit.margin:g} + "
                    f"{self.limit.setup_sec:g} s setup); killed",
                ), provenance.collect()
            try:
                outcome = receiver.recv()
            except EOFError:
                process.join()
                return self._died(process.exitcode), provenance.collect()
            if isinstance(outcome, SpecMismatch):
                raise outcome
            return outcome
        finally:
            receiver.close()
            if process.is_alive():
                process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()

    @staticmethod
    def _died(exitcode: int | None) -> TrialResult:
        if exitcode == -signal.SIGKILL:
            return TrialResult.failed(
                TrialStatus.OOM,
                "the trial's process was killed by SIGKILL before returning a result "
                "(the kernel's out-of-memory killer, most likely)",
            )
        if exitcode is not None and exitcode < 0:
            return TrialResult.failed(
                TrialStatus.ERROR,
                f"the trial's process died of signal {signal.Signals(-exitcode).name}",
            )
        return TrialResult.failed(
            TrialStatus.ERROR,
            f"the trial's process exited with status {exitcode} without a result",
        )


class ExecutorKind(StrEnum):
    """The executors a command or a nightly config can choose."""

    CHILD_PROCESS = "child-process"
    """Each trial in its own process, under a wall-clock limit (the default)."""
    IN_PROCESS = "in-process"
    """Each trial in this process: no containment, for debugging."""


def make_executor(
    kind: ExecutorKind | str, data_dir: str, limit: WallClockLimit | None = None
) -> Executor:
    """The executor of ``kind`` reading data from ``data_dir``."""
    if ExecutorKind(kind) is ExecutorKind.IN_PROCESS:
        return InProcessExecutor(data_dir)
    return ChildProcessExecutor(data_dir, limit)
