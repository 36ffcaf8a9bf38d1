"""Ranking fidelity: does a CPU suite order training algorithms as AlgoPerf's v0.5 board did?

Every published entry mapped to an optarena submission (``--entries``, by default
``scoring/published/algoperf_v05/entries.csv``) is benchmarked under its ruleset, exactly as
``optarena benchmark`` does it (the same campaigns: resumable, each trial stored as it ends;
external tuning with ``--studies`` x ``--trials``, self-tuning one trial per study), then scored
and compared with the published scores (`optarena.scoring.fidelity`): optarena's score and rank
beside the published ones, Kendall's tau and Spearman's rho between the two orders with a
bootstrap interval over studies (``--replicates`` resamples), the same for the steps-based
score, the published winner against optarena's, the pairs ordered differently, and per
workload the tau of that workload alone and without it.

The scored trials are written next to this script, in ``bench/ranking_fidelity/`` (or
``--output-dir``): ``<date>-trials.csv`` (the store's rows), ``<date>-times.csv`` (one time per
study) and ``<date>-scores.csv``, so that
``optarena reproduce --times <date>-times.csv --scores <date>-scores.csv`` scores them again.

Run (the full study, 3 x 5 on the cpu suite):
``python bench/ranking_fidelity.py --suite cpu --studies 3 --trials 5 --db sqlite:///fidelity.db``;
a shrunken one: ``--suite quick --workloads digits_mlp --studies 1 --trials 1 --max-steps 50``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from importlib import resources
from pathlib import Path

import pandas as pd
from rich.table import Table

from optarena.errors import UserError
from optarena.harness import benchmark, campaign, describing
from optarena.harness.cli import benchmark as benchmark_cli
from optarena.harness.cli import common, progress
from optarena.harness.executors import make_executor
from optarena.leaderboard.store import Store
from optarena.scoring import fidelity
from optarena.scoring.aggregate import study_times

PUBLISHED = "published/algoperf_v05"
OUTPUT_DIR = Path(__file__).resolve().parent / "ranking_fidelity"


def _read_csv(path: str | Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {error}".splitlines()[0]) from error


def _packaged(name: str) -> Path:
    return Path(str(resources.files("optarena.scoring") / PUBLISHED / name))


def mapped(args: argparse.Namespace) -> pd.DataFrame:
    """The mapped entries of ``--entries`` with the scores of ``--published``."""
    entries = _read_csv(args.entries or _packaged("entries.csv"))
    published = _read_csv(args.published or _packaged("published_scores.csv"))
    try:
        return fidelity.mapped_entries(entries, published)
    except (fidelity.FidelityError, KeyError) as error:
        raise UserError(f"entries or published scores: {error}") from error


def campaigns(
    args: argparse.Namespace, entries: pd.DataFrame, store: Store, data_dir: str
) -> list[campaign.Campaign]:
    """One prepared campaign per mapped entry, under its ruleset, as `optarena benchmark`."""
    held_out = benchmark_cli.held_out_variants(args.held_out_variants)
    prepared = []
    described = {name: describing.describe(name) for name in entries["optarena_name"].unique()}
    for ruleset, name in zip(entries["ruleset"], entries["optarena_name"], strict=True):
        config = benchmark.ruleset_config(
            ruleset,
            external_trials=args.trials,
            studies=args.studies,
            seed=args.seed,
            budget_factor=args.budget_factor,
            max_steps=args.max_steps,
            held_out_variants=held_out,
        )
        prepared.append(
            campaign.prepare(
                name,
                args.suite,
                config,
                store,
                data_dir,
                workloads=args.workloads,
                loaded=described[name],
            )
        )
    return prepared


def run_all(planned: list[campaign.Campaign], store: Store, args, data_dir: str) -> list[int]:
    """Run every pending trial under one progress bar; the stored ids of all planned trials."""
    executor = make_executor(args.executor, data_dir)
    log = common.console(stderr=True)
    pending = [trial for one in planned for trial in one.pending]
    stored = sum(len(one.stored) for one in planned)
    common.say(
        log,
        f"{len(planned)} entries, {sum(len(one.trials) for one in planned)} trials: {stored} "
        f"already stored, {len(pending)} to run, in {store.url}",
    )
    bar = progress.CampaignProgress(log, pending, done_before=stored, total=stored + len(pending))
    ids = []
    with bar:
        for one in planned:
            done = campaign.run(
                one, executor, store, on_start=bar.on_start, on_finished=bar.on_finished
            )
            ids += campaign.trial_ids(one, done)
    return ids


def export(trials: pd.DataFrame, found: fidelity.Fidelity, folder: Path) -> dict[str, Path]:
    """The scored trials, their study times and the scores, as dated CSV files in ``folder``."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    stem = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    paths = {kind: folder / f"{stem}-{kind}.csv" for kind in ("trials", "times", "scores")}
    trials.to_csv(paths["trials"], index=False)
    study_times(trials).to_csv(paths["times"], index=False)
    scores = found.entries.rename(columns={"optarena_name": "submission"})
    scores[["ruleset", "submission", "score"]].to_csv(paths["scores"], index=False)
    return paths


def _number(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.4f}"


def _table(title: str, frame: pd.DataFrame) -> Table:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column)
    for row in frame.itertuples(index=False):
        table.add_row(*(_number(v) if isinstance(v, float) else str(v) for v in row))
    return table


def report(found: fidelity.Fidelity, paths: dict[str, Path], args: argparse.Namespace) -> None:
    if args.json:
        common.print_json(
            {
                "entries": common.records(found.entries),
                "summary": common.records(found.summary),
                "pairs": common.records(found.pairs),
                "workloads": common.records(found.workloads),
                "files": {kind: str(path) for kind, path in paths.items()},
            }
        )
        return
    out = common.console()
    out.print(_table("Published (AlgoPerf v0.5) and optarena scores", found.entries))
    out.print(
        _table(
            f"Agreement of the orders (bootstrap over studies, {args.replicates} resamples, "
            f"{args.level:g} intervals)",
            found.summary,
        )
    )
    if len(found.pairs):
        out.print(_table("Pairs ordered differently", found.pairs))
    else:
        common.say(out, "Every pair of entries is ordered as published.")
    out.print(_table("Per workload: tau alone and without it", found.workloads))
    common.say(out, "Written: " + ", ".join(str(path) for path in paths.values()))
    common.say(
        out,
        f"Score them again: optarena reproduce --times {paths['times']} --scores {paths['scores']}",
    )


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parse.add_argument("--entries", help="published_name, ruleset, optarena_name (CSV)")
    parse.add_argument("--published", help="ruleset, submission, published_score (CSV)")
    parse.add_argument("--suite", default="cpu", help="workload suite (default cpu)")
    parse.add_argument("--workloads", type=common.names, default=(), help="base workloads")
    parse.add_argument("--studies", type=common.count(1000), default=3)
    parse.add_argument("--trials", type=common.count(1000), default=5, help="external only")
    parse.add_argument("--seed", type=int, default=0, help="benchmark seed (default 0)")
    parse.add_argument("--budget-factor", type=common.positive_float)
    parse.add_argument("--max-steps", type=common.positive_int)
    parse.add_argument("--held-out-variants", default="0", metavar="N")
    parse.add_argument("--replicates", type=common.count(1_000_000), default=1000)
    parse.add_argument("--bootstrap-seed", type=int, default=0)
    parse.add_argument("--level", type=common.fraction, default=0.95)
    parse.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    common.add_executor(parse)
    common.add_json(parse)
    common.add_store(parse)
    common.add_data(parse)
    return parse


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        common.isolate_in_process_trials(args)
        entries = mapped(args)
        store = Store(args.db)
        data_dir = common.data_dir(args)
        ids = run_all(campaigns(args, entries, store, data_dir), store, args, data_dir)
        trials = store.benchmark_trials()
        trials = trials[trials["trial_id"].isin(ids)].reset_index(drop=True)
        found = fidelity.compare(
            trials, entries, replicates=args.replicates, seed=args.bootstrap_seed, level=args.level
        )
        paths = export(trials, found, args.output_dir)
    except (UserError, fidelity.FidelityError) as error:
        print(f"ranking_fidelity: error: {' '.join(str(error).split())}", file=sys.stderr)
        return common.Exit.BAD_INPUT
    report(found, paths, args)
    return common.Exit.OK


if __name__ == "__main__":
    sys.exit(main())
