"""Ranking fidelity (`optarena.scoring.fidelity`) on inputs whose answer is known."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optarena.scoring import fidelity

INF = math.inf
PUBLISHED = pd.Series({("external", "a"): 0.9, ("external", "b"): 0.5, ("external", "c"): 0.3})


def _packaged(name: str) -> pd.DataFrame:
    path = Path(str(resources.files("optarena.scoring") / "published" / "algoperf_v05" / name))
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _studies(times: dict[tuple[str, str], list[float]], ruleset: str = "external"):
    """One row per study of each (submission, workload); every workload is a base."""
    rows = [
        (ruleset, submission, workload, workload, study, time)
        for (submission, workload), values in times.items()
        for study, time in enumerate(values)
    ]
    columns = ["ruleset", "submission", "workload", "base_workload", "study"]
    return pd.DataFrame(rows, columns=[*columns, "time_to_target_sec"])


def test_agreement_of_known_orders():
    published = np.array([3.0, 2.0, 1.0])
    assert fidelity.agreement(published, np.array([30.0, 20.0, 10.0])) == (1.0, 1.0)
    assert fidelity.agreement(published, np.array([10.0, 20.0, 30.0])) == (-1.0, -1.0)
    tau, rho = fidelity.agreement(published, np.array([20.0, 30.0, 10.0]))  # top two swapped
    assert tau == pytest.approx(1 / 3) and rho == pytest.approx(0.5)
    assert all(math.isnan(v) for v in fidelity.agreement(published, np.zeros(3)))
    assert all(math.isnan(v) for v in fidelity.agreement(published[:1], published[:1]))


def test_studies_that_never_vary_give_a_point_interval():
    studies = _studies(
        {
            ("a", "w1"): [1.0, 1.0],
            ("b", "w1"): [2.0, 2.0],
            ("c", "w1"): [3.0, 3.0],
            ("a", "w2"): [1.0, 1.0],
            ("b", "w2"): [2.0, 2.0],
            ("c", "w2"): [3.0, 3.0],
        }
    )
    (row,) = fidelity.bootstrap_agreement(studies, PUBLISHED, replicates=200).itertuples()
    assert (row.ruleset, row.replicates) == ("external", 200)
    assert (row.tau_low, row.tau_high, row.rho_low, row.rho_high) == (1.0, 1.0, 1.0, 1.0)


def test_a_study_that_can_flip_the_order_widens_the_interval_to_both_signs():
    # a's median is 1 (ahead of b's 3) unless a resample draws its slow study twice or more
    # (probability 7/27 per replicate), when a is 3x slower than b and the order flips.
    studies = _studies({("a", "w"): [1.0, 1.0, 9.0], ("b", "w"): [3.0, 3.0, 3.0]})
    published = PUBLISHED.loc[[("external", "a"), ("external", "b")]]
    found = fidelity.bootstrap_agreement(studies, published, replicates=500, seed=1)
    (row,) = found.itertuples()
    assert (row.tau_low, row.tau_high) == (-1.0, 1.0)
    assert found.equals(fidelity.bootstrap_agreement(studies, published, replicates=500, seed=1))


def test_disagreeing_pairs_are_those_ordered_differently_ties_included():
    comparison = pd.DataFrame(
        {
            "ruleset": "external",
            "published_name": ["a", "b", "c"],
            "published_score": [0.9, 0.5, 0.3],
            "score": [0.1, 0.5, 0.2],
            "steps_score": [0.9, 0.4, 0.4],
        }
    )
    pairs = fidelity.disagreeing_pairs(comparison)
    assert list(zip(pairs["published_better"], pairs["published_worse"], strict=True)) == [
        ("a", "b"),
        ("a", "c"),
    ]
    assert pairs["optarena_scores"].tolist() == ["0.1000 vs 0.5000", "0.1000 vs 0.2000"]
    tied = fidelity.disagreeing_pairs(comparison, "steps_score")
    assert list(zip(tied["published_better"], tied["published_worse"], strict=True)) == [("b", "c")]


def test_per_workload_tau_alone_and_without():
    times = _studies(
        {
            ("a", "agrees"): [1.0],
            ("b", "agrees"): [2.0],
            ("c", "agrees"): [3.0],
            ("a", "reverses"): [3.0],
            ("b", "reverses"): [2.0],
            ("c", "reverses"): [1.0],
        }
    ).drop(columns="study")
    found = fidelity.per_workload_agreement(times, PUBLISHED).set_index("workload")
    assert found.loc["agrees", "tau_alone"] == 1.0 and found.loc["agrees", "tau_without"] == -1.0
    assert found.loc["reverses", "tau_alone"] == -1.0
    assert found.loc["reverses", "tau_without"] == 1.0


def test_the_shipped_mapping_names_published_entries_and_their_optarena_entries():
    mapped = fidelity.mapped_entries(_packaged("entries.csv"), _packaged("published_scores.csv"))
    entries = _packaged("entries.csv")
    published = _packaged("published_scores.csv")
    assert set(zip(entries["published_name"], entries["ruleset"], strict=True)) == set(
        zip(published["submission"], published["ruleset"], strict=True)
    )
    # Every row with an optarena name is mapped, with its published score; the rest are not.
    named = entries[entries["optarena_name"].fillna("").str.strip() != ""]
    assert len(mapped) == len(named) == 15
    assert set(mapped["optarena_name"]) == set(named["optarena_name"])
    assert all(name.startswith("v05_") for name in mapped["optarena_name"])
    keys = zip(mapped["ruleset"], mapped["published_name"], strict=True)
    scores = dict(zip(keys, mapped["published_score"], strict=True))
    assert scores[("external", "shampoo_submission")] == 0.7784
    assert scores[("self", "schedule_free_adamw")] == 0.8542


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("baseline,external_tuning,nadamw\nbaseline,weekly,adam", "unknown ruleset"),
        ("no_such_entry,external_tuning,nadamw", "no_such_entry .* has no published score"),
        ("baseline,external_tuning,nadamw\namos,external_tuning,nadamw", "mapped twice"),
    ],
)
def test_a_bad_mapping_is_refused_in_one_line(row, message):
    entries = pd.DataFrame(
        [line.split(",") for line in row.splitlines()],
        columns=["published_name", "ruleset", "optarena_name"],
    )
    with pytest.raises(fidelity.FidelityError, match=message) as raised:
        fidelity.mapped_entries(entries, _packaged("published_scores.csv"))
    assert "\n" not in str(raised.value)


def test_compare_scores_each_value_and_finds_its_winner_and_pairs():
    # Times order a < b < c (as published); steps order them the other way round.
    rows = []
    for study in range(2):
        for workload in ("w1", "w2"):
            for submission, time, steps in (("a", 1.0, 300), ("b", 2.0, 200), ("c", 3.0, 100)):
                rows.append(("external", submission, workload, workload, study, 0, time, steps))
    columns = ["ruleset", "submission", "workload", "base_workload", "study", "trial"]
    trials = pd.DataFrame(rows, columns=[*columns, "time_to_target_sec", "steps_to_target"])
    mapped = pd.DataFrame(
        {
            "ruleset": "external",
            "published_name": ["pa", "pb", "pc", "pd"],
            "optarena_name": ["a", "b", "c", "never_ran"],
            "published_score": [0.9, 0.5, 0.3, 0.1],
        }
    )
    found = fidelity.compare(trials, mapped, replicates=50)
    assert found.entries["optarena_name"].tolist() == ["a", "b", "c"]
    assert found.entries["rank"].tolist() == [1, 2, 3]
    assert found.entries["steps_rank"].tolist() == [3, 2, 1]
    summary = found.summary.set_index("value")
    assert summary.loc["score", ["tau", "rho", "tau_low", "tau_high"]].tolist() == [1, 1, 1, 1]
    assert summary.loc["steps_score", ["tau", "rho"]].tolist() == [-1.0, -1.0]
    assert summary.loc["score", "winner"] == "pa" and summary.loc["steps_score", "winner"] == "pc"
    assert set(summary["published_winner"]) == {"pa"}
    assert found.pairs.groupby("value").size().to_dict() == {"steps_score": 3}
    assert set(found.workloads["workload"]) == {"w1", "w2"}
    assert found.workloads.loc[found.workloads["value"] == "score", "tau_alone"].tolist() == [1, 1]
