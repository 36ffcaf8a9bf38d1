"""Harness overhead: the runner's training throughput against a bare jitted optax loop.

The bare loop is what a person would write by hand: the same model, loss, optimizer
(NAdamW at its default point), batch size and input batches, a jitted step with
donation and ``optax.apply_updates``, and no sharding annotations, evaluation or
bookkeeping. It is compiled ahead, so that neither side counts compile time and
both count their first step's execution.

This machine's speed drifts by 10-20% over seconds, so whole runs measured one
after the other cannot resolve a 5% difference. The two loops are therefore
interleaved at every evaluation boundary of a harness trial: the harness trains
one segment (its wall-clock seconds, ``wall_sec``), then, inside the
untimed ``on_eval`` callback, the bare loop trains the same number of steps from
idle to done, followed by the same evaluation work the harness just did, so that
each harness segment also starts after an evaluation. Each trial gives one ratio,
bare time / harness time over the same steps; the script prints the median over
trials, and an A/A control (the bare loop against itself, interleaved the same
way) as the noise floor. The target is a ratio of at least 0.95: the harness costs
at most 5%.

By default it measures every offline workload (data generated here) and names the ones it
skipped: those on TFDS catalog datasets need a download first. ``--workload W`` (repeatable)
measures any registered workload whose data is there; one that is unknown or not prepared
is named in one line on stderr, with exit status 2, before anything runs.

Run: ``python bench/harness_overhead.py [--steps N] [--trials T] [--workload W ...]``
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import time

import jax
import optax

from optarena.harness import isolation, runner, tracing
from optarena.submissions import loader
from optarena.workloads import catalog, data, registry, suites
from optarena.workloads.spec import MetricMode

TARGET_RATIO = 0.95
EXIT_BAD_INPUT = 2


def _workloads(named: list[str] | None, data_dir: str) -> tuple[list[str], list[str]]:
    """The workloads to measure and those skipped by default.

    Without ``named``: the offline ones, skipping the rest (their data needs a download).
    With ``named``: exactly those, each checked now (`registry.UnknownWorkloadError`,
    `catalog.DataNotPreparedError`) so that a bad name fails before minutes of measuring.
    """
    if not named:
        offline = suites.workloads("cpu")
        return offline, [name for name in registry.names() if name not in offline]
    tfds_logger = logging.getLogger("absl")
    level = tfds_logger.level
    # TFDS logs a warning for the folder it did not find; the error raised says it all.
    tfds_logger.setLevel(logging.ERROR)
    try:
        for name in named:
            workload = registry.get(name)
            if not workload.spec.offline:
                workload.load_split("validation", data_dir)
    finally:
        tfds_logger.setLevel(level)
    return list(named), []


def _never_reached(workload):
    """The workload with a validation target no run can meet, so trials run to ``max_steps``."""
    unreachable = -1.0 if workload.spec.mode is MetricMode.MIN else 2.0**62
    spec = dataclasses.replace(workload.spec, validation_target=unreachable, budget_sec=1e6)
    return dataclasses.replace(workload, spec=spec)


class BareLoop:
    """A minimal hand-written training loop, run in chunks of steps."""

    def __init__(self, workload, submission, data_dir: str, seed: int):
        info = tracing.workload_info(
            workload, submission, workload.spec.budget_sec, jax.local_device_count()
        )
        tx = submission.make_optimizer(submission.default_hparams, info)
        init_rng, rng = jax.random.split(jax.random.PRNGKey(seed))
        params, model_state = workload.init(init_rng)
        opt_state = tx.init(params)

        def train_step(params, opt_state, batch):
            def loss_fn(p):
                return workload.loss(p, model_state, batch, rng, train=True)[0]

            grads = jax.grad(loss_fn)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        self._batches = data.train_batches(
            workload.load_split("train", data_dir), info.batch_size, seed
        )
        first = next(self._batches)
        self._step = (
            jax.jit(train_step, donate_argnums=(0, 1)).lower(params, opt_state, first).compile()
        )
        self._state = jax.block_until_ready((params, opt_state))
        self._first = first
        self._model_state = model_state
        eval_sums = jax.jit(workload.eval_sums)
        splits = [
            data.eval_batches(workload.load_split(split, data_dir), workload.spec.eval_batch_size)
            for split in ("validation", "test")
        ]
        self._eval_batches = [jax.device_put(b) for batches in splits for b in batches]
        self._eval_sums = eval_sums

    def train(self, steps: int) -> float:
        """Seconds to run ``steps`` steps from idle until the last one is done."""
        params, opt_state = self._state
        start = time.perf_counter()
        for _ in range(steps):
            batch = self._first if self._first is not None else next(self._batches)
            self._first = None
            params, opt_state = self._step(params, opt_state, batch)
        jax.block_until_ready((params, opt_state))
        elapsed = time.perf_counter() - start
        self._state = (params, opt_state)
        return elapsed

    def evaluate(self) -> None:
        """The evaluation work of one harness boundary (untimed), on this loop's params."""
        params = self._state[0]
        jax.device_get(
            [self._eval_sums(params, self._model_state, batch) for batch in self._eval_batches]
        )


def paired_trial(
    workload, submission, steps: int, data_dir: str, seed: int
) -> tuple[float, float, float]:
    """One harness trial with a bare chunk after each segment.

    Returns bare time / harness time over the same steps, and each side's steps per second.
    """
    bare = BareLoop(workload, submission, data_dir, seed)
    bare_seconds: list[float] = []
    done = [0]

    def on_eval(point) -> None:
        bare_seconds.append(bare.train(point.step - done[0]))
        done[0] = point.step
        bare.evaluate()

    config = runner.TrialConfig(
        seed=seed, hparams=submission.default_hparams, budget_sec=1e6, max_steps=steps
    )
    result = runner.run_trial(workload, submission, config, data_dir=data_dir, on_eval=on_eval)
    harness_seconds = result.wall_sec  # the segments' wall clock: compile and evaluations excluded
    return sum(bare_seconds) / harness_seconds, steps / harness_seconds, steps / sum(bare_seconds)


def control_trial(workload, submission, steps: int, data_dir: str, seed: int) -> float:
    """A/A control: two bare loops interleaved chunk by chunk like `paired_trial`."""
    first, second = (BareLoop(workload, submission, data_dir, seed) for _ in range(2))
    cadence = workload.spec.eval_every_steps
    a = b = 0.0
    for start in range(0, steps, cadence):
        chunk = min(cadence, steps - start)
        a += first.train(chunk)
        first.evaluate()
        b += second.train(chunk)
        second.evaluate()
    return b / a


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="train steps per trial")
    parser.add_argument("--trials", type=int, default=9, help="paired trials per workload")
    parser.add_argument(
        "--workload", action="append", help="workload(s) to measure (default: the offline ones)"
    )
    parser.add_argument("--data-dir", default=data.default_data_dir())
    parser.add_argument("--check", action="store_true", help=f"exit 1 if a ratio < {TARGET_RATIO}")
    args = parser.parse_args(argv)
    isolation.isolate()  # both loops on the core trials use, as trials run
    try:
        names, skipped = _workloads(args.workload, args.data_dir)
    except (registry.UnknownWorkloadError, catalog.DataNotPreparedError) as error:
        print(f"harness_overhead: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    submission = loader.load("nadamw").submission
    print(
        f"devices: {jax.local_device_count()} x {jax.local_devices()[0].device_kind}; "
        f"{args.steps} steps x {args.trials} trials, interleaved at every evaluation boundary"
    )
    if skipped:
        print(
            f"skipped {', '.join(skipped)}: their datasets need a download "
            "(optarena data prepare W --download), then name them with --workload W"
        )
    width = max(len(name) for name in ["workload", *names]) + 2
    print(
        f"{'workload':<{width}}{'harness steps/s':>16}{'bare steps/s':>14}{'ratio':>7}"
        f"{'trial ratios':>15}{'A/A control':>13}"
    )
    worst = float("inf")
    for name in names:
        workload = _never_reached(registry.get(name))
        pairs = [
            paired_trial(workload, submission, args.steps, args.data_dir, seed)
            for seed in range(args.trials)
        ]
        controls = [
            control_trial(workload, submission, args.steps, args.data_dir, seed)
            for seed in range(args.trials)
        ]
        ratios = [ratio for ratio, _, _ in pairs]
        ratio = statistics.median(ratios)
        worst = min(worst, ratio)
        print(
            f"{name:<{width}}{statistics.median(p[1] for p in pairs):>16.0f}"
            f"{statistics.median(p[2] for p in pairs):>14.0f}{ratio:>7.3f}"
            f"{f'{min(ratios):.3f}..{max(ratios):.3f}':>15}{statistics.median(controls):>13.3f}"
        )
    print(f"worst ratio {worst:.3f} (target >= {TARGET_RATIO})")
    return 1 if args.check and worst < TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
