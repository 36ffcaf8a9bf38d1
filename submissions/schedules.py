"""The learning-rate schedule the built-in submissions share, from optax."""

from __future__ import annotations

import optax


def warmup_cosine(peak: float, warmup_factor: float, step_hint: int) -> optax.Schedule:
    """Linear warmup from 0 to ``peak`` over ``warmup_factor * step_hint`` steps, then a cosine
    to 0 at ``step_hint`` (AlgoPerf's baseline schedule)."""
    warmup_steps = int(warmup_factor * step_hint)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak,
        warmup_steps=warmup_steps,
        decay_steps=max(step_hint, warmup_steps + 1),
        end_value=0.0,
    )
