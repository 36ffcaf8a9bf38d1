"""Held-out variants in a benchmark: a number per base workload, 0 by default (AlgoPerf v0.6),
1 as AlgoPerf v0.5 drew them; recorded with every trial; bad values refused in one line."""

from __future__ import annotations

import contextlib
import io

import pytest

from optarena.harness import benchmark, campaign, cli, nightly_config
from optarena.harness.benchmark import BenchmarkConfig, PlanError
from optarena.leaderboard.snapshots import load_snapshot
from optarena.leaderboard.store import Store
from optarena.workloads import registry, suites

BASES = ["digits_mlp", "mnist1d_cnn"]


def test_the_default_is_algoperf_v06_no_variant():
    assert BenchmarkConfig.for_ruleset("external").held_out_variants == 0
    assert nightly_config.load(None).held_out_variants == 0
    assert benchmark.draw_variants(BASES, seed=7, count=0) == {}


def test_one_variant_per_base_is_the_draw_of_algoperf_v05():
    drawn = benchmark.draw_variants(BASES, seed=7, count=1)
    assert set(drawn) == set(BASES)
    for base, variants in drawn.items():
        candidates = benchmark.held_out_candidates(base)
        index = benchmark.derive_seed("held_out", 7, base) % len(candidates)
        assert variants == (candidates[index],)
        assert registry.get(variants[0]).spec.base == base


def test_more_variants_keep_the_smaller_draw_and_stop_at_the_registered_ones():
    every = {base: benchmark.held_out_candidates(base) for base in suites.base_workloads("cpu")}
    most = max(len(candidates) for candidates in every.values())
    one = benchmark.draw_variants(list(every), seed=3, count=1)
    many = benchmark.draw_variants(list(every), seed=3, count=most + 1)
    for base, candidates in every.items():
        if not candidates:
            assert base not in many
            continue
        assert many[base][0] == one[base][0]
        assert sorted(many[base]) == candidates


@pytest.mark.parametrize("value", [-1, 101, True, 1.5, "1"])
def test_an_invalid_number_is_refused(value):
    with pytest.raises(PlanError, match="held_out_variants must be an integer from 0 to 100"):
        BenchmarkConfig.for_ruleset("external", held_out_variants=value)


def _prepare(tmp_path, data_dir, **overrides) -> campaign.Campaign:
    config = BenchmarkConfig.for_ruleset("self", studies=1, max_steps=5, **overrides)
    store = Store(f"sqlite:///{tmp_path / 'plan.db'}")
    return campaign.prepare("nadamw", "quick", config, store, data_dir, workloads=["digits_mlp"])


def test_a_default_benchmark_plans_no_variant_trial(tmp_path, data_dir):
    planned = _prepare(tmp_path, data_dir)
    assert planned.variants == {}
    assert [t.workload for t in planned.trials] == ["digits_mlp"]
    assert all(t.spec.base is None and t.place.held_out_variants == 0 for t in planned.trials)


def test_one_variant_plans_the_drawn_variant_after_its_base(tmp_path, data_dir):
    planned = _prepare(tmp_path, data_dir, held_out_variants=1, seed=4)
    (variant,) = benchmark.draw_variants(["digits_mlp"], seed=4)["digits_mlp"]
    assert planned.variants == {"digits_mlp": (variant,)}
    assert [t.workload for t in planned.trials] == ["digits_mlp", variant]
    assert all(t.place.held_out_variants == 1 for t in planned.trials)


def _main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("value", ["-1", "two", "0.5", "101"])
def test_the_command_refuses_a_bad_number_in_one_line(tmp_path, value):
    db = tmp_path / "never.db"
    code, out, err = _main(
        "benchmark", "--submission", "nadamw", "--ruleset", "self", "--suite", "quick",
        "--held-out-variants", value, "--db", f"sqlite:///{db}",
    )  # fmt: skip
    assert code == 2 and out == "" and err.count("\n") == 1
    assert (
        "held_out_variants must be an integer from 0 to 100" in err
        and f"got {value}" in err.replace("'", "")
    )
    assert not db.exists()


def test_the_nightly_config_passes_the_number_on_and_compares_nights_by_it(tmp_path):
    path = tmp_path / "nightly.toml"
    path.write_text("held_out_variants = 1\n")
    one = nightly_config.load(str(path))
    assert one.held_out_variants == 1 and one.to_dict()["held_out_variants"] == 1
    assert one.comparison_key() != nightly_config.load(None).comparison_key()


def test_a_variant_benchmark_records_its_setting_and_reproduces_from_its_snapshot(
    tmp_path, data_dir
):
    db = f"sqlite:///{tmp_path / 'variants.db'}"
    command = (
        "benchmark", "--submission", "nadamw", "--ruleset", "self", "--suite", "quick",
        "--workloads", "digits_mlp", "--studies", "1", "--max-steps", "5",
        "--executor", "in-process", "--db", db, "--data-dir", data_dir,
    )  # fmt: skip
    code, _, err = _main(*command, "--held-out-variants", "1", "--seed", "4")
    assert code == 0, err
    (variant,) = benchmark.draw_variants(["digits_mlp"], seed=4)["digits_mlp"]
    assert f"digits_mlp -> {variant}" in err and "2 to run" in err
    stored = Store(db).benchmark_trials()
    assert stored["workload"].tolist() == ["digits_mlp", variant]
    assert stored["held_out_variants"].tolist() == [1, 1]

    code, _, err = _main(*command, "--held-out-variants", "1", "--seed", "4")
    assert code == 0 and "2 already stored, 0 to run" in err
    code, _, err = _main(*command, "--seed", "4")
    assert code == 0 and "1 already stored, 0 to run" in err

    assert _main("score", "--db", db, "--replicates", "20")[0] == 0
    snapshot = load_snapshot(Store(db), 1)
    assert sorted(snapshot.trials["workload"]) == sorted(["digits_mlp", variant])
    code, out, err = _main("reproduce", "--snapshot", "1", "--db", db)
    assert code == 0 and "5 of 5 values within" in out, out + err
