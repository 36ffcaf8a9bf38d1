"""Shared pieces of image-reconstruction workloads: L1 loss, judged by PSNR (higher is better)."""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from optarena.workloads import data
from optarena.workloads.base import Arrays, Batch, ModelState, Params, Workload
from optarena.workloads.spec import WorkloadSpec

PEAK = 1.0
"""Signal peak for PSNR: images live in [0, 1]."""


def make_reconstruction_workload(
    spec: WorkloadSpec,
    model: nn.Module,
    builder_cls: type,
    input_key: str,
    target_key: str,
    input_shape: tuple,
) -> Workload:
    """A `Workload` for ``model`` mapping ``input_key`` images to ``target_key`` images.

    Trained with the mean absolute error; evaluated by the mean over images of each image's
    PSNR, ``10 log10(PEAK^2 / MSE)``.
    """

    def init(rng: jax.Array) -> tuple[Params, ModelState]:
        variables = dict(model.init({"params": rng}, jnp.zeros((1, *input_shape)), train=False))
        return variables.pop("params"), variables

    def loss(params, model_state, batch: Batch, rng, *, train: bool):
        del rng
        output = model.apply({"params": params, **model_state}, batch[input_key], train=train)
        return jnp.abs(output - batch[target_key]).mean(), (model_state, {})

    def eval_sums(params, model_state, batch: Batch) -> dict[str, jax.Array]:
        output = model.apply({"params": params, **model_state}, batch[input_key], train=False)
        error = output - batch[target_key]
        axes = tuple(range(1, error.ndim))
        mse = jnp.maximum(jnp.mean(error**2, axis=axes), 1e-10)
        psnr = 10.0 * jnp.log10(PEAK**2 / mse)
        weight = batch[data.WEIGHT_KEY]
        return {
            "psnr": jnp.sum(psnr * weight),
            "l1": jnp.sum(jnp.mean(jnp.abs(error), axis=axes) * weight),
            "count": jnp.sum(weight),
        }

    def metrics(sums: Mapping[str, float]) -> dict[str, float]:
        return {"psnr": sums["psnr"] / sums["count"], "loss": sums["l1"] / sums["count"]}

    def load_split(split: str, data_dir: str) -> Arrays:
        return data.load_split(builder_cls, split, data_dir)

    return Workload(
        spec=spec, init=init, loss=loss, eval_sums=eval_sums, metrics=metrics, load_split=load_split
    )
