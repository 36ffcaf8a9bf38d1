"""The SLURM executor on a real one-node SLURM on this machine (``.ci/slurm`` starts it, with a
slot per CPU): the same trials and the same results as the child-process executor, each stored
once, also when a trial's job is cancelled while it runs, and when the benchmark command is
killed while its jobs run (a rerun cancels the dead command's jobs and runs their trials again).

The benchmark is driven through the library (`campaign.prepare`, then `campaign.run` with a
`SlurmExecutor`), as the benchmark command does. Each test keeps its jobs' files in a folder of
its own, and a job is told apart from other tests' jobs by its folder there (named by its id).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from stored import stored_trials

from optarena.harness import campaign
from optarena.harness.benchmark import BenchmarkConfig
from optarena.harness.executors import ChildProcessExecutor
from optarena.harness.slurm_executor import (
    DEFAULT_FOLDER,
    SlurmExecutor,
    cancel_orphans,
    driver_tag,
    job_states,
)
from optarena.leaderboard.store import Store

if shutil.which("sinfo") is None:
    pytest.skip(
        "no SLURM on this machine (sinfo not found): .ci/slurm starts a one-node SLURM",
        allow_module_level=True,
    )
pytest.importorskip("submitit", reason="pip install 'optarena[slurm]'")

CONFIG = BenchmarkConfig.for_ruleset(
    "self", studies=1, max_steps=20, budget_factor=100, held_out_variants=1
)
"""Two trials: digits_mlp and its held-out variant, one study each. The step cap ends them
(the budget is far away), so two trials sharing a machine stop where one alone does."""


@pytest.fixture(scope="module")
def slurm() -> None:
    """A SLURM that answers and has a node taking jobs."""
    answer = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    states = answer.stdout.split()
    if answer.returncode != 0 or not {"idle", "mix", "alloc"} & set(states):
        pytest.fail(f"SLURM has no node taking jobs ({answer.stderr or states}): run .ci/slurm")


def _benchmark(db: Path, data_dir: str, executor) -> dict[tuple, tuple]:
    """The plan run through ``executor`` into a new store at ``db``; the stored trials by
    (workload, study, trial, seed) (`stored.stored_trials`), and whether the trials overlapped."""
    # The store does not exist yet: two trials in flight seal it before the first is stored.
    store = Store(f"sqlite:///{db}")
    planned = campaign.prepare("nadamw", "quick", CONFIG, store, data_dir, workloads=["digits_mlp"])
    assert len(planned.pending) == 2
    campaign.run(planned, executor, store)
    results = stored_trials(store)
    times = [store.trial(int(i)) for i in store.benchmark_trials()["trial_id"]]
    store.close()
    results["overlap"] = max(t["started_at"] for t in times) < min(t["finished_at"] for t in times)
    return results


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> dict[tuple, tuple]:
    """The plan's results with the child-process executor."""
    db = tmp_path_factory.mktemp("reference") / "reference.db"
    results = _benchmark(db, data_dir, ChildProcessExecutor(data_dir))
    assert not results.pop("overlap")
    assert len(results) == 2
    assert all(status == "not_reached" and points for status, *_, points in results.values())
    return results


def test_slurm_runs_every_trial_once_with_the_child_process_results(
    slurm, reference, tmp_path, data_dir
):
    executor = SlurmExecutor(data_dir, local=ChildProcessExecutor, folder=tmp_path / "jobs")
    started = time.monotonic()
    results = _benchmark(tmp_path / "slurm.db", data_dir, executor)
    print(f"benchmark on SLURM: {time.monotonic() - started:.1f} s")
    # The two trials ran at the same time, one per slot.
    assert results.pop("overlap")
    assert results == reference
    # Each job's folder is removed once its trial is back.
    assert list((tmp_path / "jobs").iterdir()) == []


def _cancel_first_running_job(folder: Path, cancelled: list[str], stop: threading.Event) -> None:
    """Cancel the first job of ``folder`` seen running, a second into its run."""
    while not stop.is_set():
        jobs = [path.name for path in folder.glob("*") if path.name.isdigit()]
        running = [job for job, state in (job_states(jobs) or {}).items() if state == "RUNNING"]
        if running:
            time.sleep(1.0)  # into the trial: tracing, or measuring
            subprocess.run(["scancel", running[0]], check=True)
            cancelled.append(running[0])
            return
        time.sleep(0.2)


def test_a_cancelled_job_is_retried_and_every_trial_is_stored_once(
    slurm, reference, tmp_path, data_dir
):
    folder = tmp_path / "jobs"
    executor = SlurmExecutor(data_dir, local=ChildProcessExecutor, folder=folder)
    cancelled: list[str] = []
    stop = threading.Event()
    canceller = threading.Thread(target=_cancel_first_running_job, args=(folder, cancelled, stop))
    canceller.start()
    try:
        results = _benchmark(tmp_path / "cancelled.db", data_dir, executor)
    finally:
        stop.set()
        canceller.join()
    assert len(cancelled) == 1, "no job was ever seen running"
    # The cancelled job's trial ran again in a new job, with the same results; only the
    # cancelled job's folder stays (with its log), the others were removed with their trials.
    results.pop("overlap")
    assert results == reference
    assert sorted(path.name for path in folder.iterdir() if path.is_dir()) == cancelled


def _held_job(comment: str) -> str:
    """A job that would sleep, held in the queue (it takes no CPU), with ``comment``."""
    answer = subprocess.run(
        ["sbatch", "--parsable", "--hold", "--job-name", "optarena-test-held",
         "--comment", comment, "--output", "/dev/null", "--wrap", "sleep 300"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return answer.stdout.strip().split(";")[0]


def test_jobs_of_a_dead_driver_on_this_host_are_cancelled_and_no_others(slurm):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = driver_tag(finished.pid)  # taken while it lives: its start time is in the tag
    finished.wait()
    live = driver_tag()
    elsewhere = live.replace(f":{os.uname().nodename}:", ":another-login-node:", 1)
    reused = f"{live.rsplit(':', 1)[0]}:1"  # this process's id, started at another time
    jobs = {tag: _held_job(tag) for tag in (dead, live, elsewhere, reused, "no driver")}
    try:
        cancelled = cancel_orphans()
        states = job_states(jobs.values())
    finally:
        subprocess.run(["scancel", *jobs.values()], check=False)
    assert sorted(cancelled) == sorted([jobs[dead], jobs[reused]])
    assert {tag: states[job] for tag, job in jobs.items()} == {
        dead: "CANCELLED",
        live: "PENDING",
        elsewhere: "PENDING",
        reused: "CANCELLED",
        "no driver": "PENDING",
    }


def _driver_jobs(pid: int) -> dict[str, str]:
    """The jobs (all states) driver ``pid`` submitted, and their states."""
    answer = subprocess.run(
        ["squeue", "--me", "--noheader", "--states=all", "--format=%i|%T|%k"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [line.split("|", 2) for line in answer.stdout.splitlines()]
    return {job: state for job, state, comment in rows if comment.split(":")[2:3] == [str(pid)]}


def _command(db: Path, data_dir: str, log: Path) -> subprocess.Popen:
    with log.open("w") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "optarena", "benchmark", "--submission", "nadamw",
             "--ruleset", "self", "--suite", "quick", "--workloads", "digits_mlp",
             "--studies", "1", "--max-steps", "20", "--budget-factor", "100",
             "--held-out-variants", "1",
             "--executor", "slurm", "--db", f"sqlite:///{db}", "--data-dir", data_dir],
            stdout=stream, stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_a_killed_command_s_jobs_are_cancelled_by_the_rerun_which_stores_each_trial_once(
    slurm, reference, tmp_path, data_dir
):
    db = tmp_path / "killed.db"
    killed = _command(db, data_dir, tmp_path / "killed.log")
    deadline = time.monotonic() + 120
    while len(_driver_jobs(killed.pid)) < 2:  # both jobs submitted, at once
        assert killed.poll() is None, (tmp_path / "killed.log").read_text()
        assert time.monotonic() < deadline, "the command never submitted its jobs"
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    orphans = _driver_jobs(killed.pid)
    rerun = _command(db, data_dir, tmp_path / "rerun.log")
    assert rerun.wait(timeout=300) == 0, (tmp_path / "rerun.log").read_text()
    # The orphans were cancelled (unless one finished first: its result was never read) ...
    ended = _driver_jobs(killed.pid)
    assert set(ended) == set(orphans)
    assert set(ended.values()) <= {"CANCELLED", "COMPLETED"}, ended
    print(f"orphaned jobs: {orphans} -> {ended}")
    for job in orphans:  # the command's default folder keeps a dead driver's jobs' files
        shutil.rmtree(DEFAULT_FOLDER / job, ignore_errors=True)
    # ... and the rerun ran both trials in jobs of its own, storing each once, as the
    # uninterrupted run did.
    assert len(_driver_jobs(rerun.pid)) == 2
    store = Store(f"sqlite:///{db}", create=False)
    results = stored_trials(store)
    store.close()
    assert results == reference


def test_the_command_line_runs_a_benchmark_as_slurm_jobs(slurm, tmp_path, data_dir, capsys):
    from optarena.harness import cli

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    code = cli.main(
        ["benchmark", "--submission", "nadamw", "--ruleset", "self", "--suite", "quick",
         "--workloads", "digits_mlp", "--studies", "1", "--max-steps", "20",
         "--executor", "slurm", "--db", db, "--data-dir", data_dir]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert Store(db).benchmark_trials()["status"].tolist() == ["not_reached"]


def test_slurm_options_need_the_slurm_executor(tmp_path, capsys):
    from optarena.harness import cli

    code = cli.main(
        ["benchmark", "--submission", "nadamw", "--ruleset", "self", "--suite", "quick",
         "--slurm-partition", "debug", "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "need --executor slurm" in err.strip().splitlines()[-1], err
    assert not (tmp_path / "x.db").exists()
