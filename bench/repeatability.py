"""Repeatability: the same benchmark run twice, once on an idle machine and once beside a process
that burns a CPU core, must give the same trials, the same ranks and the same scores.

Both runs plan exactly the same trials (a fixed benchmark seed: the same points, seeds and
steps), each in its own store. The second run starts a busy loop pinned to a core the trials
do not use (``--hog-core``; trials run on `optarena.harness.isolation.trial_core`). The script
prints, side by side, each (submission, workload) median time to target from both runs and
their ratio, each workload's ranking by time, every trial whose status or steps to target
differ between the runs, the scores of both runs with Kendall's tau between the two rankings,
and the largest relative score change. Target: the same status and steps for every trial,
tau 1.0 and every score within 5% of the other run's.

Run: ``python bench/repeatability.py [--submissions a,b] [--suite quick] [--workloads w1,w2]
[--studies 2] [--trials 2] [--seed 0] [--out DIR]``; ``--no-hog`` runs both idle (an A/A control).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from scipy.stats import kendalltau

from optarena.harness import campaign, isolation
from optarena.harness.benchmark import BenchmarkConfig
from optarena.harness.executors import make_executor
from optarena.leaderboard.store import Store
from optarena.scoring.report import Settings, score_trials
from optarena.workloads.data import default_data_dir

SUBMISSIONS = ("nadamw", "adam", "shampoo", "muon", "lion")
SCORE_TOLERANCE = 0.05
HOG = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


def run_benchmark(args: argparse.Namespace, db: Path, data_dir: str) -> pd.DataFrame:
    """Every submission's external-tuning benchmark into ``db``; its benchmark trials."""
    store = Store(f"sqlite:///{db}")
    config = BenchmarkConfig.for_ruleset(
        "external", studies=args.studies, trials=args.trials, seed=args.seed, held_out_variants=1
    )
    executor = make_executor("child-process", data_dir)
    for name in args.submissions:
        planned = campaign.prepare(
            name, args.suite, config, store, data_dir, workloads=args.workloads or None
        )
        started = time.monotonic()
        campaign.run(planned, executor, store)
        print(
            f"  {name}: {len(planned.trials)} trials in {time.monotonic() - started:.0f} s",
            flush=True,
        )
    return store.benchmark_trials()


def _relative(a: float, b: float) -> float:
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


def compare(quiet: pd.DataFrame, loaded: pd.DataFrame) -> bool:
    """Print the comparison; whether every target was met."""
    keys = ["submission", "workload", "study", "trial", "seed"]
    both = quiet.merge(loaded, on=keys, suffixes=("_idle", "_loaded"))
    assert len(both) == len(quiet) == len(loaded), "the two runs planned different trials"
    differ = both[
        (both["status_idle"] != both["status_loaded"])
        | (both["steps_to_target_idle"] != both["steps_to_target_loaded"])
    ]
    print(f"\ntrials: {len(both)}; status or steps to target differ in {len(differ)}")
    for row in differ.itertuples():
        print(
            f"  {row.submission} on {row.workload} study {row.study} trial {row.trial}: "
            f"{row.status_idle} at {row.steps_to_target_idle} vs "
            f"{row.status_loaded} at {row.steps_to_target_loaded}"
        )

    times = []
    for (submission, workload), group in both.groupby(["submission", "workload"]):
        idle = float(group["time_to_target_sec_idle"].median())
        loaded_time = float(group["time_to_target_sec_loaded"].median())
        ratio = (
            loaded_time / idle if math.isfinite(idle) and math.isfinite(loaded_time) else math.nan
        )
        times.append((submission, workload, idle, loaded_time, ratio))
    table = pd.DataFrame(
        times, columns=["submission", "workload", "idle s", "loaded s", "loaded / idle"]
    )
    print("\nmedian time to target over trials (scored seconds)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    finite = table["loaded / idle"].dropna()
    if len(finite):
        print(f"time ratios: {finite.min():.3f} .. {finite.max():.3f}")

    print("\nper-workload ranks (by median time to target), idle | loaded")
    same_workload_ranks = True
    for workload, group in table.groupby("workload"):
        idle_order = group.sort_values("idle s")["submission"].tolist()
        loaded_order = group.sort_values("loaded s")["submission"].tolist()
        same_workload_ranks &= idle_order == loaded_order
        print(f"  {workload}: {' > '.join(idle_order)} | {' > '.join(loaded_order)}")

    settings = Settings(replicates=200)
    scores = score_trials(quiet, settings).scores.merge(
        score_trials(loaded, settings).scores,
        on=["ruleset", "submission"],
        suffixes=("_idle", "_loaded"),
    )
    scores["change"] = [
        _relative(a, b) for a, b in zip(scores["score_idle"], scores["score_loaded"], strict=True)
    ]
    print("\nscores")
    print(
        scores[["submission", "rank_idle", "score_idle", "rank_loaded", "score_loaded", "change"]]
        .sort_values("rank_idle")
        .to_string(index=False, float_format=lambda v: f"{v:.4f}")
    )
    tau = kendalltau(scores["score_idle"], scores["score_loaded"]).statistic
    tau = 1.0 if math.isnan(tau) and scores["score_idle"].equals(scores["score_loaded"]) else tau
    worst = float(scores["change"].max())
    print(f"\nKendall's tau between the two rankings: {tau:.3f} (target 1.0)")
    print(f"largest relative score change: {worst:.4f} (target <= {SCORE_TOLERANCE})")
    met = differ.empty and tau == 1.0 and worst <= SCORE_TOLERANCE
    print("repeatability target " + ("met" if met else "NOT met"))
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", default=",".join(SUBMISSIONS))
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--studies", type=int, default=2)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workloads", help="base workloads of the suite, comma-separated (default: all)"
    )
    parser.add_argument("--hog-core", type=int, help="core of the busy loop (default: another)")
    parser.add_argument("--no-hog", action="store_true", help="run both idle: an A/A control")
    parser.add_argument("--out", help="folder for the two stores (default: a temporary one)")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    args.submissions = [name.strip() for name in args.submissions.split(",") if name.strip()]
    args.workloads = [name.strip() for name in (args.workloads or "").split(",") if name.strip()]
    data_dir = args.data_dir or default_data_dir()
    out = Path(args.out or tempfile.mkdtemp(prefix="optarena_repeatability_"))
    out.mkdir(parents=True, exist_ok=True)
    trial_core = isolation.trial_core()
    cores = sorted(os.sched_getaffinity(0))
    hog_core = args.hog_core if args.hog_core is not None else min(cores)
    if hog_core == trial_core:
        print(f"the busy loop would share core {hog_core} with the trials", file=sys.stderr)
        return 2
    print(
        f"{', '.join(args.submissions)} on {args.suite}, external, {args.studies} studies x "
        f"{args.trials} trials, seed {args.seed}; trials on core {trial_core}; stores in {out}"
    )
    print("run 1: idle", flush=True)
    quiet = run_benchmark(args, out / "idle.db", data_dir)
    label = "idle again (A/A)" if args.no_hog else f"beside a busy loop on core {hog_core}"
    print(f"run 2: {label}", flush=True)
    hog = None if args.no_hog else subprocess.Popen([sys.executable, "-c", HOG, str(hog_core)])
    try:
        loaded = run_benchmark(args, out / "loaded.db", data_dir)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return 0 if compare(quiet, loaded) else 1


if __name__ == "__main__":
    sys.exit(main())
