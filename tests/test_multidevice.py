"""Data parallelism over two fake CPU devices, in a subprocess (XLA_FLAGS must precede jax)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from optarena.workloads import data

REPO = Path(__file__).resolve().parents[1]
NUM_DEVICES = 2
CADENCE = 10

SCRIPT = textwrap.dedent(
    f"""
    import dataclasses
    import json

    import jax
    import optax

    from optarena.harness import runner
    from optarena.submissions import loader
    from optarena.submissions.api import Submission
    from optarena.workloads import data, registry

    assert jax.device_count() == {NUM_DEVICES}, jax.devices()
    data_dir = data.default_data_dir()
    base = registry.get("digits_mlp")
    spec = dataclasses.replace(base.spec, eval_every_steps={CADENCE}, validation_target=-1.0)
    workload = dataclasses.replace(base, spec=spec)
    config = runner.TrialConfig(seed=0, hparams=None, budget_sec=1e6, max_steps={2 * CADENCE})
    sgd = Submission(name="sgd", make_optimizer=lambda hparams, info: optax.sgd(0.5))

    def summary(result):
        return {{
            "status": result.status.value,
            "num_devices": result.num_devices,
            "num_steps": result.num_steps,
            "batch_size": result.batch_size,
            "points": [dataclasses.asdict(p) for p in result.eval_points],
        }}

    def error_of(call):
        try:
            call()
        except Exception as error:
            return [type(error).__name__, str(error)]
        return None

    out = {{}}
    nadamw = loader.load("nadamw").submission
    out["default_mesh"] = summary(runner.run_trial(workload, nadamw, config, data_dir=data_dir))
    for n in (1, {NUM_DEVICES}):
        mesh = runner.make_mesh(jax.devices()[:n])
        out[f"sgd_{{n}}"] = summary(
            runner.run_trial(workload, sgd, config, data_dir=data_dir, mesh=mesh)
        )
    odd_spec = dataclasses.replace(spec, batch_size=127)
    odd = dataclasses.replace(workload, spec=odd_spec)
    out["odd_spec_batch"] = error_of(lambda: runner.run_trial(odd, sgd, config, data_dir=data_dir))
    odd_hook = Submission(
        name="odd", make_optimizer=lambda hparams, info: optax.sgd(0.1),
        batch_size=lambda info: 127,
    )
    out["odd_hook_batch"] = error_of(
        lambda: runner.run_trial(workload, odd_hook, config, data_dir=data_dir)
    )
    print("RESULT " + json.dumps(out))
    """
)


def two_device_env(data_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={NUM_DEVICES}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env[data.DATA_DIR_ENV] = data_dir
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def two_device_run(data_dir):
    env = two_device_env(data_dir)
    process = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-5000:]
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, process.stdout[-5000:]
    return json.loads(lines[0].removeprefix("RESULT "))


def assert_finite_points(summary):
    assert [p["step"] for p in summary["points"]] == [CADENCE, 2 * CADENCE]
    for point in summary["points"]:
        assert math.isfinite(point["train_loss"])
        for split in ("validation", "test"):
            assert point[split], f"no {split} metrics"
            assert all(math.isfinite(v) for v in point[split].values()), point[split]


def test_trial_uses_every_device(two_device_run):
    result = two_device_run["default_mesh"]
    assert result["num_devices"] == NUM_DEVICES
    assert result["status"] == "not_reached"
    assert result["num_steps"] == 2 * CADENCE
    assert_finite_points(result)


def test_two_devices_train_like_one(two_device_run):
    # Data parallelism must not change the maths: with plain SGD (sensitive to the gradient's
    # scale, unlike Adam) the same seed gives the same losses on one and on two devices.
    one, two = two_device_run["sgd_1"], two_device_run["sgd_2"]
    assert one["num_devices"] == 1 and two["num_devices"] == NUM_DEVICES
    assert_finite_points(one)
    assert_finite_points(two)
    for a, b in zip(one["points"], two["points"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["validation"]["loss"] == pytest.approx(a["validation"]["loss"], rel=1e-4)
        assert b["examples"] == a["examples"]


@pytest.mark.parametrize("case", ["odd_spec_batch", "odd_hook_batch"])
def test_batch_not_divisible_by_devices_is_a_clear_error(two_device_run, case):
    error = two_device_run[case]
    assert error is not None, "a batch of 127 on 2 devices was accepted"
    kind, message = error
    assert kind in {"ValueError", "SubmissionFailure"}, error
    assert "127" in message and str(NUM_DEVICES) in message, message


ODD_BATCH_SUBMISSION = textwrap.dedent(
    """
    import optax
    from optarena.submissions.api import Submission

    SUBMISSION = Submission(
        name="odd_batch",
        make_optimizer=lambda hparams, info: optax.sgd(0.1),
        batch_size=lambda info: 127,
    )
    """
)


def test_command_line_runs_on_two_devices_and_rejects_odd_batches(data_dir, tmp_path):
    env = two_device_env(data_dir)
    db = f"sqlite:///{tmp_path / 'two.db'}"
    command = [sys.executable, "-m", "optarena", "run", "--workload", "digits_mlp"]
    ok = subprocess.run(
        [*command, "--submission", "nadamw", "--max-steps", "20", "--db", db, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert json.loads(ok.stdout)["num_devices"] == NUM_DEVICES

    (tmp_path / "odd.py").write_text(ODD_BATCH_SUBMISSION)
    odd_db = tmp_path / "odd.db"
    bad = subprocess.run(
        [*command, "--submission", str(tmp_path / "odd.py"), "--db", f"sqlite:///{odd_db}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "127" in bad.stderr, bad.stderr
    assert not odd_db.exists()
