"""Several processes writing to one fresh store at once lose nothing and duplicate nothing."""

from __future__ import annotations

import datetime as dt
import multiprocessing

from optarena.harness import benchmark, provenance
from optarena.harness.benchmark import BenchmarkConfig
from optarena.leaderboard.store import Store
from optarena.records import FinishedTrial, TrialResult, TrialStatus
from optarena.submissions import loader

WRITERS = 4


def _plan(seed: int):
    config = BenchmarkConfig.for_ruleset("external", studies=2, trials=3, seed=seed)
    return benchmark.plan(loader.load("nadamw").info, "nadamw", ["digits_mlp"], config)


def _write(url: str, seed: int, barrier) -> list[int]:
    """Store this writer's trials, the first of them at the same moment as every writer's;
    the last writer stores the first writer's trials again."""
    trials = _plan(seed % (WRITERS - 1))
    origin = provenance.collect()
    barrier.wait()
    store = Store(url)
    ids = []
    for trial in trials:
        now = dt.datetime.now(dt.UTC)
        result = TrialResult.failed(TrialStatus.ERROR, f"writer {seed}")
        finished = FinishedTrial(
            trial=trial, result=result, provenance=origin, started_at=now, finished_at=now
        )
        ids.append(store.add(finished))
    return ids


def test_four_writers_on_a_fresh_store_lose_nothing(store_url):
    url = store_url
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(WRITERS)
        with context.Pool(WRITERS) as pool:
            written = pool.starmap(_write, [(url, seed, barrier) for seed in range(WRITERS)])
    store = Store(url)
    trials = store.benchmark_trials()
    # Writers 0 and 3 planned the same trials: each is stored once, under one id.
    assert written[0] == written[3]
    assert len(trials) == 3 * 6 == len(set(trials["trial_id"]))
    assert sorted({i for ids in written for i in ids}) == sorted(trials["trial_id"])
    with store.engine.connect() as connection:
        submissions = connection.exec_driver_sql("select count(*) from submissions").scalar()
        workloads = connection.exec_driver_sql("select count(*) from workloads").scalar()
    assert (submissions, workloads) == (1, 1)
