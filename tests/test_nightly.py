"""The nightly job end to end on digits_mlp: two nights reuse every trial and report no
regression; a submission with a broken learning rate is flagged alone, with exit status 3."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from optarena.harness import cli, nightly_config
from optarena.harness.cli.common import Exit
from optarena.workloads import registry

VARIANT = '''"""NAdamW with its learning rate scaled: a test submission."""

from optarena.submissions.api import Submission
from optarena.submissions.nadamw import DEFAULT_HPARAMS, make_optimizer as nadamw

LR_SCALE = 1.0


def make_optimizer(hparams, info):
    point = {{**DEFAULT_HPARAMS, **(hparams or {{}})}}
    point["learning_rate"] *= LR_SCALE
    return nadamw(point, info)


SUBMISSION = Submission(
    name="{name}",
    make_optimizer=make_optimizer,
    search_space=[{{"learning_rate": {lr}}}],
    default_hparams=DEFAULT_HPARAMS,
)
'''
NAMES = {"nadamw_a": 3e-3, "nadamw_b": 2e-3, "nadamw_c": 4e-3}


def _main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _write_config(folder: Path) -> Path:
    """Three submissions, digits_mlp only, two studies of one trial, capped at 500 steps."""
    paths = ", ".join(f'"{folder / name}.py"' for name in NAMES)
    config = folder / "nightly.toml"
    config.write_text(
        f"""
suite = "quick"
workloads = ["digits_mlp"]
rulesets = ["external"]
studies = 2
trials = 1
max_steps = 500
budget_factor = 20
submissions = [{paths}]
store = "sqlite:///{folder / "nightly.db"}"
output_dir = "{folder / "out"}"
executor = "in-process"
timing_seeds = 1
timing_steps = 100
replicates = 200
"""
    )
    return config


def _benchmark_trial_ids(folder: Path) -> list[int]:
    with sqlite3.connect(folder / "nightly.db") as db:
        return [r[0] for r in db.execute("SELECT trial_id FROM benchmark_trials ORDER BY 1")]


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("nightly")
    for name, lr in NAMES.items():
        (folder / f"{name}.py").write_text(VARIANT.format(name=name, lr=lr))
    config = _write_config(folder)
    first = _main("nightly", "--config", str(config))
    ids_after_first = _benchmark_trial_ids(folder)
    second = _main("nightly", "--config", str(config))
    return folder, first, second, ids_after_first


def test_second_night_reuses_every_trial_and_reports_no_regression(two_nights):
    folder, first, second, ids_after_first = two_nights
    assert first[0] == 0, first[2]
    assert second[0] == 0, second[2]
    assert "6 trials run, 0 reused" in first[1]
    assert "0 trials run, 6 reused" in second[1]
    assert _benchmark_trial_ids(folder) == ids_after_first and len(ids_after_first) == 6
    with sqlite3.connect(folder / "nightly.db") as db:
        runs = db.execute(
            "SELECT id, snapshot_id, previous_run_id, regressions FROM nightly_runs ORDER BY id"
        ).fetchall()
        timing = db.execute("SELECT run_id, workload, seed FROM nightly_timing").fetchall()
        ran = db.execute("SELECT run_id, count(*) FROM nightly_trials GROUP BY run_id").fetchall()
    assert runs == [(1, 1, None, 0), (2, 2, 1, 0)]
    assert sorted(timing) == [(1, "digits_mlp", 0), (2, "digits_mlp", 0)]
    assert ran == [(1, 6)]  # the second night ran no benchmark trial
    night = next(p for p in (folder / "out").iterdir() if p.name.endswith("snapshot2"))
    report = (night / "report.md").read_text()
    assert "**No regression.**" in report
    assert "compared with snapshot 1" in report
    assert report.count("| within noise |") == 3
    assert "rank changes: none" in report
    # The re-timed reference trial did the same steps on both nights.
    assert "not the same computation" not in report
    assert (night / "index.html").read_text().startswith("<!DOCTYPE html>")
    assert (folder / "out" / "latest" / "report.md").read_text() == report


def _score_rows(report: str) -> dict[str, str]:
    """Submission -> verdict cell of the scores table."""
    rows = {}
    for line in report.splitlines():
        match = re.match(r"\| `(nadamw_\w)` \| \d+ -> \d+ \|", line)
        if match:
            rows[match.group(1)] = line.rstrip(" |").rsplit("|", 1)[-1].strip()
    return rows


def test_broken_learning_rate_is_flagged_alone_with_exit_3(two_nights, tmp_path):
    folder = tmp_path / "night3"
    shutil.copytree(two_nights[0], folder)
    config = _write_config(folder)
    broken = folder / "nadamw_b.py"
    broken.write_text(broken.read_text().replace("LR_SCALE = 1.0", "LR_SCALE = 1e-4"))
    code, out, err = _main("nightly", "--config", str(config))
    assert code == Exit.REGRESSION == 3, err
    assert "2 trials run, 4 reused" in out
    assert "REGRESSION: nadamw_b (external)" in out
    report = (folder / "out" / "latest" / "report.md").read_text()
    assert "- `nadamw_b` (external): digits_mlp;" in report
    verdicts = _score_rows(report)
    assert verdicts["nadamw_b"] == "REGRESSED (digits_mlp)"
    assert verdicts["nadamw_a"] == verdicts["nadamw_c"] == "ok"
    assert "| `nadamw_b` | digits_mlp |" in report and "| newly missed |" in report


def test_reproduce_reruns_stored_trials_exactly_and_reports_tampering(two_nights, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(two_nights[0], folder)
    db = f"sqlite:///{folder / 'nightly.db'}"
    code, out, err = _main("reproduce", "--snapshot", "2", "--db", db)
    assert code == 0, err
    assert "15 of 15 values within 0.0001" in out

    with sqlite3.connect(folder / "nightly.db") as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT t.trial_id FROM snapshot_trials t WHERE t.snapshot_id = 2 "
                "AND t.submission = 'nadamw_a' ORDER BY 1"
            )
        ]
    assert len(ids) == 2
    rerun = ("reproduce", "--rerun", "--submission", "nadamw_a", "--executor", "in-process")
    code, out, err = _main(*rerun, "--db", db)
    assert code == 0, err
    assert "2 of 2 trials reproduced exactly" in out

    with sqlite3.connect(folder / "nightly.db") as conn:
        conn.execute(
            "UPDATE eval_points SET validation = json_set(validation, '$.error_rate', 0.5) "
            "WHERE trial_id = ?",
            (ids[0],),
        )
    tampered = ("reproduce", "--trials", str(ids[0]), "--executor", "in-process", "--db", db)
    code, out, err = _main(*tampered)
    assert code == 4
    assert f"trial {ids[0]} " in err and "DIFFERS" in err
    assert "0 of 1 trials reproduced exactly; differ: " + str(ids[0]) in out
    first = registry.get("digits_mlp").spec.eval_every_steps
    assert f"step {first}: validation {{'error_rate': 0.5," in err

    # The copied submission is the one this store's trials were run from, and it is edited.
    with sqlite3.connect(folder / "nightly.db") as conn:
        conn.execute(
            "UPDATE submissions SET origin = replace(origin, ?, ?)",
            (str(two_nights[0]), str(folder)),
        )
    (folder / "nadamw_a.py").write_text((folder / "nadamw_a.py").read_text() + "\n# edited\n")
    code, _, err = _main("reproduce", "--trials", str(ids[1]), "--db", db)
    assert code == 4
    assert "nadamw_a's source changed since it ran" in err


def test_reproduce_times_matches_published_v06_scores():
    published = Path(__file__).resolve().parents[1] / "scoring" / "published" / "algoperf_v06"
    code, out, err = _main(
        "reproduce",
        "--times",
        str(published / "times.csv"),
        "--scores",
        str(published / "published_scores.csv"),
    )
    assert code == 0, err
    assert "2 of 2 values within 0.0001" in out
    assert re.search(r"shampoo.*0\.624400.*0\.624369.*yes", out)


def test_reproduce_times_flags_a_wrong_recorded_score(tmp_path):
    published = Path(__file__).resolve().parents[1] / "scoring" / "published" / "algoperf_v06"
    scores = tmp_path / "scores.csv"
    scores.write_text(
        "ruleset,submission,score\nexternal_tuning,shampoo,0.6250\n"
        "external_tuning,baseline,0.4590\n"
    )
    code, out, _ = _main(
        "reproduce", "--times", str(published / "times.csv"), "--scores", str(scores)
    )
    assert code == 4
    assert "1 of 2 values within 0.0001" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("studies = 2\nstudys = 3\n", "unknown key(s) studys"),
        ('studies = "three"\n', "studies must be an integer"),
        ("rulesets = ['external', 'fast']\n", "rulesets must be a non-empty list"),
        ("level = 1.5\n", "level must be between 0 and 1"),
        ("studies = [\n", "not valid TOML"),
        ('submissions = ["no_such_submission"]\n', "unknown submission 'no_such_submission'"),
        ('workloads = ["mnist_cnn"]\n', "workloads must be base workloads"),
        ('ray_address = "head:6379"\n', 'ray_address needs executor = "ray"'),
        ('executor = "ray"\nslurm_partition = "gpu"\n', 'need executor = "slurm"'),
        ('executor = "slurm"\nslurm_gpus_per_trial = 0\n', "must be positive, got 0"),
        ("held_out_variants = -1\n", "held_out_variants must be an integer from 0 to 100"),
        ("held_out_variants = true\n", "held_out_variants must be an integer"),
        ("held_out_variants = 1.0\n", "held_out_variants must be an integer"),
        ("held_out = false\n", "held_out is now held_out_variants"),
    ],
)
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, text, message):
    config = tmp_path / "nightly.toml"
    config.write_text(
        text + f'store = "sqlite:///{tmp_path / "n.db"}"\noutput_dir = "{tmp_path / "out"}"\n'
    )
    code, _, err = _main("nightly", "--config", str(config))
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nightly.toml"]


def test_defaults_need_no_config():
    config = nightly_config.load(None)
    assert config.suite == "quick" and config.rulesets == ("external", "self")
    assert (config.studies, config.trials, config.timing_seeds) == (3, 2, 2)
    assert config.normalize_timing is False


def test_scheduler_example_runs_the_nightly_with_a_valid_config():
    root = Path(__file__).resolve().parent.parent
    workflow = (root / ".ci" / "nightly.yml").read_text()
    assert re.search(r'cron: "[0-9*/ ,-]+"', workflow)
    assert "optarena nightly --config .ci/nightly.toml" in workflow
    assert "gh run download" in workflow and "name: nightly-state" in workflow
    assert "actions/deploy-pages" in workflow
    config = nightly_config.load(str(root / ".ci" / "nightly.toml"))
    assert config.store == "sqlite:///nightly-state/nightly.db"
    assert "path: nightly-state/reports/latest" in workflow
    assert config.output_dir == "nightly-state/reports"


def test_normalized_night_divides_times_by_the_speed_of_the_night_that_ran_them(
    two_nights, tmp_path
):
    folder = tmp_path / "normalized"
    shutil.copytree(two_nights[0], folder)
    config = _write_config(folder)
    code, out, err = _main("nightly", "--config", str(config), "--normalize-timing")
    assert code == 0, err
    assert "0 trials run, 6 reused" in out
    with sqlite3.connect(folder / "nightly.db") as db:
        reference = dict(
            db.execute(
                "SELECT n.run_id, t.timed_sec FROM nightly_timing n "
                "JOIN trials t ON t.id = n.trial_id"
            ).fetchall()
        )
        assert sorted(reference) == [1, 2, 3]
        scored = db.execute(
            "SELECT s.time_to_target_sec, t.time_to_target_sec, r.run_id FROM snapshot_trials s "
            "JOIN trials t ON t.id = s.trial_id JOIN nightly_trials r ON r.trial_id = s.trial_id "
            "WHERE s.snapshot_id = 3"
        ).fetchall()
    assert len(scored) == 6 and {run for _, _, run in scored} == {1}
    speed = reference[1] / reference[3]  # night 1's machine relative to tonight's
    for normalized, measured, _ in scored:
        assert normalized == pytest.approx(measured / speed, rel=1e-12)
    report = (folder / "out" / "latest" / "report.md").read_text()
    assert "normalized by each night's machine speed" in report
    assert "first night with these settings" in report
