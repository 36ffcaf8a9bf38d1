"""A nightly run killed with SIGKILL at random points, then run again, leaves no orphan: every
trial is a benchmark trial or a recorded night's timing trial, every snapshot a recorded
night's, every folder of the output directory ``latest`` or a recorded night's report."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optarena.harness import nightly
from optarena.leaderboard import nightly_store
from optarena.leaderboard.store import Store

ROOT = Path(__file__).resolve().parent.parent
PLANNED, TIMED, BENCHMARKED, RECORDED = "nightly: ", "timing check: ", "[", "snapshot "
"""How the lines start that a night prints once planned, once its reference trial is timed,
once a benchmark trial is stored and once the night is recorded."""

KILLS = ((0, 0.0, 1.0), (1, 0.0, 1.0), (2, 0.0, 0.5), (2, 0.5, 1.0))
"""Where each kill lands: (phase, and a range of that phase of the uninterrupted night). The
phases are timing the reference, benchmarking, and recording (scoring, snapshot, report)."""


def _write_config(folder: Path) -> Path:
    """One submission, digits_mlp only, one study of one trial, 100 steps."""
    folder.mkdir()
    config = folder / "nightly.toml"
    config.write_text(
        f"""
suite = "quick"
workloads = ["digits_mlp"]
rulesets = ["external"]
studies = 1
trials = 1
max_steps = 100
budget_factor = 20
submissions = ["nadamw"]
store = "sqlite:///{folder / "nightly.db"}"
output_dir = "{folder / "out"}"
executor = "in-process"
timing_seeds = 1
timing_steps = 50
replicates = 20
"""
    )
    return config


def _start(config: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "optarena", "nightly", "--config", str(config)],
            cwd=ROOT,
            stdout=stream,
            stderr=stream,
            start_new_session=True,
        )


def _wait_for(process: subprocess.Popen, log: Path, prefix: str) -> float:
    """When ``process`` printed a line starting with ``prefix`` (or ended without it)."""
    deadline = time.monotonic() + 300
    while process.poll() is None:
        if any(line.startswith(prefix) for line in log.read_text().splitlines()):
            break
        assert time.monotonic() < deadline, f"no {prefix!r} in 300 s"
        time.sleep(0.02)
    return time.monotonic()


def _benchmarked(process: subprocess.Popen, log: Path) -> float:
    """When the night has stored its last benchmark trial, or timed its reference when it
    reuses every benchmark trial: its record is what remains."""
    timed = _wait_for(process, log, TIMED)
    counts = re.search(r"(\d+) trials, (\d+) already stored", log.read_text())
    if counts is None or counts[1] == counts[2]:
        return timed
    return _wait_for(process, log, BENCHMARKED)


def _planned(process: subprocess.Popen, log: Path) -> float:
    return _wait_for(process, log, PLANNED)


def _timed(process: subprocess.Popen, log: Path) -> float:
    return _wait_for(process, log, TIMED)


@pytest.mark.usefixtures("data_dir")
def test_sigkill_at_random_points_then_rerun_leaves_no_orphans(tmp_path):
    log = tmp_path / "uninterrupted.log"
    process = _start(_write_config(tmp_path / "uninterrupted"), log)
    phases = [_planned(process, log), _timed(process, log), _benchmarked(process, log)]
    phases.append(_wait_for(process, log, RECORDED))
    assert process.wait(timeout=600) == 0, log.read_text()

    folder = tmp_path / "killed"
    config = _write_config(folder)
    rng = random.Random(20261203)
    outcomes = []
    for attempt, (phase, low, high) in enumerate(KILLS):
        delay = rng.uniform(low, high) * (phases[phase + 1] - phases[phase])
        log = tmp_path / f"killed{attempt}.log"
        process = _start(config, log)
        since = (_planned, _timed, _benchmarked)[phase](process, log)
        time.sleep(max(0.0, since + delay - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        outcomes.append(process.wait())
    assert -signal.SIGKILL in outcomes, outcomes
    log = tmp_path / "rerun.log"
    assert _start(config, log).wait(timeout=600) == 0, log.read_text()

    with sqlite3.connect(folder / "nightly.db") as db:
        orphan_trials = db.execute(
            "SELECT id FROM trials WHERE id NOT IN (SELECT trial_id FROM benchmark_trials)"
            " AND id NOT IN (SELECT t.trial_id FROM nightly_timing t"
            " JOIN nightly_runs r ON r.id = t.run_id)"
        ).fetchall()
        orphan_snapshots = db.execute(
            "SELECT id FROM score_snapshots WHERE id NOT IN (SELECT snapshot_id FROM nightly_runs)"
        ).fetchall()
        report_dirs = [r for (r,) in db.execute("SELECT report_dir FROM nightly_runs ORDER BY id")]
    assert orphan_trials == [] and orphan_snapshots == [], (orphan_trials, orphan_snapshots)
    out = folder / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["latest", *(Path(d).name for d in report_dirs)]
    )
    assert all(Path(d).parent == out for d in report_dirs)
    last = Path(report_dirs[-1])
    for name in ("report.md", "index.html"):
        assert (out / "latest" / name).read_text() == (last / name).read_text()


def test_next_night_finishes_a_recorded_report_and_removes_other_partial_folders(tmp_path):
    """A night killed after its record but before its rename, with latest half-replaced."""
    out = tmp_path / "out"
    store = Store(f"sqlite:///{tmp_path / 'nightly.db'}")
    nightly_store.record_run(
        store,
        started_at=dt.datetime.now(dt.UTC),
        comparison_key="key",
        settings={},
        snapshot_id=1,
        previous_run_id=None,
        tolerance=0.1,
        regressions=0,
        report_dir=str(out / "2026-01-01-snapshot1"),
        timing=[],
        run_trial_ids=[],
    )
    for name in (".2026-01-01-snapshot1", ".2026-01-01-snapshot2", ".latest", ".latest-old"):
        (out / f"{name}.partial").mkdir(parents=True)
        (out / f"{name}.partial" / "report.md").write_text(name)
    nightly.recover_outputs(store, out)
    store.close()
    assert sorted(p.name for p in out.iterdir()) == ["2026-01-01-snapshot1", "latest"]
    assert (out / "latest" / "report.md").read_text() == ".2026-01-01-snapshot1"
