"""Harness overhead: the runner's training throughput against a bare jitted optax loop.

For each workload, in one process and interleaved round by round, this measures
  * the harness: `harness.runner.run_trial` with the workload's eval cadence
    (a block and an untimed evaluation at every boundary), steps per timed
    second excluding compile;
  * a bare loop: the same model, loss, optimizer (NAdamW defaults), batch size
    and input batches, a plain jitted step with ``optax.apply_updates``, never
    blocked until the end, no evaluation, steps per second excluding its
    compile (its first step's execution counts, as in the harness). On several
    devices it runs on the default device only.
It prints the median steps/s of each and the median of the per-round ratios
(harness / bare); the harness should cost at most 5%, i.e. a ratio of at least 0.95.

Run: ``python bench/harness_overhead.py [--steps N] [--rounds R] [--workload W ...]``
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import time

import jax
import optax

from harness import runner
from submissions import loader
from workloads import data, registry
from workloads.spec import MetricMode

TARGET_RATIO = 0.95


def _never_reached(workload):
    """The workload with a validation target no run can meet, so trials run to ``max_steps``."""
    unreachable = -1.0 if workload.spec.mode is MetricMode.MIN else 2.0**62
    spec = dataclasses.replace(workload.spec, validation_target=unreachable, budget_sec=1e6)
    return dataclasses.replace(workload, spec=spec)


def harness_steps_per_sec(workload, submission, steps: int, data_dir: str) -> float:
    config = runner.TrialConfig(
        seed=0, hparams=submission.default_hparams, budget_sec=1e6, max_steps=steps
    )
    result = runner.run_trial(workload, submission, config, data_dir=data_dir)
    return result.num_steps / (result.timed_sec - result.compile_sec)


def bare_steps_per_sec(workload, submission, steps: int, data_dir: str) -> float:
    """A minimal loop: a jitted step with donation, no sharding annotation, blocked at the end."""
    spec = workload.spec
    info = runner.workload_info(workload, submission, spec.budget_sec, jax.local_device_count())
    tx = submission.make_optimizer(submission.default_hparams, info)
    init_rng, rng = jax.random.split(jax.random.PRNGKey(0))
    params, model_state = workload.init(init_rng)
    opt_state = tx.init(params)

    def train_step(params, opt_state, batch):
        def loss_fn(p):
            return workload.loss(p, model_state, batch, rng, train=True)[0]

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    batches = data.train_batches(workload.load_split("train", data_dir), info.batch_size, 0)
    first = next(batches)
    # Compiled ahead, as the harness does, so that the first step's execution (slower than the
    # rest: buffers are allocated, thread pools wake up) is timed in both and compile in neither.
    train_step = (
        jax.jit(train_step, donate_argnums=(0, 1)).lower(params, opt_state, first).compile()
    )
    batches = itertools.chain([first], batches)
    start = time.perf_counter()
    for _ in range(steps):
        params, opt_state = train_step(params, opt_state, next(batches))
    jax.block_until_ready((params, opt_state))
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="train steps per measurement")
    parser.add_argument("--rounds", type=int, default=31, help="paired rounds per workload")
    parser.add_argument("--workload", action="append", help="workload(s) to measure (default all)")
    parser.add_argument("--data-dir", default=data.default_data_dir())
    parser.add_argument("--check", action="store_true", help=f"exit 1 if a ratio < {TARGET_RATIO}")
    args = parser.parse_args(argv)
    submission = loader.load("nadamw").submission
    print(
        f"devices: {jax.local_device_count()} x {jax.local_devices()[0].device_kind}; "
        f"{args.steps} steps x {args.rounds} rounds, interleaved"
    )
    print(f"{'workload':<16}{'harness steps/s':>17}{'bare steps/s':>14}{'ratio':>8}")
    worst = float("inf")
    for name in args.workload or registry.names():
        workload = _never_reached(registry.get(name))
        harness, bare, ratios = [], [], []
        for round_index in range(args.rounds):
            # ABBA order across rounds, so that drift in the machine's speed cancels out.
            run = (workload, submission, args.steps, args.data_dir)
            if round_index % 2:
                bare_sps = bare_steps_per_sec(*run)
                harness_sps = harness_steps_per_sec(*run)
            else:
                harness_sps = harness_steps_per_sec(*run)
                bare_sps = bare_steps_per_sec(*run)
            harness.append(harness_sps)
            bare.append(bare_sps)
            ratios.append(harness_sps / bare_sps)
        ratio = statistics.median(ratios)
        worst = min(worst, ratio)
        print(
            f"{name:<16}{statistics.median(harness):>17.0f}{statistics.median(bare):>14.0f}"
            f"{ratio:>8.3f}   (round ratios {min(ratios):.3f}..{max(ratios):.3f})"
        )
    print(f"worst ratio {worst:.3f} (target >= {TARGET_RATIO})")
    return 1 if args.check and worst < TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
