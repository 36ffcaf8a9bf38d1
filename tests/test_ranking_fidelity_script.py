"""bench/ranking_fidelity.py end to end on a shrunken study: three built-in entries, one
workload, one study of one trial, a store of its own; resumed, exported and re-scored."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from optarena.harness import cli, reproduce

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = """published_name,ruleset,optarena_name
baseline,external_tuning,nadamw
schedule_free_adamw,external_tuning,schedule_free_adamw
amos,external_tuning,
baseline,self_tuning,nadamw
"""


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "ranking_fidelity", ROOT / "bench" / "ranking_fidelity.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _load_script()


def _script(capsys, *options: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = SCRIPT.main(list(options))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_shrunken_study_runs_resumes_and_reproduces(tmp_path, data_dir, capsys):
    (tmp_path / "entries.csv").write_text(ENTRIES)
    options = (
        "--entries", str(tmp_path / "entries.csv"), "--suite", "quick",
        "--workloads", "digits_mlp",
        "--studies", "1", "--trials", "1", "--max-steps", "30", "--budget-factor", "100",
        "--executor", "in-process", "--db", f"sqlite:///{tmp_path / 'study.db'}",
        "--data-dir", data_dir, "--replicates", "50", "--output-dir", str(tmp_path / "out"),
        "--json",
    )  # fmt: skip
    code, out, err = _script(capsys, *options)
    assert code == 0, err
    assert "3 trials: 0 already stored, 3 to run" in err
    found = json.loads(out)
    entries = [(e["ruleset"], e["published_name"], e["optarena_name"]) for e in found["entries"]]
    assert entries == [
        ("external", "schedule_free_adamw", "schedule_free_adamw"),
        ("external", "baseline", "nadamw"),
        ("self", "baseline", "nadamw"),
    ]
    assert [e["published_rank"] for e in found["entries"]] == [1, 2, 1]
    assert all(0 <= e["score"] <= 1 and 0 <= e["steps_score"] <= 1 for e in found["entries"])
    assert {(s["ruleset"], s["value"], s["entries"]) for s in found["summary"]} == {
        ("external", "score", 2),
        ("external", "steps_score", 2),
        ("self", "score", 1),
        ("self", "steps_score", 1),
    }
    assert {w["workload"] for w in found["workloads"]} == {"digits_mlp"}

    code, out, err = _script(capsys, *options)
    assert code == 0, err
    assert "3 trials: 3 already stored, 0 to run" in err
    assert json.loads(out)["entries"] == found["entries"]

    files = found["files"]
    assert {Path(path).parent for path in files.values()} == {tmp_path / "out"}
    times, scores = files["times"], files["scores"]
    capsys.readouterr()
    assert cli.main(["reproduce", "--times", times, "--scores", scores, "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert len(compared) == 3 and all(row["match"] for row in compared)


def test_a_bad_mapping_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "entries.csv").write_text("published_name,ruleset,optarena_name\nx,weekly,adam\n")
    db = tmp_path / "s.db"
    code, out, err = _script(
        capsys, "--entries", str(tmp_path / "entries.csv"), "--db", f"sqlite:///{db}"
    )
    assert code == 2 and out == "" and err.count("\n") == 1 and "unknown ruleset" in err
    assert not db.exists()


def _committed_studies() -> list[Path]:
    return sorted((ROOT / "bench" / "ranking_fidelity").rglob("*-times.csv"))


def test_the_committed_studies_are_there_and_rescore_within_tolerance():
    """Every study committed next to the script re-scores, from its times, to the scores it
    recorded (the README's table comes from them)."""
    studies = _committed_studies()
    assert studies, "the measured study's results are committed in bench/ranking_fidelity/"
    for times in studies:
        scores = times.with_name(times.name.replace("-times.csv", "-scores.csv"))
        checked = reproduce.rescore_times(str(times), str(scores))
        assert len(checked) > 0 and checked["match"].all(), checked[~checked["match"]]
