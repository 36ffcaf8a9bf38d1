"""The JAX half of a workload: pure functions over pytrees, plus how to get its data.

The harness sees only these functions and the spec; models, losses and metrics
stay inside the workload's own module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from optarena.workloads.spec import WorkloadSpec

Params = Any
ModelState = Any
Batch = Mapping[str, jax.Array]
Arrays = dict[str, np.ndarray]

InitFn = Callable[[jax.Array], tuple[Params, ModelState]]
"""``init(rng) -> (params, model_state)``."""

LossFn = Callable[..., tuple[jax.Array, tuple[ModelState, Mapping[str, jax.Array]]]]
"""``loss(params, model_state, batch, rng, *, train) -> (mean_loss, (model_state, aux))``."""

EvalSumsFn = Callable[[Params, ModelState, Batch], dict[str, jax.Array]]
"""``eval_sums(params, model_state, batch) -> {name: sum over the batch}``, weighting each
example by ``batch["weight"]`` (0 for padding) so sums add up across batches."""

MetricsFn = Callable[[Mapping[str, float]], dict[str, float]]
"""``metrics(sums) -> {metric: value}`` from the sums of a whole split."""

LoadSplitFn = Callable[[str, str], Arrays]
"""``load_split(split, data_dir) -> {feature: array}`` for the train, validation and test splits."""


@dataclasses.dataclass(frozen=True)
class Workload:
    """A spec bundled with the pure functions that train and evaluate it."""

    spec: WorkloadSpec
    init: InitFn
    loss: LossFn
    eval_sums: EvalSumsFn
    metrics: MetricsFn
    load_split: LoadSplitFn

    @property
    def name(self) -> str:
        return self.spec.name
