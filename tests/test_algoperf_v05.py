"""The AlgoPerf v0.5 field as submissions: each entry's maths against a small reference (a numpy
transcription of its update rule, or the optax optimizer it reduces to), the group's registry,
and ``optarena check`` on every entry."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optarena.harness import check, cli
from optarena.submissions import WorkloadInfo, loader
from optarena.submissions.algoperf_v05 import cyclic_lr, generalized_adam, nadamp
from optarena.submissions.algoperf_v05.spaces import BASELINE_POINTS, SELF_TUNING_POINT

GROUP = "algoperf-v05"
INFO = WorkloadInfo(
    step_hint=40, budget_sec=10.0, batch_size=8, num_train_examples=64, num_devices=1
)
RNG = np.random.default_rng(0)
PARAMS = {
    "w": RNG.normal(size=(3, 4)).astype(np.float32),
    "b": RNG.normal(size=4).astype(np.float32),
}
GRADS = [
    {name: RNG.normal(size=value.shape).astype(np.float32) for name, value in PARAMS.items()}
    for _ in range(12)
]


def trajectory(tx: optax.GradientTransformation, steps: int = len(GRADS)) -> list[dict]:
    """The parameters after each of ``steps`` updates of ``tx`` on the fixed gradients."""
    params = jax.tree.map(jnp.asarray, PARAMS)
    state = tx.init(params)
    update = jax.jit(tx.update)
    out = []
    for grads in GRADS[:steps]:
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(jax.tree.map(np.asarray, params))
    return out


def assert_same_trajectory(got: list[dict], expected: list[dict], rtol: float = 2e-5) -> None:
    assert len(got) == len(expected)
    for step, (a, b) in enumerate(zip(got, expected, strict=True)):
        for name in b:
            np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=1e-6, err_msg=f"{step=}")


def numpy_run(step_fn, state: dict) -> list[dict]:
    """Apply ``step_fn(t, param, grad, state_for_param) -> new_param`` for t = 1, 2, ..."""
    params = {name: value.astype(np.float64) for name, value in PARAMS.items()}
    out = []
    for t, grads in enumerate(GRADS, start=1):
        params = {name: step_fn(t, params[name], grads[name], state[name]) for name in params}
        out.append(params)
    return out


def schedule_np(peak: float, warmup_factor: float, step_hint: int, t: int) -> float:
    warmup = int(warmup_factor * step_hint)
    if t < warmup:
        return peak * t / warmup
    fraction = min((t - warmup) / max(step_hint - warmup, 1), 1.0)
    return peak * 0.5 * (1 + math.cos(math.pi * fraction))


# The entries' maths.


@pytest.mark.parametrize("nesterov", [True, False])
def test_generalized_adam_with_preconditioning_is_nadamw_or_adamw(nesterov):
    point = {**SELF_TUNING_POINT, "nesterov": nesterov, "preconditioning": True}
    tx = generalized_adam.SUBMISSION.make_optimizer(point, INFO)
    schedule = optax.warmup_cosine_decay_schedule(0.0, point["learning_rate"], 0, INFO.step_hint)
    reference = (optax.nadamw if nesterov else optax.adamw)(
        schedule,
        1 - point["one_minus_beta1"],
        point["beta2"],
        eps=1e-8,
        weight_decay=point["weight_decay"],
    )
    assert_same_trajectory(trajectory(tx), trajectory(reference))


@pytest.mark.parametrize("nesterov", [True, False])
def test_generalized_adam_without_preconditioning_is_sgd_with_momentum(nesterov):
    point = {**generalized_adam.SGD_POINT, "nesterov": nesterov, "preconditioning": False}
    tx = generalized_adam.SUBMISSION.make_optimizer(point, INFO)
    beta1, wd = 1 - point["one_minus_beta1"], point["weight_decay"]

    def step(t, param, grad, state):
        state["v"] = grad + beta1 * state.get("v", 0.0)
        direction = grad + beta1 * state["v"] if nesterov else state["v"]
        lr = schedule_np(point["learning_rate"], point["warmup_factor"], INFO.step_hint, t - 1)
        return param - lr * (direction + wd * param)

    assert_same_trajectory(trajectory(tx), numpy_run(step, {"w": {}, "b": {}}))


def test_cyclic_lr_restarts_its_warmup_and_cosine_every_cycle():
    schedule = cyclic_lr.cyclic_schedule(0.01, 0.1, step_hint=200, num_cycles=2)
    for t in range(0, 200, 7):
        start, within = divmod(t, 100)
        del start
        expected = schedule_np(0.01, 0.1, 100, within)
        assert float(schedule(t)) == pytest.approx(expected, rel=1e-5, abs=1e-9), t
    assert float(schedule(100)) == 0.0 and float(schedule(150)) == pytest.approx(
        schedule_np(0.01, 0.1, 100, 50)
    )
    with pytest.raises(ValueError, match="num_cycles"):
        cyclic_lr.cyclic_schedule(0.01, 0.1, 200, 0)


def test_nadamp_at_one_half_is_nadam():
    got = trajectory(optax.chain(nadamp.scale_by_nadamp(0.9, 0.99, 0.5), optax.scale(-1e-2)))
    expected = trajectory(
        optax.chain(optax.scale_by_adam(0.9, 0.99, nesterov=True), optax.scale(-1e-2))
    )
    assert_same_trajectory(got, expected)


def test_nadamp_against_its_update_rule():
    b1, b2, p, lr, eps = 0.9, 0.99, 0.3, 1e-2, 1e-8

    def step(t, param, grad, state):
        state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * grad
        state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * grad**2
        m_hat = b1 * state["m"] / (1 - b1 ** (t + 1)) + (1 - b1) * grad / (1 - b1**t)
        v_hat = state["v"] / (1 - b2**t)
        return param - lr * m_hat / (v_hat**p + eps)

    got = trajectory(optax.chain(nadamp.scale_by_nadamp(b1, b2, p), optax.scale(-lr)))
    assert_same_trajectory(got, numpy_run(step, {"w": {}, "b": {}}), rtol=1e-4)


# The group.


def test_the_group_is_listed_apart_from_the_builtins_and_loads_by_name(capsys):
    assert cli.main(["submissions", "--group", GROUP, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [row["name"] for row in rows]
    assert names == loader.group_members(GROUP) and len(set(names)) == len(names)
    assert all(name.startswith("v05_") for name in names)
    assert not set(names) & set(loader.builtin_names())
    assert [row for row in rows if "error" in row] == []
    assert {row["origin"] for row in rows} == {f"{GROUP}:{name}" for name in names}
    by_name = {row["name"]: row for row in rows}
    assert by_name["v05_baseline"]["external_tuning"] and by_name["v05_baseline"]["self_tuning"]
    assert by_name["v05_adamg"]["self_tuning"] and not by_name["v05_adamg"]["external_tuning"]
    assert by_name["v05_baseline"]["search_space"] == BASELINE_POINTS


def test_a_group_entry_cannot_take_a_builtin_or_another_entrys_name():
    builtins = {"adam": "optarena.submissions.adam"}
    with pytest.raises(ValueError, match=r"'adam' is taken \(optarena.submissions.adam and x\)"):
        loader.grouped_registry(builtins, {GROUP: [("adam", "x")]})
    with pytest.raises(ValueError, match="'v05_a' is taken"):
        loader.grouped_registry(builtins, {GROUP: [("v05_a", "x")], "other": [("v05_a", "y")]})
    assert loader.grouped_registry(builtins, {GROUP: [("v05_a", "x")]}) == {"v05_a": (GROUP, "x")}


def test_an_unknown_group_or_name_is_refused_in_one_line(capsys):
    with pytest.raises(loader.SubmissionNotFound, match="unknown group 'v04'"):
        loader.group_members("v04")
    with pytest.raises(loader.SubmissionNotFound, match="groups: algoperf-v05"):
        loader.load("v05_no_such_entry")


@pytest.mark.parametrize("name", loader.group_members(GROUP))
def test_every_entry_passes_check(name, data_dir):
    loaded, results = check.run_checks(name, data_dir=data_dir, workloads_check=False)
    assert loaded is not None and loaded.name == name
    assert [r for r in results if not r.passed] == [], results
