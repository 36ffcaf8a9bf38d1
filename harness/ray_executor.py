"""Runs trials on a Ray cluster: each trial is one Ray task, on a node with a free trial slot.

On the worker the task does what the child-process executor does for one trial (``local``:
`optarena.harness.executors.ChildProcessExecutor`): a sandboxed tracing process and a
measuring process, under the same wall-clock limits, with the same statuses and containment.
The driver (the benchmark command) only submits tasks and yields each `FinishedTrial` as it
comes back, so the campaign stores each trial as soon as it finishes, as it does locally.

Scheduling: each task asks for one unit of the custom resource ``optarena_trial_slot``
(`SLOT`) and one CPU, so a node runs at most as many trials at once as it declares slots
(``ray start ... --resources '{"optarena_trial_slot": 1}'``: one per node keeps trials from
sharing a machine, as budgets assume). A trial's processes run on the worker's last allowed
core (`optarena.harness.isolation.trial_core`), so two slots on one machine need two nodes
started on different cores (``taskset -c 0 ray start ...``). Tasks are submitted as slots
are free; the driver reads the cluster's slots again as trials finish and every few seconds
while it waits, so nodes that join late get trials.

Failures: a trial's own failures come back as results, as locally. A task whose worker or
node dies is retried once (`RETRIES`), on any node; if it fails again, the trial is an
``error`` (``oom`` when Ray's memory monitor killed it) with Ray's reason. A
`optarena.errors.UserError` raised on the worker (the submission or the workload is not the
one planned: `SpecMismatch`) is raised here, as locally; any other exception there is a
failure of the harness on that node (optarena not installed, say), not of the trial: it is
raised as `RayWorkerFailed` and nothing else runs.

Ray is imported only when a `RayExecutor` is made (it is an optional extra:
``optarena[ray]``). ``local`` is passed in (`optarena.harness.executors.make_executor` does)
rather than imported, since that module imports this one.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from optarena.errors import UserError
from optarena.harness import provenance
from optarena.records import FinishedTrial, Trial, TrialResult, TrialStatus

SLOT = "optarena_trial_slot"
"""The custom resource a node declares for each trial it may run at once."""
RETRIES = 1
"""Times a trial whose worker or node died is run again."""
POLL_SEC = 5.0
"""How often the driver, while it waits, looks for slots that joined the cluster."""

OnStart = Callable[[Trial], None]


class RayMissing(UserError, ImportError):
    """The Ray executor was chosen where Ray is not installed."""


class NoTrialSlots(UserError, RuntimeError):
    """The Ray cluster has no node that declares trial slots."""


class RayUnreachable(UserError, ConnectionError):
    """Nothing answers at the Ray cluster's address."""


class RayWorkerFailed(UserError, RuntimeError):
    """The harness itself failed on a Ray worker (not the trial): the node is not set up."""


def import_ray() -> Any:
    """The ``ray`` module; `RayMissing` (one line) when it is not installed."""
    try:
        import ray
    except ImportError:
        raise RayMissing(
            "the ray executor needs Ray, which is not installed: pip install 'optarena[ray]'"
        ) from None
    return ray


def check_reachable(address: str, timeout_sec: float = 10.0) -> None:
    """Raise `RayUnreachable` when nothing accepts a connection at a ``HOST:PORT`` address
    (Ray itself would retry for minutes); other forms (``ray://``, ``auto``) are left to Ray."""
    host, colon, port = address.rpartition(":")
    if not colon or not host or "://" in host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_sec).close()
    except OSError as error:
        raise RayUnreachable(
            f"cannot reach the Ray cluster at {address}: {error.strerror or error}"
        ) from None


_LOCAL: dict[tuple[Any, ...], Any] = {}
"""On a worker: the ``local`` executor kept for each (``local``, data directory, limit)."""


def run_one(local: Callable[..., Any], trial: Trial, data_dir: str, limit: Any) -> FinishedTrial:
    """On a worker: ``trial`` through the ``local(data_dir, limit)`` executor this worker
    process keeps across its tasks (its ``run_one``), so that its fork server and its
    measuring process, with each workload's data and compiled evaluation, serve every trial
    the worker runs, as the child-process executor's serve every trial of a local run."""
    key = (local, data_dir, limit)
    if key not in _LOCAL:
        _LOCAL[key] = local(data_dir, limit)
    return _LOCAL[key].run_one(trial)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:500]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RayExecutor:
    """Runs each trial as a Ray task through ``local`` on a node with a free trial slot.

    ``address``: the cluster's (``HOST:PORT`` or ``ray://HOST:PORT``); None: ``$RAY_ADDRESS``
    or the cluster started last on this machine, else a local one-slot cluster started here.
    The driver connects on the first `run` and stays connected; `close` disconnects (and
    stops a cluster it started), as does the end of the process.
    """

    def __init__(
        self,
        data_dir: str,
        limit: Any = None,
        *,
        local: Callable[..., Any],
        address: str | None = None,
    ):
        import_ray()
        if address is not None:
            check_reachable(address)
        self.data_dir = data_dir
        self.limit = limit
        self.local = local
        self.address = address
        self._connected = False

    def _connect(self, ray: Any) -> None:
        if self._connected or ray.is_initialized():
            return
        quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
        if self.address is not None:
            ray.init(address=self.address, **quiet)
        else:
            try:
                ray.init(address="auto", **quiet)
            except ConnectionError:
                ray.init(resources={SLOT: 1}, include_dashboard=False, **quiet)
        self._connected = True

    def close(self) -> None:
        """Disconnect from the cluster (stopping it if `run` started it)."""
        if self._connected:
            import_ray().shutdown()
            self._connected = False

    def _slots(self, ray: Any) -> int:
        return int(ray.cluster_resources().get(SLOT, 0))

    def run(
        self, trials: Iterable[Trial], *, on_start: OnStart | None = None
    ) -> Iterator[FinishedTrial]:
        """Run ``trials``, at most one per free slot at a time; ``on_start`` is called as each
        is submitted. Yields each trial as it finishes (in any order)."""
        pending = collections.deque(trials)
        if not pending:
            return
        ray = import_ray()
        self._connect(ray)
        if self._slots(ray) == 0:
            where = self.address or "found"
            raise NoTrialSlots(
                f"no node of the Ray cluster ({where}) declares {SLOT}: start each node with "
                f"ray start ... --resources '{{\"{SLOT}\": 1}}'"
            )
        task = ray.remote(
            num_cpus=1, resources={SLOT: 1}, max_retries=RETRIES, retry_exceptions=False
        )(run_one)
        running: dict[Any, tuple[Trial, dt.datetime]] = {}
        try:
            while pending or running:
                while pending and len(running) < max(1, self._slots(ray)):
                    trial = pending.popleft()
                    if on_start is not None:
                        on_start(trial)
                    ref = task.options(name=f"optarena: {trial.label}").remote(
                        self.local, trial, self.data_dir, self.limit
                    )
                    running[ref] = (trial, _now())
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SEC)
                for ref in ready:
                    trial, submitted = running.pop(ref)
                    yield self._finished(ray, ref, trial, submitted)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def _finished(self, ray: Any, ref: Any, trial: Trial, submitted: dt.datetime) -> FinishedTrial:
        """What the task gave back, or the trial as an ``error`` (``oom``) when Ray lost it."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, UserError):
                raise cause from None
            raise RayWorkerFailed(
                f"{trial.label}: the harness failed on a Ray worker, outside the trial: "
                f"{_first_line(cause or error)}; is optarena (the same version) installed "
                "on every node?"
            ) from None
        except ray.exceptions.RayError as error:
            status = (
                TrialStatus.OOM
                if isinstance(error, ray.exceptions.OutOfMemoryError)
                else TrialStatus.ERROR
            )
            result = TrialResult.failed(
                status,
                f"lost on the Ray cluster (retried up to {RETRIES} time(s)): "
                f"{type(error).__name__}: {_first_line(error)}",
            )
        return FinishedTrial(
            trial=trial,
            result=result,
            provenance=provenance.collect(),
            started_at=submitted,
            finished_at=_now(),
        )
