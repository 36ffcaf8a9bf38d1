"""Bad input of every kind: one line on stderr, a non-zero exit, and the store unchanged."""

from __future__ import annotations

import hashlib
import sqlite3
import textwrap
from pathlib import Path

import pytest

from optarena.harness import cli

MARKUP_NAME = "odd[/]name[red]"
MARKUP_SUBMISSION = f"""
import optax
from optarena.submissions.api import Submission

def make_optimizer(hparams, info):
    if hparams["mode"] == 1:
        raise ValueError("bad [/] point [red]x")
    return optax.sgd(0.1)

SUBMISSION = Submission(
    name={MARKUP_NAME!r}, make_optimizer=make_optimizer,
    search_space=[{{"mode": 0}}, {{"mode": 1}}],
)
"""


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    """The command's exit status and output; argparse's own errors exit through SystemExit."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_names_and_reasons_with_markup_are_shown_as_they_are(capsys, tmp_path, data_dir):
    path = tmp_path / "odd.py"
    path.write_text(textwrap.dedent(MARKUP_SUBMISSION))
    db = f"sqlite:///{tmp_path / 'odd.db'}"
    code, out, err = _cli(
        capsys, "benchmark", "--submission", str(path), "--ruleset", "external", "--suite",
        "quick", "--workloads", "digits_mlp", "--studies", "1", "--trials",
        "2", "--max-steps", "10", "--db", db, "--data-dir", data_dir,
    )  # fmt: skip
    assert code == 0, err
    assert MARKUP_NAME in out
    for command in (("trials",), ("score",), ("leaderboard",), ("trial", "2")):
        code, out, err = _cli(capsys, *command, "--db", db)
        assert code == 0, (command, err)
        assert MARKUP_NAME in out, command
    assert "bad [/] point [red]x" in out  # the second trial's reason, as it was raised
    code, out, err = _cli(capsys, "check", str(path), "--data-dir", data_dir)
    assert code == 1
    assert "bad [/] point [red]x" in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--hparams", '{"learning_rate": NaN}'], "NaN is not a finite number"),
        (["--hparams", '{"learning_rate": Infinity}'], "Infinity is not a finite number"),
        (["--hparams", '{"learning_rate": 1e999}'], "learning_rate must be a finite number"),
        (["--max-steps", "10000000000"], "at most"),
    ],
    ids=["nan", "infinity", "overflow", "steps"],
)
def test_hyperparameters_and_counts_must_be_sane(capsys, tmp_path, data_dir, argv, says):
    store = tmp_path / "store.db"
    code, _, err = _cli(
        capsys, "run", "--workload", "digits_mlp", "--submission", "nadamw", *argv,
        "--db", f"sqlite:///{store}", "--data-dir", data_dir,
    )  # fmt: skip
    assert code == 2
    assert says in err.strip().splitlines()[-1], err
    assert not store.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["benchmark", "--submission", "nadamw", "--ruleset", "self", "--suite", "quick",
         "--studies", "1001"],
        ["benchmark", "--submission", "nadamw", "--ruleset", "external", "--suite", "quick",
         "--trials", "100000000000"],
        ["quickstart", "--seeds", "1000"],
        ["score", "--replicates", "10000000"],
    ],
    ids=["studies", "trials", "seeds", "replicates"],
)  # fmt: skip
def test_counts_have_upper_bounds(capsys, tmp_path, argv):
    store = tmp_path / "store.db"
    code, _, err = _cli(capsys, *argv, "--db", f"sqlite:///{store}")
    assert code == 2
    assert "must be at most" in err.strip().splitlines()[-1]
    assert not store.exists()


def test_a_store_that_cannot_be_written_fails_before_any_trial_runs(capsys, tmp_path, data_dir):
    store = tmp_path / "store.db"
    assert cli.main(
        ["run", "--workload", "digits_mlp", "--submission", "nadamw", "--max-steps", "5",
         "--db", f"sqlite:///{store}", "--data-dir", data_dir]
    ) == 0  # fmt: skip
    capsys.readouterr()
    before = _sha(store)
    read_only = f"sqlite:///file:{store}?mode=ro&uri=true"
    for argv in (
        ["run", "--workload", "digits_mlp", "--submission", "nadamw", "--max-steps", "5"],
        ["benchmark", "--submission", "nadamw", "--ruleset", "self", "--suite", "quick",
         "--workloads", "digits_mlp", "--studies", "1", "--max-steps", "5"],
    ):  # fmt: skip
        code, _, err = _cli(capsys, *argv, "--db", read_only, "--data-dir", data_dir)
        assert code == 2
        last = err.strip().splitlines()[-1]
        assert "cannot write to store" in last and "readonly" in last, err
        assert "[1/1]" not in err, "no trial ran"
    assert _sha(store) == before
    assert sqlite3.connect(store).execute("select count(*) from trials").fetchone() == (1,)


def test_a_times_table_has_exactly_the_documented_columns(capsys, tmp_path):
    table = tmp_path / "times.csv"
    table.write_text(
        "ruleset,submission,workload,base_workload,time_to_target_sec,comment\n"
        "external,a,w,w,1.5,fast\n"
    )
    code, _, err = _cli(capsys, "score", "--times", str(table))
    assert code == 2
    assert "unknown column(s) comment" in err and len(err.strip().splitlines()) == 1
