"""NadamW Sequential: the self-tuning ruleset's larger budget spent on NAdamW runs in turn.

The self-tuning budget is a multiple of the external one, so instead of tuning in parallel the
entry trains with one NAdamW point after another: each phase is a full baseline run of
``step_hint`` steps (warmup + cosine) and the next phase restarts from the initial parameters
with the next point (`sequential_restarts`); the last phase's point is kept after the end. The
points are the self-tuning baseline's and the first two of the external baseline's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.algoperf_v05.spaces import BASELINE_POINTS, SELF_TUNING_POINT
from optarena.submissions.nadamw import nadamw

POINTS = (SELF_TUNING_POINT, BASELINE_POINTS[0], BASELINE_POINTS[1])


class SequentialState(NamedTuple):
    """Step ``count``, the ``initial`` parameters and each phase's optimizer state."""

    count: jax.Array
    initial: Any
    phases: tuple


def sequential_restarts(
    optimizers: Sequence[optax.GradientTransformation], phase_steps: int
) -> optax.GradientTransformation:
    """``optimizers[i]`` for the steps of phase ``i`` (``phase_steps`` each); the first step of
    every later phase moves the parameters back to their initial values and starts its
    optimizer afresh. The last optimizer runs on after its phase."""
    if not optimizers or phase_steps < 1:
        raise ValueError(f"need optimizers and phase_steps >= 1, got {phase_steps=}")

    def init_fn(params):
        initial = jax.tree.map(jnp.asarray, params)
        return SequentialState(
            jnp.zeros([], jnp.int32), initial, tuple(tx.init(params) for tx in optimizers)
        )

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("sequential_restarts needs the parameters")
        phase = jnp.minimum(state.count // phase_steps, len(optimizers) - 1)

        def run(index):
            def branch():
                step, own = optimizers[index].update(updates, state.phases[index], params)
                return step, (*state.phases[:index], own, *state.phases[index + 1 :])

            return branch

        step, phases = jax.lax.switch(phase, [run(i) for i in range(len(optimizers))])
        restart = (state.count > 0) & (state.count % phase_steps == 0)
        restart &= state.count // phase_steps < len(optimizers)
        back = jax.tree.map(lambda start, now: start - now, state.initial, params)
        fresh = tuple(tx.init(state.initial) for tx in optimizers)
        step = jax.tree.map(lambda b, s: jnp.where(restart, b, s), back, step)
        phases = jax.tree.map(lambda f, s: jnp.where(restart, f, s), fresh, phases)
        return step, SequentialState(state.count + 1, state.initial, phases)

    return optax.GradientTransformation(init_fn, update_fn)


def nadamw_sequential(info: WorkloadInfo) -> optax.GradientTransformation:
    """NAdamW from each of `POINTS` in turn, ``step_hint`` steps each."""
    return sequential_restarts([nadamw(info, **point) for point in POINTS], info.step_hint)


SUBMISSION = Submission.from_builder(
    nadamw_sequential, name="v05_nadamw_sequential", self_tuning=True
)
