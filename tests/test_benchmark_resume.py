"""A benchmark killed with SIGKILL at random points resumes to exactly the uninterrupted result."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from stored import stored_trials

from optarena.harness import cli
from optarena.leaderboard.store import Store
from optarena.workloads.data import DATA_DIR_ENV

ROOT = Path(__file__).resolve().parent.parent
MARKER = "OPTARENA_TEST_BENCHMARK_LOG"
"""An environment variable that marks the benchmark's processes and their children."""
BENCHMARK = (
    "benchmark",
    "--submission",
    "nadamw",
    "--ruleset",
    "external",
    "--suite",
    "quick",
    "--workloads",
    "digits_mlp",
    "--studies",
    "1",
    "--trials",
    "2",
    "--max-steps",
    "50",
    # Far from the budget: the step cap ends every trial, however loaded the machine.
    "--budget-factor",
    "100",
    "--seed",
    "5",
    "--held-out-variants",
    "1",
)


def _results(db: str) -> dict[tuple, tuple]:
    """Stored benchmark trials by (workload, study, trial, seed) (`stored.stored_trials`)."""
    store = Store(db, create=False)
    results = stored_trials(store)
    store.close()
    return results


def _start(db: str, data_dir: str, executor: str, log: Path) -> subprocess.Popen:
    with log.open("a") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "optarena", *BENCHMARK, "--db", db, "--executor", executor],
            cwd=ROOT,
            stdout=stream,
            stderr=stream,
            env={**os.environ, DATA_DIR_ENV: data_dir, MARKER: str(log)},
        )


def test_sigkill_at_random_points_then_resume_stores_each_trial_once_with_same_results(
    tmp_path, data_dir
):
    reference_db = f"sqlite:///{tmp_path / 'reference.db'}"
    assert (
        cli.main(
            [*BENCHMARK, "--db", reference_db, "--data-dir", data_dir, "--executor", "in-process"]
        )
        == 0
    )
    reference = _results(reference_db)
    assert len(reference) == 4  # digits_mlp and its held-out variant, 1 study x 2 trials

    db_file = tmp_path / "killed.db"
    db = f"sqlite:///{db_file}"
    log = tmp_path / "benchmark.log"
    rng = random.Random(20261125)
    stored_after_kills = []
    # Kill during start-up or the first trial, then twice after a trial was stored (so that the
    # next one is in flight, in a child process the first of those times), at random delays.
    for attempt, executor in enumerate(("in-process", "child-process", "in-process")):
        lines_before = _progress_lines(log)
        process = _start(db, data_dir, executor, log)
        if attempt:
            _wait_for_progress(log, lines_before, process)
        time.sleep(rng.uniform(0.0, 2.0) if attempt else rng.uniform(1.0, 6.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        _wait_until_no_process_has(f"{MARKER}={log}")
        partial = _results(db) if db_file.exists() else {}
        # One trial at a time, in plan order: what is stored is a prefix of the plan.
        assert list(partial) == list(reference)[: len(partial)]
        assert all(partial[key] == reference[key] for key in partial)
        stored_after_kills.append(len(partial))
    assert any(0 < count < len(reference) for count in stored_after_kills), stored_after_kills

    resumed = _start(db, data_dir, "child-process", log)
    assert resumed.wait(timeout=600) == 0, log.read_text()
    assert _results(db) == reference
    assert "Traceback" not in log.read_text(), "an orphaned trial ran on after a kill"


def _wait_until_no_process_has(variable: str) -> None:
    """Wait until no process (a trial's child, a fork server) outlives the killed benchmark.

    An orphaned trial would train on for seconds; the processes must go at once.
    """
    deadline = time.monotonic() + 3
    while survivors := [
        environ.parent.name
        for environ in Path("/proc").glob("[0-9]*/environ")
        if variable.encode() in _readable_environ(environ).split(b"\0")
    ]:
        assert time.monotonic() < deadline, f"processes {survivors} outlived the benchmark"
        time.sleep(0.1)


def _readable_environ(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # gone, or not ours
        return b""


def _progress_lines(log: Path) -> int:
    return log.read_text().count("\n[") if log.exists() else 0


def _wait_for_progress(log: Path, lines_before: int, process: subprocess.Popen) -> None:
    """Wait until ``process`` has stored one more trial (or ended)."""
    deadline = time.monotonic() + 300
    while _progress_lines(log) <= lines_before and process.poll() is None:
        assert time.monotonic() < deadline, "the benchmark stored nothing in 300 s"
        time.sleep(0.05)
