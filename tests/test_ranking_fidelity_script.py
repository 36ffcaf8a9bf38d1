"""bench/ranking_fidelity.py end to end on a shrunken study: three built-in entries, one
workload, one study of one trial, a store of its own; resumed, exported and re-scored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from optarena.harness import cli

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = """published_name,ruleset,optarena_name
baseline,external_tuning,nadamw
schedule_free_adamw,external_tuning,schedule_free_adamw
amos,external_tuning,
baseline,self_tuning,nadamw
"""


def _script(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ranking_fidelity.py"), *options],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=os.environ,
    )


def test_a_shrunken_study_runs_resumes_and_reproduces(tmp_path, data_dir, capsys):
    (tmp_path / "entries.csv").write_text(ENTRIES)
    options = (
        "--entries", "entries.csv", "--suite", "quick", "--workloads", "digits_mlp",
        "--studies", "1", "--trials", "1", "--max-steps", "30", "--budget-factor", "100",
        "--executor", "in-process", "--db", f"sqlite:///{tmp_path / 'study.db'}",
        "--data-dir", data_dir, "--replicates", "50", "--output-dir", "out", "--json",
    )  # fmt: skip
    first = _script(tmp_path, *options)
    assert first.returncode == 0, first.stderr
    assert "3 trials: 0 already stored, 3 to run" in first.stderr
    found = json.loads(first.stdout)
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

    again = _script(tmp_path, *options)
    assert again.returncode == 0, again.stderr
    assert "3 trials: 3 already stored, 0 to run" in again.stderr
    assert json.loads(again.stdout)["entries"] == found["entries"]

    files = found["files"]
    assert {Path(path).parent for path in files.values()} == {tmp_path / "out"}
    times, scores = (str(tmp_path / "out" / Path(files[kind]).name) for kind in ("times", "scores"))
    capsys.readouterr()
    assert cli.main(["reproduce", "--times", times, "--scores", scores, "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert len(compared) == 3 and all(row["match"] for row in compared)


def test_a_bad_mapping_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "entries.csv").write_text("published_name,ruleset,optarena_name\nx,weekly,adam\n")
    done = _script(tmp_path, "--entries", "entries.csv", "--db", f"sqlite:///{tmp_path / 's.db'}")
    assert (
        done.returncode == 2 and done.stderr.count("\n") == 1 and "unknown ruleset" in done.stderr
    )
    assert not (tmp_path / "s.db").exists()
