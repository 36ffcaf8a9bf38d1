"""How much of a benchmark's wall clock is spent training: the share of the whole command's
wall-clock seconds that are timed training steps (compile and evaluations excluded).

It runs one submission's benchmark on a suite into a fresh store, the way `optarena benchmark`
does (describe, pre-flight, then every trial through the default executor: a sandboxed tracing
process and a measuring process per trial), and prints the trials, the benchmark's wall clock,
the sum of the trials' timed training segments (`TrialResult.wall_sec`), their compile seconds,
and the share. The rest is process starts, imports, tracing, data loading, evaluations and
storing.

The measuring process keeps compiled programs across trials, so a ruleset whose trials share
their programs (``--ruleset self``: the default point in every study) compiles once per
workload; the external ruleset's trials each have their own hyperparameters, so each compiles.

It runs the benchmark twice, side by side in one run: without the executor's lookahead (each
trial traced and compiled on the trial's core before it is measured) and with it (the next
trial traced and compiled on another core while a trial is measured), and prints both.

Run: ``python bench/wall_share.py [--submission nadamw] [--suite quick] [--ruleset external]
[--studies 1] [--trials 2] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from optarena.harness import campaign
from optarena.harness.benchmark import BenchmarkConfig
from optarena.harness.executors import ChildProcessExecutor
from optarena.leaderboard.store import Store
from optarena.workloads.data import default_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submission", default="nadamw")
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--ruleset", choices=["external", "self"], default="external")
    parser.add_argument("--studies", type=int, default=1)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or default_data_dir()
    # A self-tuning study is one trial.
    trials = args.trials if args.ruleset == "external" else None
    config = BenchmarkConfig.for_ruleset(
        args.ruleset, studies=args.studies, trials=trials, seed=args.seed, held_out_variants=1
    )
    # Data preparation is a one-off per machine, not part of a benchmark's cost.
    campaign.prepare(args.submission, args.suite, config, Store("sqlite://"), data_dir)
    print(f"{args.submission} on {args.suite}, {args.ruleset}, {args.studies} x {config.trials}")
    header = ("trials", "wall s", "training s", "compile s", "share")
    print(f"{'':24s} " + " ".join(f"{h:>10s}" for h in header))
    for label, lookahead in (("without lookahead", False), ("with lookahead", True)):
        executor = ChildProcessExecutor(data_dir, lookahead=lookahead)
        if lookahead and executor.lookahead_core is None:
            print(f"{label:24s} (no spare core: this process may use one core only)")
            continue
        with tempfile.TemporaryDirectory() as folder:
            store = Store(f"sqlite:///{Path(folder) / 'wall_share.db'}")
            started = time.monotonic()
            planned = campaign.prepare(args.submission, args.suite, config, store, data_dir)
            done = campaign.run(planned, executor, store)
            wall = time.monotonic() - started
        results = [finished.result for finished, _ in done]
        training = sum(r.wall_sec for r in results if r.wall_sec == r.wall_sec)
        compiled = sum(r.compile_sec for r in results)
        print(
            f"{label:24s} {len(results):10d} {wall:10.1f} {training:10.1f} {compiled:10.1f} "
            f"{training / wall:10.3f}"
        )


if __name__ == "__main__":
    main()
