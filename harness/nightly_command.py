"""``optarena nightly``: benchmark every submission, score, compare with the previous night.

One night: check the config and every submission (nothing runs or is written on bad input);
re-time the reference submission's fixed trials (the machine's own run-to-run variation);
benchmark each submission under each ruleset through the benchmark machinery, reusing every
trial already stored for the same sources and specs; score tonight's trials into a dated
snapshot; compare it with the previous night of the same settings; write the Markdown report
and the HTML leaderboard into a dated folder of the output directory (and into ``latest/``);
record the night in the store. Exit status 3 when a submission regressed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from optarena.harness import benchmark_command, nightly_config
from optarena.harness.cli import EXIT_OK, BadInput, _console, _data_dir, _LazyStore, _version

if TYPE_CHECKING:
    import pandas as pd

    from optarena.harness.benchmark import TrialSpec
    from optarena.submissions.loader import LoadedSubmission

TIMING_BUDGET_FACTOR = 10.0
"""The reference's timing trials get this factor on the workload's budget, so that the step
cap (or the target) and never the clock ends them: each night times the same steps."""
EXIT_REGRESSION = 3
"""The night's status when at least one submission regressed (see `scoring.night_comparison`)."""


@dataclasses.dataclass(frozen=True)
class _Job:
    """One submission under one ruleset: its planned trials and which are stored already."""

    loaded: LoadedSubmission
    trials: list[TrialSpec]
    stored: dict
    pending: list[TrialSpec]


def registered_submissions() -> list[str]:
    """Every registered submission: built-ins, then installed plugins, by name."""
    from optarena.submissions import loader

    try:
        return loader.builtin_names() + sorted(loader.entry_points())
    except loader.SubmissionError as error:
        raise BadInput(str(error)) from error


def _load(reference: str) -> LoadedSubmission:
    from optarena.submissions import loader

    try:
        return loader.load(reference)
    except loader.SubmissionError as error:
        raise BadInput(str(error)) from error


def _config(args: argparse.Namespace) -> nightly_config.NightlyConfig:
    try:
        config = nightly_config.load(args.config)
    except nightly_config.ConfigError as error:
        raise BadInput(str(error)) from error
    overrides = {}
    if args.db is not None:
        overrides["store"] = args.db
    if args.output_dir is not None:
        overrides["output_dir"] = args.output_dir
    if args.normalize_timing:
        overrides["normalize_timing"] = True
    return dataclasses.replace(config, **overrides)


def _plan(
    config: nightly_config.NightlyConfig, references: Sequence[str], url: str, data_dir: str
) -> tuple[list[_Job], list[str]]:
    """Plan every (ruleset, submission); a submission that cannot run a ruleset is skipped
    with a note (a self-tuning-only submission under external tuning, say)."""
    from optarena.harness import benchmark

    bases = benchmark_command._selected_bases(
        config.suite, ",".join(config.workloads) if config.workloads else None
    )
    loaded = {reference: _load(reference) for reference in references}
    names = [sub.name for sub in loaded.values()]
    if len(set(names)) != len(names):
        raise BadInput(f"two submissions share a name: {', '.join(sorted(names))}")
    jobs, skipped = [], []
    for ruleset in config.rulesets:
        bench = benchmark.BenchmarkConfig.for_ruleset(
            ruleset,
            studies=config.studies,
            trials=config.trials if ruleset == benchmark.Ruleset.EXTERNAL else None,
            seed=config.seed,
            budget_factor=config.budget_factor,
            max_steps=config.max_steps,
            held_out=config.held_out,
        )
        variants = benchmark.draw_variants(bases, bench.seed) if bench.held_out else {}
        workloads = benchmark.benchmark_workloads(bases, variants)
        for reference, sub in loaded.items():
            try:
                trials = benchmark.plan(sub, reference, workloads, bench)
                stored = benchmark_command._stored_ids(url, trials)
                pending = [t for t in trials if benchmark_command._identity(t) not in stored]
                benchmark_command._preflight(sub, pending, data_dir)
            except (benchmark.PlanError, BadInput) as error:
                skipped.append(f"{sub.name} under {ruleset}: {error}")
                continue
            jobs.append(_Job(sub, trials, stored, pending))
    return jobs, skipped


def _timing_specs(
    config: nightly_config.NightlyConfig, reference: LoadedSubmission, bases: Sequence[str]
) -> list[TrialSpec]:
    """The reference's fixed trials: its default point, seeds 0.., each base workload, capped
    at ``timing_steps`` steps."""
    from optarena.harness.benchmark import Ruleset, TrialSpec, submission_reference
    from optarena.workloads import registry

    specs = []
    for base in bases:
        spec = registry.get(base).spec
        for seed in range(config.timing_seeds):
            specs.append(
                TrialSpec(
                    submission=submission_reference(config.reference),
                    submission_name=reference.name,
                    submission_sha256=reference.source_sha256,
                    workload=base,
                    workload_sha256=spec.sha256(),
                    ruleset=Ruleset.EXTERNAL,
                    study=0,
                    trial=seed,
                    seed=seed,
                    benchmark_seed=config.seed,
                    hparams=reference.submission.default_hparams,
                    budget_sec=spec.budget_sec * TIMING_BUDGET_FACTOR,
                    max_steps=config.timing_steps,
                )
            )
    return specs


def _run_timing(executor, specs, store: _LazyStore, reference, console):
    """Run and store the reference's fixed trials as plain trials: (trial id, workload, seed)."""
    from optarena.harness import provenance
    from optarena.leaderboard.store import StoreError, TrialSubmissionInfo
    from optarena.workloads import registry

    rows = []
    for outcome in executor.run(specs):
        spec, result = outcome.spec, outcome.result
        try:
            trial_id = store.get().add_trial(
                submission=TrialSubmissionInfo(
                    name=reference.name,
                    origin=reference.origin,
                    source_sha256=reference.source_sha256,
                ),
                spec=registry.get(spec.workload).spec,
                seed=spec.seed,
                hparams=spec.hparams,
                budget_sec=spec.budget_sec,
                max_steps=spec.max_steps,
                result=result,
                provenance=provenance.collect(),
                started_at=outcome.started_at,
                finished_at=outcome.finished_at,
            )
        except StoreError as error:
            raise BadInput(str(error)) from error
        console.print(
            f"timing check: {reference.name} on {spec.workload} (seed {spec.seed}): "
            f"{result.status.value}, time to target {result.time_to_target_sec:.3f} s, "
            f"steps to target {result.steps_to_target}",
            markup=False,
            highlight=False,
        )
        rows.append((trial_id, spec.workload, spec.seed))
    return rows


def _speed_factors(store, night_now: int, timing_now: pd.DataFrame) -> pd.DataFrame:
    """night_id, base_workload, factor: each night's reference median time over tonight's."""
    import pandas as pd

    from optarena.leaderboard import nightly_store

    history = nightly_store.timing_trials(store)
    now = timing_now.groupby("workload")["timed_sec"].median()
    past = history.groupby(["run_id", "workload"])["timed_sec"].median().reset_index()
    past["factor"] = past["timed_sec"] / past["workload"].map(now)
    rows = past.rename(columns={"run_id": "night_id", "workload": "base_workload"})
    current = pd.DataFrame({"night_id": night_now, "base_workload": list(now.index), "factor": 1.0})
    return pd.concat([rows[["night_id", "base_workload", "factor"]], current], ignore_index=True)


def _executor(config: nightly_config.NightlyConfig, data_dir: str):
    return benchmark_command._executor(
        argparse.Namespace(executor=config.executor, timeout_margin=2.0, setup_allowance=60.0),
        data_dir,
    )


def _night_dir(output_dir: Path, now: dt.datetime, snapshot_id: int) -> Path:
    return output_dir / f"{now:%Y-%m-%d}-snapshot{snapshot_id}"


def _write_outputs(directory: Path, latest: Path, report: str, snapshot, curves) -> None:
    from optarena.leaderboard import html_page

    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.md").write_text(report, encoding="utf-8")
        html_page.write(directory, snapshot, curves)
        latest.mkdir(parents=True, exist_ok=True)
        for name in ("report.md", "index.html"):
            shutil.copyfile(directory / name, latest / name)
    except OSError as error:
        raise BadInput(f"cannot write the night's report into {directory}: {error}") from error


TIMING_COLUMNS = ["night", "workload", "seed", "timed_sec", "num_steps", "steps_to_target"]


def _timing_now(db, trial_ids: Sequence[int]) -> pd.DataFrame:
    """Tonight's re-timed reference trials (night ``"now"``), as `machine_drift` takes them."""
    trials = db.trials()
    frame = trials[trials["id"].isin(list(trial_ids))].rename(columns={"id": "trial_id"})
    return frame.assign(
        seed=frame["seed"].astype(int),
        steps_to_target=frame["steps_to_target"].astype(float),
        night="now",
    )


def _drift(db, timing_now: pd.DataFrame, previous) -> pd.DataFrame:
    """The reference's trials tonight against the previous night's (see `machine_drift`)."""
    import pandas as pd

    from optarena.leaderboard import nightly_store
    from optarena.scoring import night_comparison

    frames = [timing_now[TIMING_COLUMNS]]
    if previous is not None:
        before = nightly_store.timing_trials(db, [previous.id]).assign(night="before")
        frames.append(before[TIMING_COLUMNS])
    return night_comparison.machine_drift(pd.concat(frames, ignore_index=True))


def cmd_nightly(args: argparse.Namespace) -> int:
    """One night: benchmark, score into a snapshot, compare, report; exit 3 on a regression."""
    import pandas as pd

    from optarena.harness.executors import SpecMismatch
    from optarena.leaderboard import nightly_report, nightly_store
    from optarena.leaderboard.snapshots import eval_curves, load_snapshot, save_snapshot
    from optarena.leaderboard.store import StoreError
    from optarena.scoring import night_comparison
    from optarena.scoring.report import Settings, score_trials

    started_at = dt.datetime.now(dt.UTC)
    config = _config(args)
    output_dir = Path(config.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise BadInput(f"output_dir {output_dir} exists and is not a directory")
    store = _LazyStore(config.store)
    data_dir = _data_dir(args)
    references = list(config.submissions) or registered_submissions()
    if not references:
        raise BadInput("no submission is registered and the config names none")
    reference = _load(config.reference)
    bases = benchmark_command._selected_bases(
        config.suite, ",".join(config.workloads) if config.workloads else None
    )
    jobs, skipped = _plan(config, references, store.url, data_dir)
    if not jobs:
        raise BadInput("nothing to benchmark: " + "; ".join(skipped))

    console = _console(stderr=True)
    total = sum(len(job.trials) for job in jobs)
    reused = sum(len(job.stored) for job in jobs)
    console.print(
        f"nightly: {len(jobs)} benchmarks (submission x ruleset), {total} trials, "
        f"{reused} already stored; timing check: {reference.name} x {len(bases)} workloads x "
        f"{config.timing_seeds} seeds",
        markup=False,
        highlight=False,
    )
    for note in skipped:
        console.print(f"skipped {note}", markup=False, highlight=False)
    executor = _executor(config, data_dir)
    try:
        timing = _run_timing(
            executor, _timing_specs(config, reference, bases), store, reference, console
        )
        ran: list[int] = []
        for job in jobs:
            outcomes = benchmark_command._run(
                executor,
                job.pending,
                store,
                job.loaded,
                console,
                done_before=len(job.stored),
                total=len(job.trials),
            )
            job.stored.update(
                {benchmark_command._identity(o.spec): trial_id for o, trial_id in outcomes}
            )
            ran += [trial_id for _, trial_id in outcomes]
    except SpecMismatch as error:
        raise BadInput(f"{error}; run the nightly again to plan it anew") from error
    except KeyboardInterrupt:
        console.print(
            "interrupted: finished trials are stored; run the nightly again to resume",
            markup=False,
        )
        return benchmark_command.EXIT_INTERRUPTED

    db = store.get()
    previous = nightly_store.previous_run(db, config.comparison_key())
    ids = {trial_id for job in jobs for trial_id in job.stored.values()}
    trials = db.benchmark_trials()
    trials = trials[trials["trial_id"].isin(list(ids))].reset_index(drop=True)

    timing_now = _timing_now(db, [trial_id for trial_id, _, _ in timing])
    drift = _drift(db, timing_now, previous)
    tolerance = night_comparison.tolerance(drift, config.timing_tolerance)
    if config.normalize_timing:
        nights = nightly_store.nights_of_trials(db)
        nights = pd.concat([nights, pd.Series(0, index=ran, dtype="int64")])
        trials = night_comparison.normalize_times(trials, _speed_factors(db, 0, timing_now), nights)

    settings = Settings(
        replicates=config.replicates, seed=config.bootstrap_seed, level=config.level
    )
    try:
        report = score_trials(trials, settings)
        snapshot_id = save_snapshot(db, trials, report, settings, version=_version())
        snapshot = load_snapshot(db, snapshot_id)
        before_snapshot = load_snapshot(db, previous.snapshot_id) if previous is not None else None
    except (StoreError, ValueError) as error:
        raise BadInput(str(error)) from error
    empty = snapshot.scores.iloc[0:0], snapshot.trials.iloc[0:0]
    scores_before, trials_before = (
        (before_snapshot.scores, before_snapshot.trials) if before_snapshot else empty
    )
    comparison = night_comparison.compare(
        scores_before, trials_before, snapshot.scores, snapshot.trials, tolerance=tolerance
    )
    night_dir = _night_dir(output_dir, started_at, snapshot_id)
    info = nightly_report.NightInfo(
        date=f"{started_at:%Y-%m-%d %H:%M} UTC",
        snapshot_id=snapshot_id,
        previous_snapshot_id=previous.snapshot_id if previous else None,
        previous_date=f"{previous.started_at:%Y-%m-%d %H:%M} UTC" if previous else None,
        suite=config.suite,
        rulesets=config.rulesets,
        submissions=sorted({job.loaded.name for job in jobs}),
        trials_run=len(ran),
        trials_reused=len(ids) - len(ran),
        reference=reference.name,
        normalized=config.normalize_timing,
        skipped=skipped,
    )
    text = nightly_report.render(info, comparison, drift)
    _write_outputs(
        night_dir,
        output_dir / "latest",
        text,
        snapshot,
        eval_curves(db, snapshot.trials["trial_id"]),
    )
    regressed = comparison.regressed
    try:
        nightly_store.record_run(
            db,
            started_at=started_at,
            comparison_key=config.comparison_key(),
            settings=config.to_dict(),
            snapshot_id=snapshot_id,
            previous_run_id=previous.id if previous else None,
            tolerance=tolerance,
            regressions=len(regressed),
            report_dir=str(night_dir),
            timing=timing,
            run_trial_ids=ran,
        )
    except StoreError as error:
        raise BadInput(str(error)) from error
    out = _console()
    out.print(
        f"snapshot {snapshot_id}: {len(ran)} trials run, {len(ids) - len(ran)} reused; "
        f"report {night_dir / 'report.md'}, page {night_dir / 'index.html'}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if regressed:
        out.print(
            "REGRESSION: "
            + ", ".join(f"{submission} ({ruleset})" for ruleset, submission in regressed),
            markup=False,
            highlight=False,
        )
        return EXIT_REGRESSION
    out.print("no regression", markup=False, highlight=False)
    return EXIT_OK


def register(commands, add_store, add_data) -> None:
    """Add ``nightly`` to the ``optarena`` parser's subcommands."""
    help_text = (
        "Benchmark every registered submission (or the config's), score into a dated snapshot, "
        "compare with the previous night and write a report; exit 3 on a regression."
    )
    sub = commands.add_parser("nightly", help=help_text, description=help_text)
    sub.set_defaults(handler=cmd_nightly)
    sub.add_argument("--config", metavar="FILE.toml", help="settings (default: every default)")
    sub.add_argument("--output-dir", help="where reports go (overrides the config's output_dir)")
    sub.add_argument(
        "--normalize-timing",
        action="store_true",
        help="divide trial times by their night's machine speed before scoring",
    )
    add_store(sub)
    add_data(sub)
