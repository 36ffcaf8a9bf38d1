"""The store on a PostgreSQL server: the commands end to end, concurrent benchmark drivers,
trial ids in commit order, the nightly tables, and bad or unreachable server URLs.

The store's own tests (test_store*.py, test_benchmark_store.py, test_leaderboard.py) run on
SQLite and PostgreSQL through the ``store_url`` fixture; the server is `postgres.Server`.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_benchmark_store import _add_benchmark
from test_store import _finished, _result

from optarena.harness import cli
from optarena.leaderboard import nightly_store, snapshots
from optarena.leaderboard import store as store_module
from optarena.leaderboard.store import Store, StoreError
from optarena.scoring.report import Settings
from optarena.workloads.data import DATA_DIR_ENV

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK = (
    "benchmark",
    "--submission",
    "nadamw",
    "--ruleset",
    "self",
    "--suite",
    "quick",
    "--workloads",
    "digits_mlp",
    "--max-steps",
    "20",
)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_benchmark_score_and_leaderboard_on_postgresql(capsys, postgres_url, data_dir):
    db = postgres_url
    code, out, err = _run(
        capsys, *BENCHMARK, "--studies", "1", "--executor", "in-process",
        "--data-dir", data_dir, "--db", db,
    )  # fmt: skip
    assert code == 0, err
    assert "1 trials run" in out
    store = Store(db, create=False)
    assert store._sqlite_file() is None and store.exists()
    (trial_id,) = store.benchmark_trials()["trial_id"]
    assert store.last_trial_id() == trial_id and len(store.eval_points(int(trial_id))) > 0
    code, out, err = _run(capsys, "score", "--db", db, "--replicates", "20")
    assert code == 0, err
    assert "snapshot 1 saved" in out
    code, out, err = _run(capsys, "leaderboard", "--db", db)
    assert code == 0, err
    assert "snapshot 1" in out and "nadamw" in out
    store.close()


def test_two_benchmark_drivers_on_one_postgresql_store_store_each_trial_once(
    tmp_path, postgres_url, data_dir
):
    """Two drivers at once whose plans overlap (study 0): the trial both ran is stored once,
    none is missing, and neither driver takes the other's trials for edits."""
    logs = [tmp_path / f"driver{i}.log" for i in range(2)]
    drivers = []
    for studies, log in zip(("1", "2"), logs, strict=True):
        with log.open("w") as stream:
            drivers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "optarena",
                        *BENCHMARK,
                        "--studies",
                        studies,
                        "--executor",
                        "in-process",
                        "--db",
                        postgres_url,
                    ],
                    cwd=ROOT,
                    stdout=stream,
                    stderr=stream,
                    env={**os.environ, DATA_DIR_ENV: data_dir},
                )
            )
    for driver, log in zip(drivers, logs, strict=True):
        assert driver.wait(timeout=300) == 0, log.read_text()
    for log in logs:
        assert "Traceback" not in log.read_text() and "edited" not in log.read_text()
    store = Store(postgres_url, create=False)
    frame = store.benchmark_trials()
    assert sorted(frame["study"]) == [0, 1]
    assert not frame.duplicated(["submission", "workload", "study", "trial", "seed"]).any()
    assert sorted(store.trials()["id"]) == sorted(frame["trial_id"])
    assert all(store.eval_points(int(i)) for i in frame["trial_id"])
    store.close()


def test_trial_ids_follow_the_order_trials_are_committed_in(store_url):
    """A writer that starts while another's trial is not committed yet waits for it, so a
    reader never sees a larger id before a smaller one (the campaign's tamper check reads
    the trials up to the largest id it saw, and expects them to stay as they were)."""
    first, second, reader = Store(store_url), Store(store_url), Store(store_url)
    # The submission and workload rows exist: the writers below have nothing else to share.
    reader.add(_finished(_result(), seed=0))
    ids: list[int] = []
    with first.transaction() as session:
        ids.append(first.add(_finished(_result(), seed=1), session=session))
        writer = threading.Thread(
            target=lambda: ids.append(second.add(_finished(_result(), seed=2)))
        )
        writer.start()
        writer.join(timeout=1.0)
        last = reader.last_trial_id()
        sealed = reader.digest(last)
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert ids[0] < ids[1]
    assert reader.digest(last) == sealed
    assert reader.last_trial_id() == ids[1]
    for store in (first, second, reader):
        store.close()


def test_nightly_tables_round_trip(store_url):
    store = Store(store_url)
    trial_id = _add_benchmark(store, _result())
    snapshot_id, _ = snapshots.score_store(store, Settings(replicates=10), version="test")
    started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    run_id = nightly_store.record_run(
        store,
        started_at=started,
        comparison_key="key",
        settings={"suite": "quick", "tolerance": None},
        snapshot_id=snapshot_id,
        previous_run_id=None,
        tolerance=0.1,
        regressions=0,
        report_dir="/reports/night1",
        timing=[(trial_id, "toy", 11)],
        run_trial_ids=[trial_id],
    )
    night = nightly_store.previous_run(store, "key")
    assert (night.id, night.snapshot_id) == (run_id, snapshot_id)
    # In UTC on PostgreSQL, whatever the server's zone; SQLite keeps no zone.
    assert night.started_at in (started, started.replace(tzinfo=None))
    assert str(night.started_at) == str(started) or store.url.startswith("sqlite:")
    assert night.settings == {"suite": "quick", "tolerance": None}
    assert nightly_store.previous_run(store, "other") is None
    assert nightly_store.report_dirs(store) == ["/reports/night1"]
    timing = nightly_store.timing_trials(store, [run_id])
    assert timing[["trial_id", "workload", "seed"]].values.tolist() == [[trial_id, "toy", 11]]
    assert timing["time_to_target_sec"].tolist() == [1.5]
    assert nightly_store.nights_of_trials(store).to_dict() == {trial_id: run_id}
    assert snapshots.load_snapshot(store).id == snapshot_id
    store.close()


@pytest.mark.parametrize("command", [("leaderboard",), ("score",), ("trials",)])
def test_unreachable_postgresql_is_one_line_and_exit_2(capsys, command):
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/x"
    code, out, err = _run(capsys, *command, "--db", url)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "cannot open store" in err and "Traceback" not in err
    assert "secret" not in err and "nobody:***@127.0.0.1:1/x" in err


def test_a_missing_database_is_one_line_and_exit_2(capsys, postgres_server):
    code, _, err = _run(capsys, "leaderboard", "--db", postgres_server.url("nowhere"))
    assert code == 2 and err.count("\n") == 1 and 'database "nowhere" does not exist' in err


def test_a_server_that_never_answers_times_out(monkeypatch):
    """A server that accepts the connection and says nothing: an error after the connect
    timeout, not a hang."""
    monkeypatch.setattr(store_module, "CONNECT_TIMEOUT_SEC", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(StoreError, match="cannot open store") as error:
            Store(f"postgresql+psycopg://nobody@127.0.0.1:{port}/x").check_writable()
    assert "\n" not in str(error.value)
