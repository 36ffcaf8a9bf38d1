"""The AlgoPerf v0.5 field as submissions: each entry's maths against a small reference (a numpy
transcription of its update rule, or the optax optimizer it reduces to), the group's registry,
and ``optarena check`` on every entry."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from optarena.harness import check, cli
from optarena.submissions import WorkloadInfo, loader
from optarena.submissions.algoperf_v05 import (
    adamg,
    amos,
    averaging,
    baseline,
    caspr_adaptive,
    cyclic_lr,
    generalized_adam,
    nadamp,
    nadamw_sequential,
    schedule_free_prodigy,
)
from optarena.submissions.algoperf_v05.spaces import BASELINE_POINTS, SELF_TUNING_POINT

GROUP = "algoperf-v05"
PUBLISHED = Path(__file__).resolve().parents[1] / "scoring" / "published" / "algoperf_v05"
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


def trajectory(
    tx: optax.GradientTransformation, steps: int = len(GRADS), *, first: int = 0, only=None
) -> list[dict]:
    """The parameters (those named in ``only``, default all) after each of ``steps`` updates
    of ``tx``, from `PARAMS`, on the fixed gradients from the ``first``-th on."""
    names = only or tuple(PARAMS)
    params = {name: jnp.asarray(PARAMS[name]) for name in names}
    state = tx.init(params)
    update = jax.jit(tx.update)
    out = []
    for grads in GRADS[first : first + steps]:
        updates, state = update({name: grads[name] for name in names}, state, params)
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


@pytest.mark.parametrize("point", [None, BASELINE_POINTS[3]])
def test_baseline_is_nadamw_planned_for_three_quarters_of_the_step_hint(point):
    tx = baseline.SUBMISSION.make_optimizer(point, INFO)
    point = point or SELF_TUNING_POINT
    planned = int(0.75 * INFO.step_hint)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, point["learning_rate"], int(point["warmup_factor"] * planned), planned
    )
    reference = optax.nadamw(
        schedule,
        1 - point["one_minus_beta1"],
        point["beta2"],
        eps=1e-8,
        weight_decay=point["weight_decay"],
    )
    assert_same_trajectory(trajectory(tx), trajectory(reference))


def test_lawa_entries_record_from_the_burn_in_every_few_steps_of_the_step_hint():
    point = {**SELF_TUNING_POINT, "lawa_burnin_pct": 0.3, "lawa_every_pct": 0.06}
    tx = averaging.nadamw_lawa(INFO, **point, lawa_queue_len=2)
    params = jax.tree.map(jnp.asarray, PARAMS)
    state = tx.init(params)
    recorded = []
    for grads in GRADS + GRADS:
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        recorded.append(int(state.recorded))
    # Burn-in ceil(0.3 * 40) = 12, every ceil(0.06 * 40) = 3: steps 12, 15, 18, 21 (from 0).
    assert recorded == [0] * 12 + [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    with pytest.raises(ValueError, match="one of lawa_queue_len and lawa_beta"):
        averaging.nadamw_lawa(INFO, **point, lawa_queue_len=2, lawa_beta=0.9)


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


def test_amos_against_its_update_rule():
    xi, beta, momentum = 0.05, 0.98, 0.9
    eta = {"w": 1 / math.sqrt(3), "b": 0.5}

    def step(t, param, grad, state):
        name = "w" if param.ndim == 2 else "b"
        v = beta * state.get("v", 0.0) + (1 - beta) * grad**2
        b = state.get("b", 0.0)
        r = (1 - beta**t) / np.maximum(v, 2.0**-125)
        gamma = xi**2 * r * grad**2 / np.sqrt(1 + 0.25 * math.sqrt(xi) * b)
        lr = xi * eta[name]
        update = (-lr * np.sqrt(r) * grad - 0.5 * gamma * param) / (1 + 0.25 * math.sqrt(lr) * b)
        state["v"], state["b"] = v, b + gamma * (1 + b)
        state["m"] = momentum * state.get("m", 0.0) + (1 - momentum) * update
        return param + state["m"]

    tx = optax.chain(amos.scale_by_amos(xi, beta), optax.ema(momentum, debias=False))
    assert_same_trajectory(trajectory(tx), numpy_run(step, {"w": {}, "b": {}}), rtol=1e-4)
    assert amos.shape_eta((5, 3, 8)) == pytest.approx(1 / math.sqrt(15))


def inverse_fourth_root(stat: np.ndarray, eps: float) -> np.ndarray:
    values, vectors = np.linalg.eigh(stat)
    values = np.maximum(values, 0.0)
    return (vectors * (values + eps * max(values.max(), 1e-30)) ** -0.25) @ vectors.T


def test_caspr_combines_the_roots_as_a_kronecker_sum():
    beta2, eps = 0.9, 1e-4
    tx = caspr_adaptive.scale_by_caspr(beta2, eps, precondition_every=1)
    params = {"w": jnp.asarray(PARAMS["w"])}
    state = tx.init(params)
    left, right = np.zeros((3, 3)), np.zeros((4, 4))
    for grads in GRADS[:3]:
        g = grads["w"].astype(np.float64)
        direction, state = jax.jit(tx.update)({"w": grads["w"]}, state, params)
        left = beta2 * left + (1 - beta2) * g @ g.T
        right = beta2 * right + (1 - beta2) * g.T @ g
        lr, rr = inverse_fourth_root(left, eps), inverse_fourth_root(right, eps)
        joint = lr @ g + g @ rr
        np.testing.assert_allclose(direction["w"], lr @ joint + joint @ rr, rtol=2e-3)


def test_caspr_leaves_a_matrix_with_an_unpreconditioned_side_to_shampoo():
    from optarena.submissions.shampoo import scale_by_shampoo

    caspr = caspr_adaptive.scale_by_caspr(0.9, 1e-4, max_dim=3)
    shampoo = scale_by_shampoo(0.9, 1e-4, max_dim=3)
    only = ("w",)
    assert_same_trajectory(trajectory(caspr, only=only), trajectory(shampoo, only=only), rtol=1e-5)


def lawa_reference(start: int, every: int, record) -> tuple[list, list]:
    """Plain SGD (lr 0.1) trajectories and, after each step, the point to evaluate."""
    params = {name: value.astype(np.float64) for name, value in PARAMS.items()}
    recorded: list = []
    points, evaluated = [], []
    for t, grads in enumerate(GRADS, start=1):
        params = {name: params[name] - 0.1 * grads[name] for name in params}
        step = t - 1  # the entries count steps from 0
        if step >= start and step % every == 0:
            recorded.append(params)
        points.append(params)
        evaluated.append(record(recorded, params))
    return points, evaluated


def check_lawa(tx, hook, expected_points, expected_evaluated):
    params = jax.tree.map(jnp.asarray, PARAMS)
    state = tx.init(params)
    for grads, point, evaluated in zip(GRADS, expected_points, expected_evaluated, strict=True):
        updates, state = jax.jit(tx.update)(grads, state, params, value=jnp.zeros([]))
        params = optax.apply_updates(params, updates)
        for name in PARAMS:
            np.testing.assert_allclose(params[name], point[name], rtol=1e-5, atol=1e-6)
            got = jax.jit(hook)(state, params)[name]
            np.testing.assert_allclose(got, evaluated[name], rtol=1e-5, atol=1e-6)


def test_lawa_queue_evaluates_the_mean_of_the_last_points_once_full():
    def record(recorded, params):
        if len(recorded) < 3:
            return params
        return {n: np.mean([r[n] for r in recorded[-3:]], axis=0) for n in params}

    points, evaluated = lawa_reference(start=4, every=2, record=record)
    tx = averaging.lawa_queue(optax.sgd(0.1), start=4, every=2, length=3)
    check_lawa(tx, averaging.queue_average, points, evaluated)


def test_lawa_ema_evaluates_a_moving_average_of_the_recorded_points():
    def record(recorded, params):
        if not recorded:
            return params
        average = recorded[0]
        for point in recorded[1:]:
            average = {n: 0.7 * average[n] + 0.3 * point[n] for n in point}
        return average

    points, evaluated = lawa_reference(start=4, every=3, record=record)
    tx = averaging.lawa_ema(optax.sgd(0.1), start=4, every=3, beta=0.7)
    check_lawa(tx, averaging.ema_average, points, evaluated)


def test_schedule_free_prodigy_is_prodigy_inside_schedule_free():
    point = schedule_free_prodigy.SEARCH_SPACE[1]
    tx = schedule_free_prodigy.SUBMISSION.make_optimizer(point, INFO)
    warmup = optax.linear_schedule(0.0, 1.0, int(point["warmup_factor"] * INFO.step_hint))
    base = optax.contrib.prodigy(
        warmup, betas=(0.0, point["beta2"]), weight_decay=0.01, safeguard_warmup=True
    )
    reference = optax.contrib.schedule_free(base, warmup, b1=0.9)
    assert_same_trajectory(trajectory(tx), trajectory(reference), rtol=1e-6)


def test_adamg_against_its_update_rule():
    b1, b2, b3, p, q, eps = 0.95, 0.999, 0.95, 0.2, 0.24, 1e-8

    def step(t, param, grad, state):
        state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * grad**2
        state["r"] = b3 * state.get("r", 0.0) + (1 - b3) * p * state["v"] ** q
        state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * state["r"] * grad
        size = min(1.0, 1 / math.sqrt(t))
        return param - size * state["m"] / (1 - b1**t) / (np.sqrt(state["v"] / (1 - b2**t)) + eps)

    got = trajectory(adamg.SUBMISSION.make_optimizer(None, INFO))
    assert_same_trajectory(got, numpy_run(step, {"w": {}, "b": {}}), rtol=1e-4)


def test_nadamw_sequential_restarts_from_the_initial_parameters_with_each_point():
    first, second = optax.adam(0.05), optax.sgd(0.1, momentum=0.5)
    got = trajectory(nadamw_sequential.sequential_restarts([first, second], phase_steps=4))
    assert_same_trajectory(got[:4], trajectory(first, 4))
    # The fifth step is the restart: back to the start, and the second optimizer from there.
    assert_same_trajectory(got[4:5], [PARAMS])
    assert_same_trajectory(got[5:], trajectory(second, first=5))
    assert nadamw_sequential.SUBMISSION.make_optimizer(None, INFO) is not None


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


def test_entries_csv_maps_every_published_row_to_an_entry_of_its_ruleset():
    entries = pd.read_csv(PUBLISHED / "entries.csv", dtype=str, keep_default_na=False)
    published = pd.read_csv(PUBLISHED / "published_scores.csv")
    assert list(entries.columns) == ["published_name", "ruleset", "optarena_name"]
    assert sorted(zip(entries.ruleset, entries.published_name, strict=True)) == sorted(
        zip(published.ruleset, published.submission, strict=True)
    )
    entered = entries[entries.optarena_name != ""]
    assert set(entered.optarena_name) == set(loader.group_members(GROUP))
    assert len(entered[entered.ruleset == "external_tuning"]) >= 9
    for row in entered.itertuples():
        submission = loader.load(row.optarena_name).submission
        if row.ruleset == "self_tuning":
            assert submission.self_tuning, row
        else:
            assert submission.search_space is not None, row


@pytest.mark.parametrize("name", loader.group_members(GROUP))
def test_every_entry_passes_check(name, data_dir):
    loaded, results = check.run_checks(name, data_dir=data_dir, workloads_check=False)
    assert loaded is not None and loaded.name == name
    assert [r for r in results if not r.passed] == [], results
