"""Runs trials on a SLURM cluster through submitit: each trial is one batch job.

On the node the job does what the child-process executor does for one trial (``local``:
`optarena.harness.executors.ChildProcessExecutor`): a sandboxed tracing process and a
measuring process, under the same wall-clock limits, with the same statuses and containment.
The driver (the benchmark command) submits one job per pending trial, all at once (SLURM's
queue decides when each runs), and yields each `FinishedTrial` as its job hands it back, so
the campaign stores each trial as soon as it finishes and stays the only writer of the store.

Scheduling: each job asks for ``cpus_per_trial`` CPUs (default one) and ``gpus_per_trial``
GPUs on one node, in ``partition`` (default: the cluster's default partition), for SLURM's
time limit of the trial's wall-clock limit (tracing and measuring) plus `JOB_SETUP_SEC`,
rounded up to whole minutes; that limit is a backstop, the trial's own limits end it first.
A trial's processes run on the last core the job was given
(`optarena.harness.isolation.trial_core`), so the cluster should pin jobs to their CPUs
(``TaskPlugin=task/affinity`` or ``task/cgroup``), as ``.ci/slurm``'s one-node cluster does.
Jobs' files (submitit's pickles and logs) are kept under ``folder``, one folder per job, on a
file system the nodes share with the driver; a job's folder is removed once its trial is back.

Progress: the driver looks for each job's result file every `RESULT_POLL_SEC` and asks
``squeue`` for the jobs' states every `STATE_POLL_SEC` (``on_start`` is called when a job is
first seen running). It does not use submitit's ``job.done()``, which reads states from
``sacct`` and so never sees a job end on a cluster without accounting (no slurmdbd).

Failures: a trial's own failures come back as results, as locally. A job that ends without a
result (cancelled, failed, preempted and not requeued, its node failed, or gone from the
queue) is submitted again once (`RETRIES`); if that one ends without a result too, the trial
is an ``error`` with SLURM's state and the job's last log line as reason. A job stopped by
SLURM's time limit is a ``timeout`` and one SLURM stopped for memory is ``oom``, neither
retried. A `optarena.errors.UserError` raised on the node (the submission or the workload is
not the one planned: `SpecMismatch`) is raised here, as locally; any other exception there is
a failure of the harness on that node (optarena not installed there, say), not of the trial:
it is raised as `SlurmJobFailed` and the jobs still queued are cancelled.

A driver that dies without cleaning up (SIGKILL, a lost login session) leaves its jobs queued
or running; no one reads what they hand back. Each job's comment names its driver
(`driver_tag`: this host, the driver's process id and start time), and making an executor
cancels the jobs of drivers on this host that are no longer alive (`cancel_orphans`; the
benchmark command makes it before planning), so a rerun of the command frees their CPUs and
runs their trials again in jobs of its own; an orphan that finished first is ignored. Jobs of
live drivers, and of drivers on other hosts, are left alone.

submitit is imported only when an executor is made (it is an optional extra:
``optarena[slurm]``).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from optarena.errors import UserError
from optarena.harness import provenance
from optarena.records import FinishedTrial, Trial, TrialResult, TrialStatus

RETRIES = 1
"""Times a trial whose job ended without a result is submitted again."""
JOB_SETUP_SEC = 120.0
"""Added to a trial's wall-clock limit for SLURM's: starting the job and importing the harness."""
RESULT_POLL_SEC = 0.5
"""How often the driver looks for jobs' result files."""
STATE_POLL_SEC = 5.0
"""How often the driver asks ``squeue`` for the jobs' states."""
RESULT_GRACE_SEC = 15.0
"""How long a job that ended well (or left the queue) may take to show its result file (a
shared file system may show it late) before it counts as lost."""
DEFAULT_FOLDER = Path.home() / ".cache" / "optarena" / "slurm"
DRIVER_TAG = "optarena-driver"
"""The first word of the comment of every job a driver submits (`driver_tag`)."""

OnStart = Callable[[Trial], None]

_RUNNING = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"}
_FINISHED = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}
_GONE = "GONE"
"""The state of a job ``squeue`` no longer lists (it ended ``MinJobAge`` seconds ago)."""


class SubmititMissing(UserError, ImportError):
    """The SLURM executor was chosen where submitit is not installed."""


class NoSlurm(UserError, RuntimeError):
    """The SLURM executor was chosen on a machine that cannot submit SLURM jobs."""


class SlurmJobFailed(UserError, RuntimeError):
    """The harness itself failed in a SLURM job (not the trial): the node is not set up."""


def import_submitit() -> Any:
    """The ``submitit`` module; `SubmititMissing` (one line) when it is not installed."""
    try:
        import submitit
    except ImportError:
        raise SubmititMissing(
            "the slurm executor needs submitit, which is not installed: "
            "pip install 'optarena[slurm]'"
        ) from None
    return submitit


@dataclasses.dataclass(frozen=True)
class Stopped:
    """A job that ended without its trial's result: why, and the trial's status if it does
    not run again (only an ``error`` is retried)."""

    why: str
    status: TrialStatus = TrialStatus.ERROR


_STATES = {
    _GONE: Stopped("no longer listed by squeue"),
    "TIMEOUT": Stopped("TIMEOUT: SLURM's time limit", TrialStatus.TIMEOUT),
    "OUT_OF_MEMORY": Stopped("OUT_OF_MEMORY", TrialStatus.OOM),
}
"""What a job that ended in these states without a result means (any other state: an error,
retried)."""
_SIGNALS = {
    signal.SIGTERM: Stopped("stopped by SIGTERM: cancelled or preempted"),
    signal.SIGUSR2: Stopped("SLURM's time limit is near (SIGUSR2)", TrialStatus.TIMEOUT),
}


def run_one(
    local: Callable[..., Any], trial: Trial, data_dir: str, limit: Any
) -> FinishedTrial | UserError | Stopped:
    """In a job: ``trial`` through a fresh ``local(data_dir, limit)`` executor. A `UserError`
    is handed back, not raised, so that the driver can raise it as it is; so is a `Stopped`
    when SLURM signalled the job while the trial ran (SIGTERM reaches the trial's processes
    too, so what they gave is no result)."""
    received: list[int] = []
    previous = {
        number: signal.signal(number, lambda number, _: received.append(number))
        for number in _SIGNALS
    }
    try:
        (done,) = local(data_dir, limit).run([trial])
    except UserError as error:
        return error
    except Exception:
        if not received:
            raise
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return _SIGNALS[received[0]] if received else done


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:500]


def job_states(job_ids: Iterable[str]) -> dict[str, str] | None:
    """Each job's SLURM state (``squeue``), `_GONE` for those it no longer lists; None when
    SLURM did not answer (the states are unknown, not changed)."""
    job_ids = list(job_ids)
    if not job_ids:
        return {}
    answer = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%i|%T", "--jobs", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=False,
    )
    if answer.returncode != 0:
        # squeue fails this way when none of the jobs is listed any more.
        return dict.fromkeys(job_ids, _GONE) if "Invalid job id" in answer.stderr else None
    listed = dict(line.split("|", 1) for line in answer.stdout.split())
    return {job_id: listed.get(job_id, _GONE) for job_id in job_ids}


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), None if there is
    no such process; ``""`` where ``/proc`` does not say (the process id alone then counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if not _alive(pid) else ""
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def driver_tag(pid: int | None = None) -> str:
    """The comment of the jobs driver ``pid`` (default: this process) submits: `DRIVER_TAG`,
    this host, the process id and its start time, which tell a live driver from a dead one
    (and from a later process given the same id)."""
    pid = os.getpid() if pid is None else pid
    return f"{DRIVER_TAG}:{socket.gethostname()}:{pid}:{_process_start(pid) or ''}"


def _orphaned(comment: str) -> bool:
    """Whether a job's comment names a driver on this host that is no longer alive."""
    tag, _, rest = comment.partition(":")
    host, _, rest = rest.partition(":")
    pid, _, started = rest.partition(":")
    if tag != DRIVER_TAG or host != socket.gethostname() or not pid.isdigit():
        return False
    now = _process_start(int(pid))
    return now is None or (bool(started) and bool(now) and now != started)


def cancel_orphans() -> list[str]:
    """Cancel this user's queued or running jobs whose driver, on this host, died; their ids.

    Nothing is cancelled when SLURM does not answer."""
    answer = subprocess.run(
        ["squeue", "--me", "--noheader", "--states=PENDING,RUNNING,SUSPENDED,CONFIGURING",
         "--format=%i|%k"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if answer.returncode != 0:
        return []
    lines = (line.split("|", 1) for line in answer.stdout.splitlines() if "|" in line)
    orphans = [job_id.strip() for job_id, comment in lines if _orphaned(comment.strip())]
    if orphans:
        subprocess.run(["scancel", *orphans], capture_output=True, check=False)
    return orphans


@dataclasses.dataclass
class _Job:
    """A submitted job, the trial it runs and what the driver has seen of it."""

    job: Any
    trial: Trial
    attempt: int
    submitted_at: dt.datetime
    state: str = "PENDING"
    ended_at: float | None = None
    """When the driver first saw the job end (or leave the queue) without a result file."""


class SlurmExecutor:
    """Runs each trial as a SLURM job (submitit) through ``local`` on a node of the cluster.

    ``limit`` is the trials' `WallClockLimit` (None: ``local``'s default); ``partition``,
    ``gpus_per_trial`` and ``cpus_per_trial`` are what each job asks for; ``folder`` keeps the
    jobs' files, on a file system the nodes share.
    """

    def __init__(
        self,
        data_dir: str,
        limit: Any = None,
        *,
        local: Callable[..., Any],
        partition: str | None = None,
        gpus_per_trial: int = 0,
        cpus_per_trial: int = 1,
        folder: str | Path = DEFAULT_FOLDER,
    ):
        if gpus_per_trial < 0 or cpus_per_trial < 1:
            raise ValueError(
                f"need gpus_per_trial >= 0 and cpus_per_trial >= 1, got {gpus_per_trial=}, "
                f"{cpus_per_trial=}"
            )
        submitit = import_submitit()
        if shutil.which("sbatch") is None or shutil.which("squeue") is None:
            raise NoSlurm(
                "the slurm executor submits jobs with sbatch, which is not on this machine's "
                "PATH: run it on a SLURM login node (.ci/slurm starts a one-node SLURM here)"
            )
        self.data_dir = data_dir
        self.local = local
        self.limit = local(data_dir, limit).limit
        self.partition = partition
        self.folder = Path(folder)
        self.orphans_cancelled = cancel_orphans()
        """The jobs of dead drivers on this host cancelled when this executor was made."""
        self._executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster="slurm")
        parameters: dict[str, Any] = {"nodes": 1, "tasks_per_node": 1}
        parameters["slurm_comment"] = driver_tag()
        parameters["cpus_per_task"] = cpus_per_trial
        if gpus_per_trial:
            parameters["gpus_per_node"] = gpus_per_trial
        if partition is not None:
            parameters["slurm_partition"] = partition
        self._executor.update_parameters(**parameters)

    def timeout_min(self, trial: Trial) -> int:
        """SLURM's time limit for ``trial``'s job: its tracing and measuring limits plus
        `JOB_SETUP_SEC`, in whole minutes."""
        seconds = self.limit.setup_sec + self.limit.seconds(trial.config.budget_sec)
        return math.ceil((seconds + JOB_SETUP_SEC) / 60)

    def _submit(self, trial: Trial, attempt: int) -> _Job:
        self._executor.update_parameters(
            name=f"optarena: {trial.label}", timeout_min=self.timeout_min(trial)
        )
        job = self._executor.submit(run_one, self.local, trial, self.data_dir, self.limit)
        return _Job(job, trial, attempt, _now())

    def run(
        self, trials: Iterable[Trial], *, on_start: OnStart | None = None
    ) -> Iterator[FinishedTrial]:
        """Submit a job per trial and yield each trial as its job hands it back (in any order);
        ``on_start`` is called as each job is first seen running."""
        jobs: collections.deque[_Job] = collections.deque()
        started: set[tuple[Any, ...]] = set()

        def start(trial: Trial) -> None:
            if trial.identity not in started:
                started.add(trial.identity)
                if on_start is not None:
                    on_start(trial)

        asked = -math.inf
        try:
            for trial in trials:
                jobs.append(self._submit(trial, 0))
            while jobs:
                if time.monotonic() - asked >= STATE_POLL_SEC:
                    asked = time.monotonic()
                    states = job_states(entry.job.job_id for entry in jobs)
                    for entry in jobs:
                        if states is not None:
                            entry.state = states[entry.job.job_id]
                        if entry.state in _RUNNING:
                            start(entry.trial)
                for entry in list(jobs):
                    if entry.job.paths.result_pickle.exists():
                        outcome = self._outcome(entry)
                    elif self._ended(entry):
                        outcome = _STATES.get(entry.state, Stopped(entry.state))
                    else:
                        continue
                    jobs.remove(entry)
                    start(entry.trial)
                    if isinstance(outcome, FinishedTrial):
                        self._remove(entry)
                        yield outcome
                    elif entry.attempt < RETRIES and outcome.status is TrialStatus.ERROR:
                        jobs.append(self._submit(entry.trial, entry.attempt + 1))
                    else:
                        yield self._failed(entry, outcome)
                time.sleep(RESULT_POLL_SEC)
        finally:
            for entry in jobs:
                entry.job.cancel(check=False)

    def _ended(self, entry: _Job) -> bool:
        """Whether the job ended without a result file (given time to show it, where SLURM
        says it ended well or no longer lists it)."""
        if entry.state not in _FINISHED and entry.state != _GONE:
            return False
        if entry.state not in ("COMPLETED", _GONE):
            return True
        if entry.ended_at is None:
            entry.ended_at = time.monotonic()
        return time.monotonic() - entry.ended_at > RESULT_GRACE_SEC

    def _outcome(self, entry: _Job) -> FinishedTrial | Stopped:
        """What the job handed back; raises what the harness raised there."""
        try:
            outcome = entry.job.result()
        except Exception as error:
            raise SlurmJobFailed(
                f"{entry.trial.label}: the harness failed in SLURM job {entry.job.job_id}, "
                f"outside the trial: {_last_line(str(error))}; is optarena (the same "
                f"version) installed on every node? Log: {entry.job.paths.stderr}"
            ) from None
        if isinstance(outcome, UserError):
            raise outcome
        return outcome

    def _remove(self, entry: _Job) -> None:
        """Remove the job's files (and submitit's link to its batch script)."""
        shutil.rmtree(entry.job.paths.folder, ignore_errors=True)
        for link in self.folder.glob(".submission_file_*.sh"):
            if link.is_symlink() and not link.exists():
                link.unlink(missing_ok=True)

    def _failed(self, entry: _Job, stopped: Stopped) -> FinishedTrial:
        """The trial as a failure: its last job ended without a result."""
        reason = (
            f"SLURM job {entry.job.job_id} ended without a result ({stopped.why}; "
            f"{entry.attempt + 1} job(s) in all)"
        )
        try:
            log = _last_line(entry.job.paths.stderr.read_text(errors="replace"))
        except OSError:
            log = ""
        if log:
            reason += f": {log}"
        return FinishedTrial(
            trial=entry.trial,
            result=TrialResult.failed(stopped.status, reason[:500]),
            provenance=provenance.collect(),
            started_at=entry.submitted_at,
            finished_at=_now(),
        )
