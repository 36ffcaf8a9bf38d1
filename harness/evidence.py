"""A trial's result checked against its own evidence before it is stored.

The status, time to target and steps are recomputed from the evaluation points and checked
against the step count and the clock the result reports; `mismatch` says what does not add
up. The campaign stores a result that fails the check as an ``error`` with that reason, so a
result that contradicts its evidence (a bug, or anything that changed it on its way) never
reaches a score.
"""

from __future__ import annotations

import itertools
import math

from optarena.records import FAILED_STATUSES, Trial, TrialResult, TrialStatus

RELATIVE_TOLERANCE = 1e-9
WALL_FACTOR = 2.0
"""How many times the wall clock of its segments a trial's scored time may be: the step time is
a median over segments, so it can exceed the mean a little, never by this much."""


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-12)


def mismatch(trial: Trial, result: TrialResult) -> str | None:
    """Why ``result`` does not follow from its evaluation points, or ``None`` when it does."""
    if result.status in FAILED_STATUSES:
        if math.isfinite(result.time_to_target_sec) or result.steps_to_target is not None:
            return f"a {result.status.value} trial has a time to target"
        return None
    spec, config, points = trial.spec, trial.config, result.eval_points
    if not points and result.status is not TrialStatus.DIVERGED:
        return "no evaluation points"
    steps = [point.step for point in points]
    if any(b <= a for a, b in itertools.pairwise(steps)) or (steps and steps[0] <= 0):
        return "evaluation steps do not increase"
    if steps and steps[-1] > result.num_steps:
        return f"an evaluation at step {steps[-1]} after the last step {result.num_steps}"
    if config.max_steps is not None and result.num_steps > config.max_steps:
        return f"{result.num_steps} steps, over the cap of {config.max_steps}"
    if not _close(result.timed_sec, result.num_steps * result.step_sec):
        return (
            f"timed {result.timed_sec:.6g} s is not {result.num_steps} steps x "
            f"{result.step_sec:.6g} s"
        )
    for point in points:
        if point.examples != point.step * result.batch_size:
            return f"step {point.step}: {point.examples} examples at batch size {result.batch_size}"
        if math.isfinite(point.wall_sec) and point.timed_sec > WALL_FACTOR * point.wall_sec:
            return (
                f"step {point.step}: {point.timed_sec:.6g} scored s in "
                f"{point.wall_sec:.6g} s of wall clock"
            )
    first = next(
        (
            point
            for point in points
            if point.timed_sec <= config.budget_sec
            and spec.reached(point.validation.get(spec.metric, math.nan))
        ),
        None,
    )
    if result.status is TrialStatus.REACHED:
        if first is None:
            return "reached, but no evaluation within the budget meets the target"
        if first is not points[-1]:
            return f"the target was met at step {first.step}, yet training went on"
        if result.steps_to_target != first.step or not _close(
            result.time_to_target_sec, first.timed_sec
        ):
            return (
                f"time to target {result.time_to_target_sec:.6g} s at step "
                f"{result.steps_to_target}; the evaluations say {first.timed_sec:.6g} s at step "
                f"{first.step}"
            )
        return None
    if math.isfinite(result.time_to_target_sec) or result.steps_to_target is not None:
        return f"a {result.status.value} trial has a time to target"
    if first is not None:
        return f"{result.status.value}, but the evaluation at step {first.step} meets the target"
    if result.status is TrialStatus.NOT_REACHED:
        capped = config.max_steps is not None and result.num_steps >= config.max_steps
        if not capped and result.timed_sec < config.budget_sec:
            return (
                f"not reached after {result.timed_sec:.6g} of {config.budget_sec:g} s and "
                f"{result.num_steps} steps: neither the budget nor a step cap ran out"
            )
    return None
