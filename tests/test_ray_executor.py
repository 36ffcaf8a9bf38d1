"""The Ray executor on a real two-node Ray cluster on this machine: the same trials and the same
results as the child-process executor, each stored once, also when a node dies mid-trial.

The cluster (a head and one more node, each declaring one trial slot) is started once for the
module with ``ray start --block`` in sessions of their own, each node with its own ports and
temporary directory, and stopped by killing those sessions: nothing else on the machine is
touched. Under pytest-xdist the whole cluster runs on the worker's core.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
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

import pytest
from stored import stored_trials

from optarena.harness import cli
from optarena.harness.ray_executor import SLOT
from optarena.leaderboard.store import Store

BENCHMARK = [
    "benchmark",
    "--submission",
    "nadamw",
    "--ruleset",
    "self",
    "--suite",
    "quick",
    "--workloads",
    "digits_mlp",
    "--studies",
    "1",
    "--max-steps",
    "20",
    "--budget-factor",
    "100",
    "--held-out-variants",
    "1",
]
"""Two trials: digits_mlp and its held-out variant, one study each. The step cap ends them
(the budget is far away), so two trials sharing a core stop where one alone does."""
SLOTS = json.dumps({SLOT: 1})
RAY = [sys.executable, "-m", "ray.scripts.scripts"]
"""Ray's command line, from this interpreter (its ``ray`` script need not be on the PATH)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _node_ports() -> list[str]:
    """Every port a node would otherwise take by default, so two clusters never collide."""
    options = (
        "--node-manager-port",
        "--object-manager-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
        "--metrics-export-port",
    )
    return [word for option in options for word in (option, str(_free_port()))]


@dataclasses.dataclass
class Cluster:
    address: str
    head: subprocess.Popen
    node: subprocess.Popen
    root: Path
    env: dict[str, str]
    """What a process needs to reach the cluster: its token (Ray's token authentication)."""


def _ray_env() -> dict[str, str]:
    """This environment with a token of the cluster's own (Ray 2.60 turns token authentication
    on where ``~/.ray/auth_token`` exists; an explicit mode and token keep that file out of it),
    without ``$RAY_ADDRESS``."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def _start_node(
    arguments: list[str], temp_dir: Path, log: Path, env: dict[str, str]
) -> subprocess.Popen:
    with log.open("w") as stream:
        return subprocess.Popen(
            [
                *RAY,
                "start",
                "--block",
                "--num-cpus",
                "1",
                "--resources",
                SLOTS,
                "--object-store-memory",
                str(100 * 2**20),
                "--disable-usage-stats",
                "--temp-dir",
                str(temp_dir),
                *_node_ports(),
                *arguments,
            ],
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def _stop(process: subprocess.Popen) -> None:
    """Kill the node's whole session (its raylet, workers and their trial processes)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _wait_for_slots(
    address: str, count: int, nodes: list[subprocess.Popen], env: dict[str, str]
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for node in nodes:
            if node.poll() is not None:
                log = Path(node.args[node.args.index("--temp-dir") + 1]).with_suffix(".log")
                pytest.fail(f"a Ray node exited at start:\n{log.read_text()[-3000:]}")
        status = subprocess.run(
            [*RAY, "status", "--address", address], capture_output=True, text=True, env=env
        ).stdout
        found = re.search(rf"/(\d+)(?:\.0)? {SLOT}", status)
        if found and int(found.group(1)) >= count:
            return
        time.sleep(0.5)
    pytest.fail(f"the Ray cluster at {address} never had {count} trial slots")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    pytest.importorskip("ray")
    # Short: Ray's socket paths live under the temporary directory, and are limited in length.
    root = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = _ray_env()
    started = time.monotonic()
    head = _start_node(
        [
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--include-dashboard=false",
        ],
        root / "head",
        root / "head.log",
        env,
    )
    nodes = [head]
    try:
        _wait_for_slots(address, 1, nodes, env)
        node = _start_node(
            ["--address", address, "--node-ip-address", "127.0.0.1"],
            root / "node",
            root / "node.log",
            env,
        )
        nodes.append(node)
        _wait_for_slots(address, 2, nodes, env)
        print(f"two-node Ray cluster up in {time.monotonic() - started:.1f} s")
        yield Cluster(address, head, node, root, env)
    finally:
        for process in reversed(nodes):
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _results(db: str) -> dict[tuple, tuple]:
    """Stored benchmark trials by (workload, study, trial, seed) (`stored.stored_trials`)."""
    store = Store(db, create=False)
    results = stored_trials(store)
    store.close()
    return results


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> dict[tuple, tuple]:
    """The plan's results with the child-process executor."""
    db = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'reference.db'}"
    argv = [*BENCHMARK, "--db", db, "--data-dir", data_dir, "--executor", "child-process"]
    assert cli.main(argv) == 0
    results = _results(db)
    assert len(results) == 2
    assert all(points for *_, points in results.values())
    return results


def _ray_benchmark(db_file: Path, data_dir: str, cluster: Cluster, log: Path) -> subprocess.Popen:
    db = f"sqlite:///{db_file}"
    command = [sys.executable, "-m", "optarena", *BENCHMARK, "--db", db, "--data-dir", data_dir]
    with log.open("w") as stream:
        return subprocess.Popen(
            [*command, "--executor", "ray", "--ray-address", cluster.address],
            stdout=stream,
            stderr=subprocess.STDOUT,
            env=cluster.env,
        )


def test_ray_runs_every_trial_once_with_the_child_process_results(
    cluster, reference, tmp_path, data_dir
):
    db = f"sqlite:///{tmp_path / 'ray.db'}"
    log = tmp_path / "ray.log"
    started = time.monotonic()
    benchmark = _ray_benchmark(tmp_path / "ray.db", data_dir, cluster, log)
    assert benchmark.wait(timeout=300) == 0, log.read_text()
    print(f"benchmark on Ray: {time.monotonic() - started:.1f} s")
    assert _results(db) == reference
    # The two trials ran at the same time, one per slot.
    store = Store(db, create=False)
    trials = [store.trial(int(i)) for i in store.benchmark_trials()["trial_id"]]
    store.close()
    assert max(t["started_at"] for t in trials) < min(t["finished_at"] for t in trials)


def _trial_running_on(node: subprocess.Popen) -> bool:
    """Whether a process of ``node``'s session runs an optarena task (its title names it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.getsid(int(entry.name)) != node.pid:
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("ray::") and "optarena" in title:
                return True
    return False


def test_a_node_that_dies_mid_trial_costs_a_retry_and_every_trial_is_stored_once(
    cluster, reference, tmp_path, data_dir
):
    db = f"sqlite:///{tmp_path / 'killed.db'}"
    log = tmp_path / "killed.log"
    benchmark = _ray_benchmark(tmp_path / "killed.db", data_dir, cluster, log)
    try:
        deadline = time.monotonic() + 120
        while not _trial_running_on(cluster.node):
            assert benchmark.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no trial ever ran on the second node"
            time.sleep(0.2)
        time.sleep(1.0)  # into the trial: tracing, or measuring
        _stop(cluster.node)
        assert benchmark.wait(timeout=300) == 0, log.read_text()
    finally:
        if benchmark.poll() is None:
            benchmark.kill()
            benchmark.wait()
    # The killed trial ran again on the head, with the same results.
    assert _results(db) == reference


def _trial_processes(cluster: Cluster) -> list[int]:
    """The processes of either node's session that run an optarena task, or a trial's tracing
    or measuring process (children of a task's fork server)."""
    sessions = {cluster.head.pid, cluster.node.pid}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.getsid(int(entry.name)) not in sessions:
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if (title.startswith("ray::") and "optarena" in title) or "forkserver" in title:
                found.append(int(entry.name))
    return found


def test_a_driver_killed_mid_run_leaves_no_trial_running_and_a_rerun_stores_the_same_rows(
    cluster, reference, tmp_path, data_dir
):
    db_file = tmp_path / "driver.db"
    log = tmp_path / "driver.log"
    benchmark = _ray_benchmark(db_file, data_dir, cluster, log)
    rerun = None
    try:
        deadline = time.monotonic() + 120
        while not (_trial_running_on(cluster.head) or _trial_running_on(cluster.node)):
            assert benchmark.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no trial ever ran"
            time.sleep(0.1)
        # At once: a trial takes one to a few seconds from its task's start (tracing and
        # measuring; less on a warm worker), and the kill must land inside it.
        assert _trial_processes(cluster)
        benchmark.send_signal(signal.SIGKILL)
        benchmark.wait()
        killed_at = time.monotonic()
        # Ray ends the dead driver's tasks, and their trials' processes go with them.
        while left := _trial_processes(cluster):
            assert time.monotonic() - killed_at < 30, f"trial processes {left} outlived the driver"
            time.sleep(0.2)
        print(f"the killed driver's trials ended {time.monotonic() - killed_at:.1f} s after it")
        partial = _results(f"sqlite:///{db_file}") if db_file.exists() else {}
        assert all(partial[key] == reference[key] for key in partial)
        rerun = _ray_benchmark(db_file, data_dir, cluster, tmp_path / "rerun.log")
        assert rerun.wait(timeout=300) == 0, (tmp_path / "rerun.log").read_text()
    finally:
        for process in (benchmark, rerun):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    # Every trial stored once (`stored_trials` checks), as the uninterrupted run stores it.
    assert _results(f"sqlite:///{db_file}") == reference


FIXED = """
import optax
from optarena.submissions.api import Submission

SUBMISSION = Submission(
    name="fixed",
    make_optimizer=lambda hparams, info: optax.sgd(hparams["learning_rate"]),
    search_space=[{"learning_rate": 0.1}],
)
"""


EDITED_AFTER_PLANNING = """
import pathlib, sys
from optarena.harness import benchmark
from optarena.harness.benchmark import BenchmarkConfig
from optarena.harness.executors import SpecMismatch, make_executor
from optarena.submissions import loader

path, data_dir, address = sys.argv[1:]
config = BenchmarkConfig.for_ruleset("external", studies=1, trials=1, max_steps=5)
(trial,) = benchmark.plan(loader.load(path).info, path, ["digits_mlp"], config)
pathlib.Path(path).write_text(pathlib.Path(path).read_text() + "# edited\\n")
executor = make_executor("ray", data_dir, ray_address=address)
try:
    list(executor.run([trial]))
except SpecMismatch as error:
    print(f"refused: {error}")
finally:
    executor.close()
"""


def test_a_submission_edited_after_planning_is_refused_on_the_worker(cluster, tmp_path, data_dir):
    # In a process of its own: Ray reads its authentication settings once per process.
    path = tmp_path / "fixed.py"
    path.write_text(FIXED)
    completed = subprocess.run(
        [sys.executable, "-c", EDITED_AFTER_PLANNING, str(path), data_dir, cluster.address],
        capture_output=True,
        text=True,
        env=cluster.env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "refused: " in completed.stdout, completed.stderr
    assert "changed since the benchmark was planned" in completed.stdout


def test_without_ray_the_ray_executor_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    db = f"sqlite:///{tmp_path / 'none.db'}"
    assert cli.main([*BENCHMARK, "--db", db, "--executor", "ray"]) == 2
    error = capsys.readouterr().err
    assert error == (
        "optarena: error: the ray executor needs Ray, which is not installed: "
        "pip install 'optarena[ray]'\n"
    )
    assert not (tmp_path / "none.db").exists()


def test_a_ray_address_without_the_ray_executor_is_refused(capsys, tmp_path):
    db = f"sqlite:///{tmp_path / 'none.db'}"
    argv = [*BENCHMARK, "--db", db, "--ray-address", "127.0.0.1:1"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == "optarena: error: --ray-address needs --executor ray\n"


def test_a_ray_address_where_nothing_answers_is_one_line_and_exit_2(capsys, tmp_path):
    pytest.importorskip("ray")
    address = f"127.0.0.1:{_free_port()}"
    db = f"sqlite:///{tmp_path / 'none.db'}"
    assert cli.main([*BENCHMARK, "--db", db, "--executor", "ray", "--ray-address", address]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"optarena: error: cannot reach the Ray cluster at {address}: ")
    assert error.count("\n") == 1
