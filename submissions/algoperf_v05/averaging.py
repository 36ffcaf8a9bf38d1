"""Latest weight averaging (LAWA, Kaddour 2022; Sanyal et al., 2023) as optax wrappers.

Training follows the wrapped optimizer unchanged; the average is only what is evaluated (the
submission's ``eval_params`` hook, whose time counts as training time). From step ``start`` on,
every ``every`` steps the new parameters are recorded: after the update of step ``k`` (counted
from 0, as the entries count them) when ``k >= start`` and ``k`` is a multiple of ``every``.

- `lawa_queue` keeps the last ``length`` recorded points and evaluates their mean once the
  queue is full (the current parameters before);
- `lawa_ema` keeps an exponential moving average ``a <- beta a + (1 - beta) x`` of the
  recorded points (the first recorded point starts it) and evaluates it once it exists.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optarena.submissions import WorkloadInfo
from optarena.submissions.algoperf_v05.baseline import baseline


class LawaState(NamedTuple):
    """The wrapped optimizer's state, the step ``count``, how many points were recorded
    (``recorded``) and the queue (leading axis: slots) or moving average (``average``)."""

    inner: Any
    count: jax.Array
    recorded: jax.Array
    average: Any


def _checked(start: int, every: int) -> None:
    if start < 0 or every < 1:
        raise ValueError(f"need start >= 0 and every >= 1, got {start=}, {every=}")


def _wrap(inner: optax.GradientTransformation, start: int, every: int, init_average, record):
    """``inner`` that, after each update, calls ``record(average, new_params, recorded)`` when
    the new parameters are to be recorded."""
    inner = optax.with_extra_args_support(inner)

    def init_fn(params):
        zero = jnp.zeros([], jnp.int32)
        return LawaState(inner.init(params), zero, zero, init_average(params))

    def update_fn(updates, state, params=None, **extra):
        if params is None:
            raise ValueError("weight averaging needs the parameters")
        updates, inner_state = inner.update(updates, state.inner, params, **extra)
        due = (state.count >= start) & (state.count % every == 0)
        new_params = optax.apply_updates(params, updates)
        recorded_average = record(state.average, new_params, state.recorded)
        average = jax.tree.map(
            lambda new, old: jnp.where(due, new, old), recorded_average, state.average
        )
        recorded = state.recorded + due.astype(jnp.int32)
        return updates, LawaState(inner_state, state.count + 1, recorded, average)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lawa_queue(
    inner: optax.GradientTransformation, *, start: int, every: int, length: int
) -> optax.GradientTransformationExtraArgs:
    """``inner``, recording into a queue of the last ``length`` points (evaluate with
    `queue_average`)."""
    _checked(start, every)
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length=}")

    def init_average(params):
        return jax.tree.map(lambda p: jnp.zeros((length, *p.shape), p.dtype), params)

    def record(queue, new_params, recorded):
        slot = recorded % length
        return jax.tree.map(lambda q, x: q.at[slot].set(x), queue, new_params)

    return _wrap(inner, start, every, init_average, record)


def lawa_ema(
    inner: optax.GradientTransformation, *, start: int, every: int, beta: float
) -> optax.GradientTransformationExtraArgs:
    """``inner``, recording into a moving average with decay ``beta`` (evaluate with
    `ema_average`)."""
    _checked(start, every)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta=}")

    def record(average, new_params, recorded):
        return jax.tree.map(
            lambda a, x: jnp.where(recorded == 0, x, beta * a + (1.0 - beta) * x),
            average,
            new_params,
        )

    return _wrap(inner, start, every, optax.tree.zeros_like, record)


def queue_average(state: LawaState, params: Any) -> Any:
    """The mean of a full queue, else ``params``."""
    length = jax.tree.leaves(state.average)[0].shape[0]
    full = state.recorded >= length
    return jax.tree.map(
        lambda q, p: jnp.where(full, jnp.mean(q, axis=0).astype(p.dtype), p), state.average, params
    )


def ema_average(state: LawaState, params: Any) -> Any:
    """The moving average once a point was recorded, else ``params``."""
    return jax.tree.map(lambda a, p: jnp.where(state.recorded > 0, a, p), state.average, params)


def _steps(fraction: float, step_hint: int) -> int:
    return max(math.ceil(fraction * step_hint), 1)


def nadamw_lawa(
    info: WorkloadInfo,
    learning_rate,
    one_minus_beta1,
    beta2,
    weight_decay,
    warmup_factor,
    lawa_burnin_pct,
    lawa_every_pct,
    lawa_queue_len=None,
    lawa_beta=None,
) -> optax.GradientTransformation:
    """The v0.5 baseline (`baseline.baseline`) recording its points from
    ``lawa_burnin_pct * step_hint`` on, every ``lawa_every_pct * step_hint`` steps (both rounded
    up): into a queue of ``lawa_queue_len`` points, or (with ``lawa_beta``) a moving average."""
    if (lawa_queue_len is None) == (lawa_beta is None):
        raise ValueError(
            f"give one of lawa_queue_len and lawa_beta, got {lawa_queue_len=}, {lawa_beta=}"
        )
    inner = baseline(info, learning_rate, one_minus_beta1, beta2, weight_decay, warmup_factor)
    start = _steps(lawa_burnin_pct, info.step_hint)
    every = _steps(lawa_every_pct, info.step_hint)
    if lawa_queue_len is not None:
        return lawa_queue(inner, start=start, every=every, length=int(lawa_queue_len))
    return lawa_ema(inner, start=start, every=every, beta=float(lawa_beta))
