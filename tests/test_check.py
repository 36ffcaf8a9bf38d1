"""``optarena check``: the template passes, and each kind of broken submission fails with one
line that names the problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from optarena.harness import check, cli
from optarena.submissions import loader

TEMPLATE = Path(__file__).resolve().parents[1] / "submissions" / "template.py"

HEADER = """
import jax
import jax.numpy as jnp
import optax

from optarena.submissions.api import Submission
"""

SGD = "optax.sgd(0.1)"

SPACE = '{"learning_rate": {"min": 0.01, "max": 0.1, "scaling": "log"}}'


def source(
    factory: str = SGD,
    *,
    space: str = SPACE,
    extra: str = "",
    fields: str = "",
    body: str = "",
) -> str:
    """A submission file: ``body`` at module level, then a factory returning ``factory``."""
    return (
        HEADER
        + textwrap.dedent(body)
        + textwrap.dedent(
            f"""

            def make_optimizer(hparams, info):
                {extra}
                return {factory}


            SUBMISSION = Submission(
                name="checked",
                make_optimizer=make_optimizer,
                search_space={space},
                {fields}
            )
            """
        )
    )


def run(tmp_path: Path, text: str, data_dir: str, **kwargs):
    path = tmp_path / "candidate.py"
    path.write_text(text)
    return check.run_checks(str(path), data_dir=data_dir, **kwargs)


def failures(results) -> dict[str, str]:
    return {r.name: r.message for r in results if not r.passed}


def assert_one_line_failure(results, name: str, *needles: str) -> str:
    failed = failures(results)
    assert name in failed, f"expected {name!r} to fail; results: {results}"
    message = failed[name]
    assert "\n" not in message and message.strip() == message
    for needle in needles:
        assert needle in message, message
    return message


def test_template_passes_every_check_through_the_cli(capsys, data_dir):
    code = cli.main(["check", str(TEMPLATE), "--data-dir", data_dir])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    lines = out.strip().splitlines()
    assert all(line.startswith("[ok  ]") for line in lines[:-1]), out
    names = [line.split("]", 1)[1].split(":", 1)[0].strip() for line in lines[:-1]]
    assert names == [
        "loads and exposes SUBMISSION",
        "ruleset",
        "state is a pytree of arrays",
        "search space",
        "every workload's parameter tree",
        "init and update are pure",
        "jit without recompiling after the first step",
        "updates are finite on real steps",
    ]
    assert lines[-1].endswith("all 8 checks passed")
    assert "optarena:" not in err


def test_missing_submission_fails_in_one_line_with_exit_1(capsys, tmp_path, data_dir):
    path = tmp_path / "empty.py"
    path.write_text("import optax\n")
    code = cli.main(["check", str(path), "--data-dir", data_dir])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.count("\n") == 1 and out.startswith("[FAIL] loads and exposes SUBMISSION")
    assert "defines no SUBMISSION" in out
    assert err.count("\n") == 1 and "defines no SUBMISSION" in err


def test_a_reference_to_nothing_is_bad_input(capsys, tmp_path, data_dir):
    code = cli.main(["check", str(tmp_path / "absent.py"), "--data-dir", data_dir])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "not found" in err
    code = cli.main(["check", "no_such_optimizer", "--data-dir", data_dir])
    assert code == 2 and "unknown submission" in capsys.readouterr().err


def test_factory_that_raises(tmp_path, data_dir):
    text = source(extra="raise RuntimeError('forgot to set the schedule')")
    _, results = run(tmp_path, text, data_dir, workloads_check=False)
    assert_one_line_failure(
        results, "state is a pytree of arrays", "make_optimizer", "forgot to set the schedule"
    )


def test_factory_that_fails_on_one_workload_names_it(tmp_path, data_dir):
    extra = "assert info.num_train_examples < 100_000, 'too many examples'"
    _, results = run(tmp_path, source(extra=extra), data_dir)
    assert_one_line_failure(
        results, "every workload's parameter tree", "click_dlrm", "too many examples"
    )
    assert "updates are finite on real steps" not in failures(results)


def test_state_that_is_not_a_pytree(tmp_path, data_dir):
    body = """
    class Counter:
        def __init__(self, value):
            self.value = value


    def _init(params):
        return Counter(jnp.zeros([], jnp.int32))


    def _update(updates, state, params=None):
        return updates, Counter(state.value + 1)
    """
    text = source("optax.GradientTransformation(_init, _update)", body=body)
    _, results = run(tmp_path, text, data_dir, workloads_check=False)
    assert_one_line_failure(results, "state is a pytree of arrays", "Counter", "pytree")
    # The checks that need a state are not run on top of a broken one.
    assert [r.name for r in results][-1] == "state is a pytree of arrays"


def test_update_that_recompiles(tmp_path, data_dir):
    body = """
    def _init(params):
        return {"count": jnp.zeros([], jnp.int32)}


    def _update(updates, state, params=None):
        scaled = jax.tree.map(lambda g: -0.1 * g, updates)
        return scaled, {"count": state["count"] + 1.0}
    """
    text = source("optax.GradientTransformation(_init, _update)", body=body)
    _, results = run(tmp_path, text, data_dir, workloads_check=False)
    assert_one_line_failure(
        results,
        "jit without recompiling after the first step",
        "['count']",
        "int32",
        "float32",
        "recompiles",
    )


def test_invalid_search_space(tmp_path, data_dir):
    space = '{"learning_rate": {"min": 0.1, "max": 0.01, "scaling": "log"}}'
    _, results = run(tmp_path, source(space=space), data_dir, workloads_check=False)
    assert_one_line_failure(results, "search space", "learning_rate", "min <= max")


def test_a_sampled_point_that_does_not_build(tmp_path, data_dir):
    space = '{"momentum": {"feasible_points": [0.9, 1.5]}}'
    extra = "assert hparams is None or hparams['momentum'] < 1, 'momentum must be below 1'"
    fields = 'default_hparams={"momentum": 0.9},'
    text = source("optax.sgd(0.1)", space=space, extra=extra, fields=fields)
    _, results = run(tmp_path, text, data_dir, workloads_check=False)
    assert_one_line_failure(results, "search space", "momentum=1.5", "momentum must be below 1")


def test_impure_update(tmp_path, data_dir):
    body = """
    TRACES = [0]


    def _update(updates, state, params=None):
        TRACES[0] += 1
        return jax.tree.map(lambda g: -0.01 * TRACES[0] * g, updates), state
    """
    text = source("optax.GradientTransformation(lambda p: optax.EmptyState(), _update)", body=body)
    _, results = run(tmp_path, text, data_dir, workloads_check=False)
    assert_one_line_failure(results, "init and update are pure", "Python state")


def test_non_finite_updates(tmp_path, data_dir):
    body = """
    def _update(updates, state, params=None):
        return jax.tree.map(lambda g: g / 0.0, updates), state
    """
    text = source("optax.GradientTransformation(lambda p: optax.EmptyState(), _update)", body=body)
    _, results = run(tmp_path, text, data_dir, workloads_check=False)
    assert_one_line_failure(results, "updates are finite on real steps", "non-finite")


def test_eval_params_with_another_structure(tmp_path, data_dir):
    fields = "eval_params=lambda opt_state, params: jax.tree.leaves(params),"
    _, results = run(tmp_path, source(fields=fields), data_dir, workloads_check=False)
    assert_one_line_failure(results, "eval_params", "structure")


def test_no_ruleset_can_run_it(tmp_path, data_dir):
    _, results = run(tmp_path, source(space="None"), data_dir, workloads_check=False)
    assert_one_line_failure(results, "ruleset", "self_tuning=True")


@pytest.mark.parametrize("name", loader.builtin_names())
def test_builtin_passes_check(name, data_dir):
    loaded, results = check.run_checks(name, data_dir=data_dir)
    assert loaded is not None and loaded.name == name
    assert check.passed(results), [check.format_line(r) for r in results if not r.passed]
    expected = 9 if loaded.submission.eval_params is not None else 8
    assert len(results) == expected
