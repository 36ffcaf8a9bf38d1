"""What a submission receives never reveals the workload's name or its validation and test data.

A spy submission records everything the harness hands it during a real trial: ``hparams`` and
``WorkloadInfo`` in its factory, the arguments of its optimizer's ``init`` and ``update``, and
those of its ``eval_params`` hook. Everything reachable from them is walked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import optax

from optarena.harness import runner
from optarena.submissions.api import Submission, WorkloadInfo
from optarena.workloads import registry

WORKLOAD = "digits_mlp"
ALLOWED_INFO = {"step_hint", "budget_sec", "batch_size", "num_train_examples", "num_devices"}


def spy_submission(seen: dict[str, list]) -> Submission:
    def make_optimizer(hparams, info):
        seen["factory"].append((hparams, info))
        inner = optax.sgd(0.01)

        def init(params):
            seen["init"].append(params)
            return inner.init(params)

        def update(updates, state, params=None, **extra_args):
            seen["update"].append((updates, state, params, extra_args))
            return inner.update(updates, state, params)

        return optax.GradientTransformationExtraArgs(init, update)

    def eval_params(opt_state, params):
        seen["eval_params"].append((opt_state, params))
        return params

    return Submission(
        name="spy",
        make_optimizer=make_optimizer,
        search_space={"learning_rate": {"feasible_points": [0.01]}},
        default_hparams={"learning_rate": 0.01},
        eval_params=eval_params,
    )


def reachable(obj: Any, found: list | None = None, depth: int = 0) -> list:
    """Every value reachable from ``obj`` through containers, dataclasses and pytrees."""
    found = [] if found is None else found
    found.append(obj)
    if depth > 20:
        return found
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        children = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
        children += list(getattr(obj, "__dict__", {}).values())
    elif isinstance(obj, Mapping):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, list | tuple | set | frozenset):
        children = list(obj)
    elif isinstance(obj, jax.Array | np.ndarray | str | int | float | bool) or obj is None:
        children = []
    else:
        children = jax.tree.leaves(obj)
        if children == [obj]:
            children = list(getattr(obj, "__dict__", {}).values())
    for child in children:
        reachable(child, found, depth + 1)
    return found


def test_info_has_only_the_allowed_fields():
    assert {f.name for f in dataclasses.fields(WorkloadInfo)} == ALLOWED_INFO


def test_a_submission_sees_neither_the_name_nor_the_held_out_data(data_dir):
    workload = registry.get(WORKLOAD)
    seen: dict[str, list] = {"factory": [], "init": [], "update": [], "eval_params": []}
    submission = spy_submission(seen)
    config = runner.TrialConfig(
        seed=0, hparams=submission.default_hparams, budget_sec=1e6, max_steps=3
    )
    result = runner.run_trial(workload, submission, config, data_dir=data_dir)
    assert result.num_steps == 3
    assert all(seen.values()), {k: len(v) for k, v in seen.items()}

    params, _ = jax.eval_shape(workload.init, jax.random.PRNGKey(0))
    param_shapes = {leaf.shape for leaf in jax.tree.leaves(params)}
    held_out = {split: workload.load_split(split, data_dir) for split in ("validation", "test")}
    held_out_sizes = {len(next(iter(arrays.values()))) for arrays in held_out.values()}
    assert not held_out_sizes & {dim for shape in param_shapes for dim in shape}, (
        "pick a workload whose parameter shapes cannot be mistaken for a held-out split"
    )
    names = set(registry.names()) | {workload.spec.dataset, workload.spec.model}

    hparams, info = seen["factory"][0]
    assert isinstance(info, WorkloadInfo)
    assert dict(hparams) == {"learning_rate": 0.01}
    for value in reachable(info):
        assert not isinstance(value, str | np.ndarray | jax.Array), f"info carries {value!r}"
    values = reachable(seen)
    assert sum(isinstance(v, jax.Array) for v in values) >= 2 * len(param_shapes)
    for value in values:
        if isinstance(value, str):
            assert not any(name in value for name in names), f"a submission saw {value!r}"
        if isinstance(value, jax.Array | np.ndarray):
            assert value.shape == () or value.shape in param_shapes, (
                f"a submission received an array of shape {value.shape}, not parameter-shaped"
            )
            assert not held_out_sizes & set(value.shape), value.shape

    # Optimizer arguments are the parameter tree (or gradients shaped like it) and the loss.
    for updates, _, update_params, extra_args in seen["update"]:
        assert jax.tree.structure(updates) == jax.tree.structure(params)
        assert jax.tree.structure(update_params) == jax.tree.structure(params)
        assert set(extra_args) == {"value"} and extra_args["value"].shape == ()
