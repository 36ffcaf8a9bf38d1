"""`optarena score --times`: published leaderboards re-scored, and bad files named by line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from optarena.harness import cli
from optarena.scoring.times_table import TimesTableError, validate_times

PUBLISHED = Path(__file__).resolve().parents[1] / "scoring" / "published"
ALGOPERF_V06 = PUBLISHED / "algoperf_v06"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_algoperf_v06_times_reproduce_the_published_scores(capsys, tmp_path):
    times, published = ALGOPERF_V06 / "times.csv", ALGOPERF_V06 / "published_scores.csv"
    assert times.exists(), f"{times} is part of the repository's published data"
    output = tmp_path / "scores.csv"
    code, out, err = _run(capsys, "score", "--times", str(times), "--output", str(output))
    assert code == 0, err
    scores = pd.read_csv(output)
    assert list(scores.columns[:3]) == ["ruleset", "submission", "score"]
    merged = pd.read_csv(published).merge(scores, on=["ruleset", "submission"], how="outer")
    assert len(merged) == len(scores) == 2
    assert (merged["score"] - merged["published_score"]).abs().max() < 1e-4
    for row in merged.itertuples():
        assert row.submission in out and f"{row.score:.4f}" in out


def test_score_times_json_has_every_table_and_no_infinity(capsys):
    code, out, err = _run(capsys, "score", "--times", str(ALGOPERF_V06 / "times.csv"), "--json")
    assert code == 0, err

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    scored = json.loads(out, parse_constant=refuse)
    assert scored["times"].endswith("times.csv")
    published = pd.read_csv(ALGOPERF_V06 / "published_scores.csv")
    by_name = {row["submission"]: row["score"] for row in scored["scores"]}
    for row in published.itertuples():
        assert abs(by_name[row.submission] - row.published_score) < 1e-4
    missed = [row for row in scored["workloads"] if row["mark"] == "missed"]
    assert missed and all(row["time_to_target_sec"] is None for row in missed)
    assert {row["left_out"] for row in scored["stability"]} >= {"wmt", "ogbg"}


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "times.csv"
    path.write_text(text)
    return str(path)


HEADER = "ruleset,submission,workload,base_workload,time_to_target_sec\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("r,a,x,x,12\nr,a,y,y,-3\n", "line 3: time_to_target_sec must be a positive number"),
        ("r,a,x,x,12\nr,a,y,y,soon\n", "line 3: time_to_target_sec"),
        ("r,a,x,x,nan\n", "line 2: time_to_target_sec"),
        ("r,a,x,x,\n", "line 2: time_to_target_sec"),
        ("r,,x,x,1\n", "line 2: empty submission"),
        ("r,a,x,x,1\nr,b,x,x,2\nr,a,x,x,3\n", "line 4: a second row for"),
        ("r,a,x_v,x,1\nr,b,x_v,y,2\n", "line 3: workload 'x_v' has base_workload 'y'"),
        ("r,a,x_v,x,1\nr,a,x_vv,x_v,2\n", "base_workload 'x_v' of 'x_vv' is itself a held-out"),
    ],
)
def test_bad_rows_are_named_by_line_and_exit_2(capsys, tmp_path, body, message):
    output = tmp_path / "out.csv"
    code, out, err = _run(
        capsys, "score", "--times", _write(tmp_path, HEADER + body), "--output", str(output)
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("optarena: error:") and message in err
    assert not output.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no such file"),
        ("ruleset,submission,workload,time_to_target_sec\nr,a,x,1\n", "missing column(s)"),
        (HEADER, "no rows"),
    ],
)
def test_unusable_files_exit_2(capsys, tmp_path, text, message):
    path = str(tmp_path / "absent.csv") if text is None else _write(tmp_path, text)
    code, out, err = _run(capsys, "score", "--times", path)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


def test_inf_spellings_and_per_study_rows(capsys, tmp_path):
    # With a study column, each workload's time is the median over its studies.
    body = (
        "ruleset,submission,workload,base_workload,time_to_target_sec,study\n"
        "r,a,x,x,10,0\nr,a,x,x,inf,1\nr,a,x,x,12,2\n"
        "r,b,x,x,20,0\nr,b,x,x,Infinity,1\nr,b,x,x,inf,2\n"
    )
    output = tmp_path / "scores.csv"
    code, _, err = _run(capsys, "score", "--times", _write(tmp_path, body), "--output", str(output))
    assert code == 0, err
    scores = pd.read_csv(output).set_index("submission")
    assert scores.loc["a", "score"] == 1.0 and scores.loc["b", "score"] == 0.0
    # a's bootstrap medians of [10, inf, 12] are finite or infinite: its interval spans both.
    assert scores.loc["a", "score_low"] == 0.0 and scores.loc["a", "score_high"] == 1.0


def test_validate_times_types_the_table():
    raw = pd.DataFrame(
        {
            "ruleset": ["r", "r"],
            "submission": ["a", "a"],
            "workload": ["x", "x_v"],
            "base_workload": ["x", "x"],
            "time_to_target_sec": ["1.5", "inf"],
        }
    )
    table = validate_times(raw)
    assert table["time_to_target_sec"].tolist() == [1.5, math.inf]
    with pytest.raises(TimesTableError, match="line 3"):
        validate_times(raw.assign(time_to_target_sec=["1", "0"]))
