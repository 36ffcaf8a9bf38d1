"""The same benchmark through the child-process executor, the Ray executor on a two-node Ray
cluster started on this machine, and the SLURM executor on this machine's SLURM, side by side.

It starts a head and one more node (``ray start --block``, one ``optarena_trial_slot`` and one
CPU each, each pinned to a core of its own when there are two), runs one submission's
benchmark on a suite into a fresh store with each executor (SLURM's where ``sbatch`` is found:
``.ci/slurm`` starts a one-node SLURM with a job slot per CPU), then with the child-process
executor again, as an A/A control of the machine's drift. It prints for each: the wall
clock, the scored-time share (the trials' timed seconds over the wall clock), the trials'
mean wall clock (`FinishedTrial.wall_sec`: where the trial ran, from its start to its end)
and their mean seconds from ``on_start`` (a Ray task's submission, as a slot is free; a SLURM
job first seen running) to stored; then each engine's wall-clock ratio to the child-process
executor's and its per-trial overhead (the difference of the latter means; with two trials in
flight, it includes waiting for the store). The Ray cluster's start is timed apart; the Ray
run's wall clock includes the driver's connection (a benchmark command pays it once), the
SLURM run's the jobs' time in the queue.

Run: ``python bench/fanout.py [--submission nadamw] [--suite quick] [--studies 1]
[--trials 2] [--seed 0] [--no-slurm]`` (the external ruleset).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from optarena.harness import campaign
from optarena.harness.benchmark import BenchmarkConfig
from optarena.harness.executors import ChildProcessExecutor, make_executor
from optarena.harness.ray_executor import SLOT
from optarena.harness.slurm_executor import SlurmExecutor
from optarena.leaderboard.store import Store
from optarena.records import FAILED_STATUSES
from optarena.workloads.data import default_data_dir

RAY = (sys.executable, "-m", "ray.scripts.scripts")
"""Ray's command line, from this interpreter."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _node(arguments: list[str], temp_dir: Path, core: int | None) -> subprocess.Popen:
    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    return subprocess.Popen(
        [
            *(*RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats"),
            *("--resources", json.dumps({SLOT: 1}), "--temp-dir", str(temp_dir)),
            *("--object-store-memory", str(100 * 2**20), "--node-ip-address", "127.0.0.1"),
            *arguments,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=pin,
    )


def _slots(address: str) -> int:
    status = subprocess.run([*RAY, "status", "--address", address], capture_output=True)
    for line in status.stdout.decode().splitlines():
        if line.strip().endswith(SLOT):
            return int(float(line.split("/")[1].split()[0]))
    return 0


@contextlib.contextmanager
def cluster(root: Path) -> Iterator[str]:
    """A head and one more node on this machine; yields the head's address. The nodes and this
    process share a token of their own (Ray's token authentication), whatever
    ``~/.ray/auth_token`` holds."""
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    cores = sorted(os.sched_getaffinity(0))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes = [
        _node(
            ["--head", "--port", str(port), "--include-dashboard=false"],
            root / "head",
            cores[-1] if len(cores) > 1 else None,
        )
    ]
    try:
        while _slots(address) < 1:
            time.sleep(0.5)
        nodes.append(
            _node(["--address", address], root / "node", cores[0] if len(cores) > 1 else None)
        )
        while _slots(address) < 2:
            time.sleep(0.5)
        yield address
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait()


def _run(executor, args, config, data_dir: str, folder: Path, name: str) -> dict[str, float]:
    db = folder / f"{name}.db"
    store = Store(f"sqlite:///{db}")
    spans: dict[tuple, float] = {}

    def on_start(trial) -> None:
        spans[trial.identity] = -time.monotonic()

    def on_finished(finished, _) -> None:
        spans[finished.trial.identity] += time.monotonic()

    started = time.monotonic()
    planned = campaign.prepare(args.submission, args.suite, config, store, data_dir)
    done = campaign.run(planned, executor, store, on_start=on_start, on_finished=on_finished)
    wall = time.monotonic() - started
    store.close()
    timed = sum(finished.result.timed_sec for finished, _ in done)
    return {
        "trials": len(done),
        "wall": wall,
        "share": timed / wall,
        "trial_wall": sum(finished.wall_sec for finished, _ in done) / len(done),
        "span": sum(spans.values()) / len(spans),
        "statuses": ", ".join(sorted({finished.result.status.value for finished, _ in done})),
        "failures": sorted(
            {
                f"{finished.trial.label}: {finished.result.status.value} ({finished.result.reason})"
                for finished, _ in done
                if finished.result.status in FAILED_STATUSES
            }
        ),
    }


COLUMNS = ("child-process", "ray (2 nodes)", "slurm (1 node)", "child-process A/A")


def _table(header: str, runs: dict[str, dict]) -> None:
    local = runs[COLUMNS[0]]
    print(header)
    print(f"{'':24}" + "".join(f"{name:>19}" for name in runs))
    for key, label, unit in (
        ("wall", "benchmark wall clock", "s"),
        ("share", "scored-time share", ""),
        ("trial_wall", "mean trial wall clock", "s"),
        ("span", "mean start-to-stored", "s"),
    ):
        print(f"{label:24}" + "".join(f"{run[key]:>18.3f}{unit:1}" for run in runs.values()))
    print(f"{'statuses':24}" + "".join(f"{run['statuses']:>19}" for run in runs.values()))
    for name, run in runs.items():
        for failure in run["failures"]:
            print(f"{name}: {failure}")
    for name, run in list(runs.items())[1:]:
        print(
            f"{name}: wall-clock ratio to child-process {run['wall'] / local['wall']:.2f}; "
            f"per-trial overhead (mean start-to-stored) {run['span'] - local['span']:+.2f} s "
            f"(where the trial ran: {run['trial_wall'] - local['trial_wall']:+.2f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submission", default="nadamw")
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--studies", type=int, default=1)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--no-slurm", dest="slurm", action="store_false", help="skip SLURM")
    args = parser.parse_args()
    data_dir = args.data_dir or default_data_dir()
    config = BenchmarkConfig.for_ruleset(
        "external", studies=args.studies, trials=args.trials, seed=args.seed, held_out_variants=1
    )
    slurm = args.slurm and shutil.which("sbatch") is not None
    # Data preparation is a one-off per machine, not part of a benchmark's cost.
    campaign.prepare(args.submission, args.suite, config, Store("sqlite://"), data_dir)
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="fanout-", dir="/tmp") as name:
        folder = Path(name)
        child = make_executor("child-process", data_dir)
        runs[COLUMNS[0]] = _run(child, args, config, data_dir, folder, "child")
        started = time.monotonic()
        with cluster(folder) as address:
            up = time.monotonic() - started
            executor = make_executor("ray", data_dir, ray_address=address)
            try:
                runs[COLUMNS[1]] = _run(executor, args, config, data_dir, folder, "ray")
            finally:
                executor.close()  # before the nodes go, or Ray ends this process
        if slurm:
            executor = SlurmExecutor(
                data_dir, local=ChildProcessExecutor, folder=folder / "slurm-jobs"
            )
            runs[COLUMNS[2]] = _run(executor, args, config, data_dir, folder, "slurm")
        runs[COLUMNS[3]] = _run(child, args, config, data_dir, folder, "child-again")
    _table(
        f"{args.submission} on {args.suite}, external, {args.studies} x {args.trials}: "
        f"{runs[COLUMNS[0]]['trials']} trials; two-node Ray cluster started in {up:.1f} s"
        + ("" if slurm else "; no SLURM here (sbatch not found)"),
        runs,
    )


if __name__ == "__main__":
    main()
