"""Score snapshots in the store, `optarena score` on stored trials, `optarena leaderboard`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html
import math
import shutil
import subprocess

import matplotlib.colors
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import sqlalchemy

from optarena.harness import cli
from optarena.leaderboard import snapshots
from optarena.leaderboard.models import Base
from optarena.leaderboard.store import Store
from optarena.records import (
    EvalPoint,
    FinishedTrial,
    Provenance,
    SubmissionRef,
    Trial,
    TrialConfig,
    TrialResult,
    TrialStatus,
)
from optarena.scoring.report import Settings, score_trials
from optarena.workloads.spec import MetricMode, WorkloadSpec

HOSTILE = "<script>alert(1)</script>"
BASE = WorkloadSpec(
    name="toy",
    family="linear",
    dataset="toy_data",
    model="linear",
    loss="mse",
    metric="error_rate",
    mode=MetricMode.MIN,
    validation_target=0.1,
    test_target=0.12,
    budget_sec=10.0,
    step_hint=100,
    eval_every_steps=10,
    batch_size=8,
    eval_batch_size=16,
    num_train_examples=64,
)
VARIANT = dataclasses.replace(BASE, name="toy_tanh", base="toy", validation_target=0.15)
OTHER = dataclasses.replace(BASE, name="other", validation_target=0.2)
PROVENANCE = Provenance(
    optarena_version="0.1.0",
    git_commit=None,
    jax_version="0.10.2",
    flax_version="0.12.8",
    optax_version="0.2.8",
    python_version="3.11",
    platform="Linux",
)
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
INF = math.inf

# Seconds to target per (submission, workload) and study; the second trial of each study is
# always 1 s slower. The hostile name never reaches "toy".
TIMES = {
    ("fast", "toy"): (1.0, 1.2),
    ("fast", "toy_tanh"): (1.5, 1.5),
    ("fast", "other"): (4.0, 4.0),
    ("slow", "toy"): (2.5, 2.5),
    ("slow", "toy_tanh"): (2.0, 2.0),
    ("slow", "other"): (2.0, 2.0),
    (HOSTILE, "toy"): (INF, INF),
    (HOSTILE, "toy_tanh"): (INF, INF),
    (HOSTILE, "other"): (3.0, 3.0),
}
SPECS = {spec.name: spec for spec in (BASE, VARIANT, OTHER)}


def _result(spec: WorkloadSpec, time: float) -> TrialResult:
    reached = math.isfinite(time)
    end = time if reached else spec.budget_sec
    points = tuple(
        EvalPoint(
            step=10 * (i + 1),
            examples=80 * (i + 1),
            timed_sec=end * (i + 1) / 4,
            train_loss=1.0 / (i + 1),
            validation={
                spec.metric: spec.validation_target * (4 - i if i < 3 else 1 if reached else 1.5)
            },
            test={spec.metric: 0.5},
        )
        for i in range(4)
    )
    return TrialResult(
        status=TrialStatus.REACHED if reached else TrialStatus.NOT_REACHED,
        reason="test",
        time_to_target_sec=time,
        steps_to_target=40 if reached else None,
        examples_to_target=320 if reached else None,
        timed_sec=end,
        compile_sec=0.1,
        num_steps=40,
        batch_size=8,
        num_devices=1,
        device_kind="cpu",
        flops_per_step=1000.0,
        eval_points=points,
    )


OLD = ("submissions", "workloads", "trials", "eval_points", "benchmark_trials")
"""The tables of a store from before snapshots existed."""


def stored_trials(store: Store) -> pd.DataFrame:
    """Store two studies of two trials per pair and return them as `Store.benchmark_trials()`
    returns them (one row per trial, the columns of the scoring contract)."""
    rows = []
    for (submission, workload), per_study in TIMES.items():
        spec = SPECS[workload]
        info = SubmissionRef(
            name=submission,
            reference=submission,
            origin="test",
            source_sha256=hashlib.sha256(submission.encode()).hexdigest(),
        )
        for study, best in enumerate(per_study):
            for trial, time in enumerate((best, best + 1.0)):
                seed = 100 * study + trial
                result = _result(spec, time)
                trial_id = store.add(
                    FinishedTrial(
                        trial=Trial(
                            submission=info,
                            spec=spec,
                            config=TrialConfig(seed=seed, hparams=None, budget_sec=spec.budget_sec),
                        ),
                        result=result,
                        provenance=PROVENANCE,
                        started_at=NOW,
                        finished_at=NOW,
                    )
                )
                rows.append(
                    {
                        "trial_id": trial_id,
                        "ruleset": "external",
                        "submission": submission,
                        "submission_sha256": info.source_sha256,
                        "workload": workload,
                        "base_workload": spec.base or spec.name,
                        "workload_sha256": spec.sha256(),
                        "study": study,
                        "trial": trial,
                        "seed": seed,
                        "status": result.status.value,
                        "time_to_target_sec": time,
                        "steps_to_target": 40.0 if math.isfinite(time) else INF,
                        "examples_to_target": 320.0 if math.isfinite(time) else INF,
                        "flops_per_step": 1000.0,
                        "budget_sec": spec.budget_sec,
                        "finished_at": NOW,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture
def store_and_trials(store_url, monkeypatch):
    """A store holding benchmark trials, read through the contract's `benchmark_trials`, on
    SQLite and on PostgreSQL."""
    # A store as it was before snapshots existed: only the trial tables.
    url = store_url
    engine = sqlalchemy.create_engine(url)
    Base.metadata.create_all(
        engine, tables=[t for t in Base.metadata.sorted_tables if t.name in OLD]
    )
    engine.dispose()
    store = Store(url, create=False)
    trials = stored_trials(store)

    def benchmark_trials(self, ruleset=None):
        return trials if ruleset is None else trials[trials["ruleset"] == ruleset]

    monkeypatch.setattr(Store, "benchmark_trials", benchmark_trials, raising=False)
    return store, trials


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_stored_trials_score_by_the_rules(store_and_trials):
    _, trials = store_and_trials
    report = score_trials(trials, Settings(replicates=50))
    scores = report.scores.set_index("submission")
    # toy: fast 1.1 s (median of its studies' best 1.0 and 1.2), slow 2.5 s; both variants pass.
    # other: slow 2.0, the hostile one 3.0, fast 4.0. The hostile one misses toy.
    assert scores.loc["fast", "rank"] == 1 and scores.loc["slow", "rank"] == 2
    marks = report.workloads.set_index(["submission", "workload"])["mark"]
    assert marks[(HOSTILE, "toy")] == "missed" and marks[("fast", "other")] == "counted"
    ratios = report.workloads.set_index(["submission", "workload"])["ratio"]
    assert ratios[("slow", "toy")] == pytest.approx(2.5 / 1.1)
    assert ratios[("fast", "other")] == pytest.approx(2.0)
    assert set(scores["num_workloads"]) == {2}
    assert (scores["score_low"] <= scores["score"]).all()
    assert (scores["score"] <= scores["score_high"]).all()
    assert scores.loc["fast", "steps_score"] == 1.0  # every reached trial took 40 steps


def test_score_saves_dated_snapshots_and_keeps_old_data(capsys, store_and_trials):
    store, trials = store_and_trials
    url = store.url
    stored_before = store.trials()
    # A store from before snapshots gains their tables when opened, keeping its trials.
    assert sqlalchemy.inspect(store.engine).has_table("score_snapshots")

    code, out, err = _run(capsys, "score", "--db", url, "--replicates", "50")
    assert code == 0, err
    assert "snapshot 1 saved" in out and "fast" in out and "missed" in out
    assert "changes the order in" in out and "outscores" in out
    code, out, err = _run(capsys, "score", "--db", url, "--replicates", "50", "--seed", "1")
    assert code == 0 and "snapshot 2 saved" in out

    pd.testing.assert_frame_equal(store.trials(), stored_before)
    history = snapshots.history(store)
    assert history["id"].tolist() == [1, 2]
    assert history["inputs_sha256"].nunique() == 1 and set(history["num_trials"]) == {len(trials)}

    report = score_trials(trials, Settings(replicates=50, seed=1))
    latest = snapshots.load_snapshot(store)
    assert latest.id == 2
    merged = latest.scores.merge(report.scores, on=["ruleset", "submission"])
    for column in ("score", "score_low", "score_high", "steps_score", "flops_score", "rank"):
        assert (merged[f"{column}_x"] - merged[f"{column}_y"]).abs().max() < 1e-12, column
    hostile = latest.workloads.set_index(["submission", "workload"]).loc[(HOSTILE, "toy")]
    assert hostile["time_to_target_sec"] == INF and math.isnan(hostile["ratio"])
    assert sorted(latest.trials["trial_id"]) == sorted(trials["trial_id"])
    assert len(latest.pairs) == 6 and len(latest.stability) == 2

    # The snapshot tables are plain SQL for sqlite3 or pandas.read_sql users.
    with store.engine.connect() as connection:
        plain = pd.read_sql(
            "SELECT s.created_at, c.submission, c.score FROM score_snapshots s "
            "JOIN snapshot_scores c ON c.snapshot_id = s.id WHERE s.id = 1 ORDER BY c.rank",
            connection,
        )
    assert plain["submission"].iloc[0] == "fast"


def test_leaderboard_shows_the_latest_snapshot(capsys, store_and_trials):
    store, _ = store_and_trials
    code, _, err = _run(capsys, "leaderboard", "--db", store.url)
    assert code == 2 and err.count("\n") == 1 and "run `optarena score`" in err

    assert _run(capsys, "score", "--db", store.url, "--replicates", "20")[0] == 0
    code, out, err = _run(capsys, "leaderboard", "--db", store.url, "--ruleset", "external")
    assert code == 0, err
    assert "snapshot 1" in out and "rank" in out and "score" in out
    lines = [line for line in out.splitlines() if "│" in line]
    order = [name for line in lines for name in ("fast", "slow", "alert(1)") if name in line]
    assert order[:3] == ["fast", "slow", "alert(1)"]
    assert "missed" in out and "2.27" in out  # slow's normalized time on toy: 2.5 / 1.1

    code, _, err = _run(capsys, "leaderboard", "--db", store.url, "--ruleset", "self")
    assert code == 2 and "no ruleset 'self'" in err
    code, _, err = _run(capsys, "leaderboard", "--db", store.url, "--snapshot", "7")
    assert code == 2 and "no score snapshot 7" in err


def test_score_without_benchmark_trials_is_bad_input(capsys, store_url):
    store = Store(store_url)
    ref = SubmissionRef(name="plain", reference="plain", origin="test", source_sha256="0" * 64)
    trial = Trial(submission=ref, spec=BASE, config=TrialConfig(seed=0, hparams=None, budget_sec=1))
    store.add(  # a plain trial (`optarena run`), which no ruleset scores
        FinishedTrial(
            trial=trial,
            result=_result(BASE, 1.0),
            provenance=PROVENANCE,
            started_at=NOW,
            finished_at=NOW,
        )
    )
    code, out, err = _run(capsys, "score", "--db", store.url)
    assert code == 2 and out == "" and "no benchmark trials" in err
    assert snapshots.history(store).empty


def _chromium() -> str:
    executable = shutil.which("chromium")
    assert executable, "the HTML test needs Debian's chromium: apt-get install -y chromium"
    return executable


def _headless(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=True,
    )


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the page, not the store
def test_html_page_renders_in_chromium_with_plots_and_escaped_names(
    capsys, tmp_path, store_and_trials
):
    store, trials = store_and_trials
    assert _run(capsys, "score", "--db", store.url, "--replicates", "20")[0] == 0
    site = tmp_path / "site"
    code, out, err = _run(capsys, "leaderboard", "--db", store.url, "--html", str(site))
    assert code == 0, err
    page = site / "index.html"
    assert f"wrote {page}" in out
    text = page.read_text()
    assert HOSTILE not in text and html.escape(HOSTILE) in text
    assert "http://" not in text and "https://" not in text  # self-contained

    # The browser's own DOM: the hostile name is a text node, never a script element.
    dom = _headless("--dump-dom", page.as_uri(), cwd=tmp_path).stdout
    assert "<table" in dom and "<script" not in dom.lower()
    assert dom.count(html.escape(HOSTILE, quote=False)) >= 3  # scores, pairs, trials
    assert 'id="profile-0"' in dom and dom.count('src="data:image/png;base64,') == 1 + len(SPECS)

    # A real screenshot: the plots are drawn (the profile's and curves' line colours appear).
    shot = tmp_path / "shot.png"
    _headless(
        "--hide-scrollbars",
        "--window-size=1200,2600",
        f"--screenshot={shot}",
        page.as_uri(),
        cwd=tmp_path,
    )
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2600, 1200)
    not_white = (pixels < 0.95).any(axis=-1)
    assert not_white.mean() > 0.05, "the page looks blank"
    first_line_colour = np.array(matplotlib.colors.to_rgb("C0"))  # the leader's profile line
    near = (np.abs(pixels - first_line_colour) < 0.08).all(axis=-1)
    assert near.sum() > 500, "no plotted lines in the screenshot"
    rows_with_lines = np.flatnonzero(near.any(axis=1))
    assert rows_with_lines.min() < 1200  # the profile plot, above the training curves
    assert len(trials) == 36
