"""Tracing: where a submission's Python code runs for a trial, and nowhere else.

`trace` calls the submission's hooks and factory and exports its optimizer as XLA programs
(`optarena.harness.optimizer_program`). The benchmark runs it in a short-lived tracing process
of its own (`optarena.harness.executors`), so the process that measures, evaluates and
reports a trial never imports a submission: a submission decides its update, not the clock,
the data, the result or the store.

The programs are exported from shapes alone, over flat lists of leaves; jax.export refuses
host callbacks, so nothing in them can call back into Python at run time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from optarena.harness.optimizer_program import OptimizerProgram, SubmissionFailure
from optarena.submissions.api import Hparams, Submission, WorkloadInfo
from optarena.workloads.base import Workload


def workload_info(
    workload: Workload, submission: Submission, budget_sec: float, num_devices: int
) -> WorkloadInfo:
    """The `WorkloadInfo` a submission sees, with its chosen batch size.

    Raises `ValueError` when the workload's batch size does not divide over the devices, and
    `SubmissionFailure` when the submission's ``batch_size`` hook fails or gives such a size.
    """
    spec = workload.spec
    if submission.batch_size is None and spec.batch_size % num_devices:
        raise ValueError(
            f"batch size {spec.batch_size} of {spec.name} is not divisible by {num_devices} devices"
        )
    info = WorkloadInfo(
        step_hint=spec.step_hint,
        budget_sec=budget_sec,
        batch_size=spec.batch_size,
        num_train_examples=spec.num_train_examples,
        num_devices=num_devices,
    )
    if submission.batch_size is None:
        return info
    try:
        batch_size = int(submission.batch_size(info))
    except Exception as error:
        raise SubmissionFailure(f"{submission.name}.batch_size raised {error!r}") from error
    if batch_size <= 0 or batch_size % num_devices:
        raise SubmissionFailure(
            f"{submission.name}.batch_size gave {batch_size}: it must be a positive multiple of "
            f"the {num_devices} device(s)"
        )
    return dataclasses.replace(info, batch_size=batch_size)


def make_optimizer(submission: Submission, hparams: Hparams | None, info: WorkloadInfo) -> Any:
    """Call the submission's factory (an ``optax.GradientTransformationExtraArgs`` comes back),
    turning any failure into a `SubmissionFailure`."""
    import optax

    try:
        tx = submission.make_optimizer(hparams, info)
    except Exception as error:
        raise SubmissionFailure(
            f"{submission.name}.make_optimizer raised {type(error).__name__}: {error}"
        ) from error
    if not isinstance(tx, optax.GradientTransformation):
        raise SubmissionFailure(
            f"{submission.name}.make_optimizer returned {type(tx).__name__}, "
            "not an optax.GradientTransformation"
        )
    return optax.with_extra_args_support(tx)


def trace(
    workload: Workload,
    submission: Submission,
    hparams: Hparams | None,
    budget_sec: float,
    num_devices: int,
) -> OptimizerProgram:
    """Export ``submission``'s optimizer for one trial on ``workload``.

    Raises `SubmissionFailure` when a hook or the factory fails, or when its ``init``,
    ``update`` or ``eval_params`` cannot be exported (a host callback, say).
    """
    import jax
    import jax.numpy as jnp
    from jax import export

    info = workload_info(workload, submission, budget_sec, num_devices)
    tx = make_optimizer(submission, hparams, info)
    params, _ = jax.eval_shape(workload.init, jax.random.PRNGKey(0))
    param_leaves, param_tree = jax.tree.flatten(params)
    try:
        state = jax.eval_shape(tx.init, params)
    except Exception as error:
        raise SubmissionFailure(f"{submission.name} optimizer init raised {error!r}") from error
    state_leaves, state_tree = jax.tree.flatten(state)

    def init(flat_params):
        return jax.tree.leaves(tx.init(jax.tree.unflatten(param_tree, flat_params)))

    def update(flat_grads, flat_state, flat_params, value):
        updates, new_state = tx.update(
            jax.tree.unflatten(param_tree, flat_grads),
            jax.tree.unflatten(state_tree, flat_state),
            jax.tree.unflatten(param_tree, flat_params),
            value=value,
        )
        return jax.tree.leaves(updates), jax.tree.leaves(new_state)

    def averaged(flat_state, flat_params):
        point = submission.eval_params(
            jax.tree.unflatten(state_tree, flat_state), jax.tree.unflatten(param_tree, flat_params)
        )
        return jax.tree.leaves(point)

    loss = jax.ShapeDtypeStruct((), jnp.float32)

    def exported(name: str, fn, *shapes) -> bytes:
        try:
            return bytes(export.export(jax.jit(fn))(*shapes).serialize())
        except Exception as error:
            raise SubmissionFailure(
                f"cannot export {submission.name}'s {name}: {type(error).__name__}: "
                f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            ) from error

    return OptimizerProgram(
        batch_size=info.batch_size,
        init=exported("optimizer init", init, param_leaves),
        update=exported("optimizer update", update, param_leaves, state_leaves, param_leaves, loss),
        eval_params=(
            exported("eval_params", averaged, state_leaves, param_leaves)
            if submission.eval_params is not None
            else None
        ),
    )
