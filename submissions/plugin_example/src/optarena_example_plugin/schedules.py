"""The learning-rate schedule of the example submission, from optax pieces."""

from __future__ import annotations

import optax


def warmup_cosine_floor(
    peak: float, warmup_factor: float, final_fraction: float, step_hint: int
) -> optax.Schedule:
    """Linear warmup from 0 to ``peak`` over ``warmup_factor * step_hint`` steps, then a cosine
    down to ``final_fraction * peak`` at ``step_hint``, where it stays.

    Args:
      peak: the learning rate at the end of the warmup.
      warmup_factor: the fraction of ``step_hint`` spent warming up, in ``[0, 1)``.
      final_fraction: the learning rate at ``step_hint`` as a fraction of ``peak``, in
        ``[0, 1]``.
      step_hint: the number of steps the schedule plans for (`WorkloadInfo.step_hint`).

    Returns:
      An ``optax.Schedule``: step -> learning rate.
    """
    if not 0.0 <= warmup_factor < 1.0:
        raise ValueError(f"warmup_factor must be in [0, 1), got {warmup_factor=}")
    if not 0.0 <= final_fraction <= 1.0:
        raise ValueError(f"final_fraction must be in [0, 1], got {final_fraction=}")
    if step_hint < 1:
        raise ValueError(f"step_hint must be positive, got {step_hint=}")
    warmup_steps = int(warmup_factor * step_hint)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak,
        warmup_steps=warmup_steps,
        decay_steps=max(step_hint, warmup_steps + 1),
        end_value=final_fraction * peak,
    )
