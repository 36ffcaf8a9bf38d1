"""Nightly sensitivity: unchanged code re-measured beside a busy CPU core is not a regression,
a step that does 15% more work is.

Three nights of ``optarena nightly`` on one store under the self-tuning ruleset (3 studies),
each re-running a copy of NAdamW at the workload's calibrated point, so that every study reaches
its target and has a time to compare (the file is rewritten every night, so its trials are never
reused):

1. idle, the copy as it is;
2. beside a busy loop pinned to the core the trials do not use, the copy with a comment added
   (same computation, a new source hash): must report no regression;
3. beside the busy loop, the copy whose update also does a redundant 288x288 matrix product of
   its gradient (kept in the optimizer state, so XLA cannot drop it; measured: 26% more time per
   `mnist1d_cnn` step): must be flagged.

It prints each night's timing tolerance (the larger of the config's and the reference
trials' measured drift; the target on a loaded night is 10% or less), each night's verdict, and
how much slower night 3's steps were than night 2's (the regression it had to see).

Run: ``python bench/nightly_sensitivity.py [--workload mnist1d_cnn] [--out DIR]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pandas as pd

from optarena.harness import calibration, isolation, nightly
from optarena.harness.nightly_config import NightlyConfig
from optarena.leaderboard import nightly_store
from optarena.leaderboard.store import Store
from optarena.workloads.data import default_data_dir

COPY = '''
"""NAdamW at the workload's calibrated point{note}."""

import jax
import jax.numpy as jnp
import optax

from optarena.submissions import Submission, WorkloadInfo, with_defaults
from optarena.submissions.schedules import warmup_cosine

EXTRA_PRODUCTS = {extra}
SIZE = 288


def redundant_work(products: int) -> optax.GradientTransformation:
    """``products`` SIZE x SIZE matrix products of the gradient (tiled) with itself, summed into the
    state, so XLA cannot drop them; the update itself is unchanged."""

    def init(params):
        return jnp.zeros([], jnp.float32)

    def update(updates, state, params=None):
        flat = jnp.concatenate([jnp.ravel(g) for g in jax.tree.leaves(updates)])
        product = jnp.resize(flat, (SIZE, SIZE))
        for _ in range(products):
            product = jnp.tanh(product @ product)
        return updates, state + 1e-30 * jnp.sum(product)

    return optax.GradientTransformation(init, update)


def nadamw(
    info: WorkloadInfo, learning_rate, one_minus_beta1, beta2, weight_decay, warmup_factor
) -> optax.GradientTransformation:
    schedule = warmup_cosine(learning_rate, warmup_factor, info.step_hint)
    base = optax.nadamw(
        schedule, b1=1.0 - one_minus_beta1, b2=beta2, eps=1e-8, weight_decay=weight_decay
    )
    return optax.chain(redundant_work(EXTRA_PRODUCTS), base) if EXTRA_PRODUCTS else base


SUBMISSION = Submission.from_builder(nadamw, None, {hparams!r}, name="steady", self_tuning=True)
'''
HOG = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


def night(config: NightlyConfig, data_dir: str, hog_core: int | None) -> nightly.Night:
    hog = None
    if hog_core is not None:
        hog = subprocess.Popen([sys.executable, "-c", HOG, str(hog_core)])
    try:
        planned = nightly.plan(config, data_dir)
        return nightly.run(planned, nightly.executor_for(config, data_dir))
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="mnist1d_cnn", help="a base workload of quick")
    parser.add_argument("--extra", type=int, default=1, help="redundant 288x288 products per step")
    parser.add_argument("--out", help="folder for the store, reports and the copy")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    out = Path(args.out or tempfile.mkdtemp(prefix="optarena_nightly_sensitivity_"))
    out.mkdir(parents=True, exist_ok=True)
    copy = out / "steady.py"
    hog_core = min(set(os.sched_getaffinity(0)) - {isolation.trial_core()})
    hparams = calibration.load_record(args.workload)["chosen_hparams"]
    config = NightlyConfig(
        workloads=(args.workload,),
        rulesets=("self",),
        studies=3,
        trials=1,
        submissions=(str(copy),),
        store=f"sqlite:///{out / 'nightly.db'}",
        output_dir=str(out / "reports"),
    )
    plan = [
        ("idle, the copy as it is", "", 0, None),
        ("busy core, a comment added", ", re-measured", 0, hog_core),
        (
            f"busy core, {args.extra} redundant product(s)",
            " doing redundant work",
            args.extra,
            hog_core,
        ),
    ]
    verdicts = []
    for index, (label, note, extra, core) in enumerate(plan, start=1):
        copy.write_text(textwrap.dedent(COPY).format(note=note, extra=extra, hparams=hparams))
        done = night(config, data_dir, core)
        runs = nightly_store.previous_run(Store(config.store), config.comparison_key())
        verdict = "REGRESSION" if done.regressed else "no regression"
        print(f"night {index} ({label}): tolerance {runs.tolerance:.3f}, {verdict}", flush=True)
        verdicts.append((bool(done.regressed), runs.tolerance))
    trials = Store(config.store).trials(submission="steady")
    per_night = (
        trials.groupby("source_sha256", sort=False)["timed_sec"].sum()
        / trials.groupby("source_sha256", sort=False)["num_steps"].sum()
    )
    steps = pd.Series(per_night.to_numpy(), index=["night 1", "night 2", "night 3"])
    print("scored seconds per step of the copy's trials:", steps.round(6).to_dict())
    print(f"night 3 / night 2 step time: {steps['night 3'] / steps['night 2']:.3f}")
    met = (
        not verdicts[1][0]
        and verdicts[2][0]
        and verdicts[1][1] <= 0.10
        and verdicts[2][1] <= 0.10
        and steps["night 3"] / steps["night 2"] >= 1.15
    )
    print("sensitivity target " + ("met" if met else "NOT met"))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
