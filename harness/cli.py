"""The ``optarena`` command line: list workloads and submissions, run and store trials, show them.

Bad input (an unknown name, malformed JSON, a file that is not a submission, a
factory that raises) prints one line on stderr and exits with status 2, before
anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from optarena.harness import cli_calibrate

if TYPE_CHECKING:
    from optarena.harness.runner import TrialConfig
    from optarena.submissions.loader import LoadedSubmission
    from optarena.workloads.base import Workload

EXIT_OK = 0
EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """User input that cannot be acted on; reported as one line, exit status 2."""


def _console(*, stderr: bool = False) -> Console:
    """A rich console; wide when not a terminal so that logs keep whole table rows."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(highlight=False, stderr=stderr, width=None if stream.isatty() else 140)


def _print_json(payload: Any) -> None:
    def default(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.isoformat()
        return str(value)

    sys.stdout.write(json.dumps(_finite_json(payload), indent=2, default=default) + "\n")


def _finite_json(value: Any) -> Any:
    """Infinity and NaN are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_json(v) for v in value]
    return value


def _format_time(seconds: float) -> str:
    return "-" if not math.isfinite(seconds) else f"{seconds:.2f}"


# ---------------------------------------------------------------- listing commands


def cmd_workloads(args: argparse.Namespace) -> int:
    from optarena.workloads import registry

    specs = [registry.get(name).spec for name in registry.names()]
    if args.json:
        _print_json([spec.to_dict() for spec in specs])
        return EXIT_OK
    table = Table(title="Workloads")
    for column in (
        "name",
        "base",
        "family",
        "dataset",
        "metric",
        "val target",
        "test target",
        "budget s",
        "step hint",
        "batch",
        "calibrated",
    ):
        table.add_column(column)
    for spec in specs:
        table.add_row(
            spec.name,
            spec.base or "-",
            spec.family,
            spec.dataset,
            f"{spec.metric} ({spec.mode.value})",
            f"{spec.validation_target:g}",
            f"{spec.test_target:g}",
            f"{spec.budget_sec:g}",
            str(spec.step_hint),
            str(spec.batch_size),
            "yes" if spec.calibrated else "[yellow]no",
        )
    _console().print(table)
    return EXIT_OK


def cmd_submissions(args: argparse.Namespace) -> int:
    from optarena.submissions import loader

    rows: list[dict[str, Any]] = []
    try:
        names = loader.builtin_names() + sorted(loader.entry_points())
    except loader.SubmissionError as error:
        raise BadInput(str(error)) from error
    for name in names:
        try:
            loaded = loader.load(name)
        except loader.SubmissionError as error:
            rows.append({"name": name, "origin": "?", "error": str(error)})
            continue
        rows.append(
            {
                "name": loaded.name,
                "origin": loaded.origin,
                "source_sha256": loaded.source_sha256,
                "external_tuning": loaded.submission.search_space is not None,
                "self_tuning": loaded.submission.self_tuning,
                "search_space": loaded.submission.search_space,
                "default_hparams": loaded.submission.default_hparams,
            }
        )
    if args.json:
        _print_json(rows)
        return EXIT_OK
    table = Table(title="Submissions")
    for column in ("name", "origin", "source sha256", "rulesets", "search space"):
        table.add_column(column)
    for row in rows:
        if "error" in row:
            table.add_row(
                row["name"], row["origin"], "-", "-", f"[red]failed to load: {row['error']}"
            )
            continue
        space = row["search_space"]
        rulesets = [("external", row["external_tuning"]), ("self-tuning", row["self_tuning"])]
        table.add_row(
            row["name"],
            row["origin"],
            row["source_sha256"][:12],
            ", ".join(name for name, allowed in rulesets if allowed) or "-",
            "-"
            if space is None
            else ", ".join(space)
            if isinstance(space, Mapping)
            else f"{len(space)} points",
        )
    _console().print(table)
    return EXIT_OK


def _trials_table(frame, title: str) -> Table:
    table = Table(title=title)
    for column in (
        "id",
        "submission",
        "workload",
        "seed",
        "status",
        "time to target s",
        "steps to target",
        "timed s",
        "compile s",
        "steps",
    ):
        table.add_column(
            column,
            justify="right" if column not in ("submission", "workload", "status") else "left",
        )
    for row in frame.itertuples():
        status = row.status if row.status == "reached" else f"[yellow]{row.status}"
        table.add_row(
            str(row.id),
            row.submission,
            row.workload,
            str(row.seed),
            status,
            _format_time(row.time_to_target_sec),
            _format_steps(math.inf if row.steps_to_target is None else float(row.steps_to_target)),
            f"{row.timed_sec:.2f}",
            f"{row.compile_sec:.2f}",
            str(row.num_steps),
        )
    return table


def cmd_trials(args: argparse.Namespace) -> int:
    store = _open_store(args.db, create=False)
    frame = store.trials(workload=args.workload, submission=args.submission)
    if args.json:
        _print_json(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))
        return EXIT_OK
    _console().print(_trials_table(frame, f"Trials in {store.url}"))
    return EXIT_OK


def cmd_trial(args: argparse.Namespace) -> int:
    """One stored trial in full: outcome, hyperparameters, provenance and its evaluation curve."""
    store = _open_store(args.db, create=False)
    try:
        trial = store.trial(args.id)
    except KeyError as error:
        raise BadInput(f"no trial with id {args.id} in {store.url}") from error
    points = store.eval_points(args.id)
    if args.json:
        _print_json({**trial, "eval_points": [dataclasses.asdict(p) for p in points]})
        return EXIT_OK
    console = _console()
    details = Table(title=f"Trial {args.id}", show_header=False)
    details.add_column("field")
    details.add_column("value")
    for key, value in trial.items():
        if key != "spec":
            details.add_row(
                key, json.dumps(value, default=str) if isinstance(value, dict) else str(value)
            )
    console.print(details)
    metric = trial["spec"]["metric"]
    curve = Table(
        title=f"Evaluations (target: validation {metric} {trial['spec']['mode']} "
        f"{trial['spec']['validation_target']:g})"
    )
    for column in ("step", "timed s", "train loss", f"validation {metric}", f"test {metric}"):
        curve.add_column(column, justify="right")
    for p in points:
        curve.add_row(
            str(p.step),
            f"{p.timed_sec:.3f}",
            f"{p.train_loss:.4g}",
            f"{p.validation.get(metric, math.nan):.4g}",
            f"{p.test.get(metric, math.nan):.4g}",
        )
    console.print(curve)
    return EXIT_OK


def cmd_data_prepare(args: argparse.Namespace) -> int:
    """Prepare the datasets of the named workloads (default: the offline ones)."""
    from optarena.workloads import catalog, data, registry, suites

    names = args.workloads or suites.workloads("cpu")
    try:
        workloads = [registry.get(name) for name in names]
    except registry.UnknownWorkloadError as error:
        raise BadInput(str(error)) from error
    data_dir = _data_dir(args)
    console = _console()
    for workload in workloads:
        try:
            if not workload.spec.offline and args.download:
                catalog.download_and_prepare(workload.spec.dataset, data_dir)
            sizes = {
                split: data.num_examples(workload.load_split(split, data_dir))
                for split in data.SPLITS
            }
        except catalog.DataNotPreparedError as error:
            raise BadInput(str(error)) from error
        console.print(
            f"{workload.spec.dataset} ({workload.name}): "
            + ", ".join(f"{count} {split}" for split, count in sizes.items())
            + f" in {data_dir}"
        )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from optarena.harness import check
    from optarena.submissions import loader

    try:
        return check.command(args.submission, _data_dir(args))
    except loader.SubmissionNotFound as error:
        raise BadInput(str(error)) from error


# ---------------------------------------------------------------- running trials


def _open_store(url: str | None, *, create: bool = True):
    from optarena.leaderboard.store import Store, StoreError

    try:
        return Store(url, create=create)
    except StoreError as error:
        raise BadInput(str(error)) from error


class _LazyStore:
    """A store whose URL is checked now and which is opened (created) at the first write.

    Runs therefore write nothing, not even an empty database file, until a trial is done.
    """

    def __init__(self, url: str | None):
        from optarena.leaderboard.store import StoreError, check_url

        try:
            self.url = check_url(url)
        except StoreError as error:
            raise BadInput(str(error)) from error
        self._store = None

    def get(self):
        if self._store is None:
            self._store = _open_store(self.url)
        return self._store


def _parse_hparams(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"--hparams is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise BadInput(f"--hparams must be a JSON object, got {type(value).__name__}")
    return value


def _resolve_hparams(submission, overrides: dict[str, Any] | None) -> dict[str, Any] | None:
    """The submission's default point with ``overrides`` applied; unknown names are errors."""
    defaults = dict(submission.default_hparams or {})
    if overrides is None:
        return defaults or None
    space = submission.search_space
    known = set(defaults) | (set(space) if isinstance(space, Mapping) else set())
    if isinstance(space, Sequence) and not isinstance(space, str | bytes):
        for point in space:
            known |= set(point)
    unknown = sorted(set(overrides) - known) if known else []
    if unknown:
        raise BadInput(
            f"unknown hyperparameter(s) {', '.join(unknown)} for {submission.name}; "
            f"known: {', '.join(sorted(known))}"
        )
    return {**defaults, **overrides}


@dataclasses.dataclass(frozen=True)
class _Job:
    """One trial to run, its inputs checked and its optimizer factory tried once."""

    workload: Workload
    loaded: LoadedSubmission
    hparams: dict[str, Any] | None
    config: TrialConfig


def _prepare_job(
    workload_name: str,
    submission_ref: str,
    hparams_text: str | None,
    seed: int,
    budget: float | None,
    max_steps: int | None,
) -> _Job:
    """Validate one trial's inputs (exit status 2 on any problem) before anything runs."""
    from optarena.harness import runner
    from optarena.submissions import loader
    from optarena.workloads import registry

    hparams_override = _parse_hparams(hparams_text)
    try:
        workload = registry.get(workload_name)
    except registry.UnknownWorkloadError as error:
        raise BadInput(str(error)) from error
    try:
        loaded = loader.load(submission_ref)
    except loader.SubmissionError as error:
        raise BadInput(str(error)) from error
    hparams = _resolve_hparams(loaded.submission, hparams_override)
    try:
        config = runner.TrialConfig(
            seed=seed,
            hparams=hparams,
            budget_sec=workload.spec.budget_sec if budget is None else budget,
            max_steps=max_steps,
        )
        # Pre-flight the submission's own code so that a broken factory writes nothing.
        info = runner.workload_info(
            workload, loaded.submission, config.budget_sec, runner.make_mesh().size
        )
        runner.make_optimizer(loaded.submission, hparams, info)
    except (ValueError, runner.SubmissionFailure) as error:
        raise BadInput(str(error)) from error
    return _Job(workload, loaded, hparams, config)


def _run_and_store(
    job: _Job, store: _LazyStore, data_dir: str, console: Console, show_progress: bool
):
    """Run one trial with a progress bar on ``console``, then store it; returns (id, result)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from optarena.harness import provenance, runner
    from optarena.leaderboard.store import TrialSubmissionInfo
    from optarena.workloads.catalog import DataNotPreparedError

    spec = job.workload.spec
    budget = job.config.budget_sec
    label = f"{job.loaded.name} on {spec.name} (seed {job.config.seed})"
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.1f}/{task.total:.0f} timed s"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not (show_progress and console.is_terminal),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=budget, status="compiling...")

        def on_eval(point) -> None:
            value = point.validation.get(spec.metric, math.nan)
            progress.update(
                task,
                completed=min(point.timed_sec, budget),
                status=f"step {point.step}  val {spec.metric} {value:.4g} "
                f"(target {spec.validation_target:g})",
            )

        started_at = dt.datetime.now(dt.UTC)
        try:
            result = runner.run_trial(
                job.workload,
                job.loaded.submission,
                job.config,
                data_dir=data_dir,
                on_eval=on_eval,
            )
        except (runner.SubmissionFailure, DataNotPreparedError) as error:
            raise BadInput(str(error)) from error
        finished_at = dt.datetime.now(dt.UTC)
    if show_progress:
        console.print(
            f"{label}: {result.status.value} ({result.reason}), "
            f"{result.timed_sec:.2f} of {budget:g} timed s"
        )
    trial_id = store.get().add_trial(
        submission=TrialSubmissionInfo(
            name=job.loaded.name,
            origin=job.loaded.origin,
            source_sha256=job.loaded.source_sha256,
        ),
        spec=spec,
        seed=job.config.seed,
        hparams=job.hparams,
        budget_sec=job.config.budget_sec,
        max_steps=job.config.max_steps,
        result=result,
        provenance=provenance.collect(),
        started_at=started_at,
        finished_at=finished_at,
    )
    return trial_id, result


def cmd_run(args: argparse.Namespace) -> int:
    job = _prepare_job(
        args.workload, args.submission, args.hparams, args.seed, args.budget, args.max_steps
    )
    store = _LazyStore(args.db)
    trial_id, result = _run_and_store(
        job, store, _data_dir(args), _console(stderr=True), not args.json
    )
    if args.json:
        _print_json({"trial_id": trial_id, **result.summary()})
        return EXIT_OK
    _console().print(
        f"trial {trial_id}: {result.status.value} ({result.reason}); "
        f"time to target {_format_time(result.time_to_target_sec)} s, "
        f"{result.num_steps} steps, compile {result.compile_sec:.2f} s; stored in {store.url}"
    )
    return EXIT_OK


def cmd_quickstart(args: argparse.Namespace) -> int:
    """The main job: every built-in submission on a suite's workloads, over a few seeds."""
    from optarena.submissions import loader
    from optarena.workloads import suites

    try:
        suite = suites.workloads(args.suite)
    except suites.UnknownSuiteError as error:
        raise BadInput(str(error)) from error
    jobs = [
        _prepare_job(workload, submission, None, seed, None, None)
        for submission in loader.builtin_names()
        for workload in suite
        for seed in range(args.seed, args.seed + args.seeds)
    ]
    store = _LazyStore(args.db)
    progress_console = _console(stderr=True)
    outcomes = [_run_and_store(job, store, _data_dir(args), progress_console, True) for job in jobs]
    console = _console()
    frame = store.get().trials()
    frame = frame[frame["id"].isin([trial_id for trial_id, _ in outcomes])]
    console.print(_summary_table(frame))
    _print_default_point_scores(jobs, [result for _, result in outcomes], console)
    console.print(f"{len(outcomes)} trials stored in {store.url}; `optarena trials` lists them.")
    return EXIT_OK


QUICKSTART_GROUP = "default points"


def _print_default_point_scores(jobs: Sequence[_Job], results, console: Console) -> None:
    """AlgoPerf's score of each submission at its default point, with seeds as studies.

    Nothing is tuned, so this ranks defaults, not algorithms: `optarena benchmark` (or
    `optarena nightly`) runs the rulesets.
    """
    import pandas as pd

    from optarena.leaderboard.tables import scores_table
    from optarena.scoring.report import score_trials

    rows = [
        {
            "ruleset": QUICKSTART_GROUP,
            "submission": job.loaded.name,
            "workload": job.workload.spec.name,
            "base_workload": job.workload.spec.base or job.workload.spec.name,
            "study": job.config.seed,
            "time_to_target_sec": result.time_to_target_sec,
            "steps_to_target": math.inf
            if result.steps_to_target is None
            else float(result.steps_to_target),
            "flops_per_step": math.nan
            if result.flops_per_step is None
            else float(result.flops_per_step),
        }
        for job, result in zip(jobs, results, strict=True)
    ]
    report = score_trials(pd.DataFrame(rows))
    console.print(scores_table(report.scores, report.workloads, QUICKSTART_GROUP))
    console.print(
        "Each submission at its default point, seeds as studies. Nothing is tuned here: "
        "`optarena benchmark` runs the external-tuning and self-tuning rulesets."
    )


def _summary_table(frame) -> Table:
    """Per submission and workload: how many seeds reached the target, median time to target."""
    table = Table(title="Summary (median over seeds; a missed target counts as infinite)")
    for column in (
        "submission",
        "workload",
        "reached",
        "median time to target s",
        "median steps to target",
    ):
        table.add_column(
            column, justify="left" if column in ("submission", "workload") else "right"
        )
    for (submission, workload), group in frame.groupby(["submission", "workload"], sort=True):
        steps = group["steps_to_target"].astype(float).fillna(math.inf)
        table.add_row(
            submission,
            workload,
            f"{int((group['status'] == 'reached').sum())}/{len(group)}",
            _format_time(float(group["time_to_target_sec"].median())),
            _format_steps(float(steps.median())),
        )
    return table


def _format_steps(steps: float) -> str:
    return "-" if not math.isfinite(steps) else f"{steps:.0f}"


def _data_dir(args: argparse.Namespace) -> str:
    from optarena.workloads.data import default_data_dir

    return args.data_dir or default_data_dir()


# ---------------------------------------------------------------- parser


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("optarena")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optarena", description="An AlgoPerf-style benchmark for training algorithms."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def add_store(sub) -> None:
        sub.add_argument(
            "--db",
            help="SQLAlchemy URL of the store (default: $OPTARENA_DB or sqlite:///optarena.db)",
        )

    def add_data(sub) -> None:
        sub.add_argument(
            "--data-dir",
            help="TFDS data directory (default: $OPTARENA_DATA_DIR "
            "or ~/.cache/optarena/tensorflow_datasets)",
        )

    sub = add("workloads", cmd_workloads, "List the registered workloads.")
    sub.add_argument("--json", action="store_true", help="machine-readable output")

    sub = add("submissions", cmd_submissions, "List built-in and installed submissions.")
    sub.add_argument("--json", action="store_true", help="machine-readable output")

    sub = add(
        "check",
        cmd_check,
        "Check that a submission conforms (loads, builds on every workload, pure, no "
        "recompilation, finite updates, valid search space) before submitting it.",
    )
    sub.add_argument(
        "submission", metavar="SUBMISSION", help="built-in name, .py path or installed plugin"
    )
    add_data(sub)

    sub = add("run", cmd_run, "Run one timed trial and store it.")
    sub.add_argument("--workload", required=True, help="registered workload name")
    sub.add_argument(
        "--submission",
        required=True,
        help="built-in name, path to a .py file, or installed plugin name",
    )
    sub.add_argument("--hparams", help="JSON object overriding the submission's default point")
    sub.add_argument("--seed", type=int, default=0, help="trial seed (default 0)")
    sub.add_argument(
        "--budget",
        type=_positive_float,
        help="time budget in timed seconds (default: the workload's)",
    )
    sub.add_argument("--max-steps", type=_positive_int, help="stop after this many steps")
    sub.add_argument("--json", action="store_true", help="print the result as JSON")
    add_store(sub)
    add_data(sub)

    sub = add("trials", cmd_trials, "List stored trials.")
    sub.add_argument("--workload", help="only this workload")
    sub.add_argument("--submission", help="only this submission")
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    add_store(sub)

    sub = add("trial", cmd_trial, "Show one stored trial: provenance and evaluation curve.")
    sub.add_argument("id", type=int, help="trial id (see `optarena trials`)")
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    add_store(sub)

    data_parser = commands.add_parser("data", help="Manage prepared datasets.")
    data_commands = data_parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    sub = data_commands.add_parser(
        "prepare",
        help="Prepare workloads' datasets into the data directory (offline; cached afterwards).",
    )
    sub.set_defaults(handler=cmd_data_prepare)
    sub.add_argument(
        "workloads", nargs="*", metavar="WORKLOAD", help="default: every offline workload"
    )
    sub.add_argument(
        "--download",
        action="store_true",
        help="download TFDS catalog datasets (needs internet and optarena[real-data])",
    )
    add_data(sub)

    cli_calibrate.add_parser(commands, add_data, _positive_int)

    sub = add(
        "quickstart",
        cmd_quickstart,
        "Run every built-in submission on a suite's workloads over a few seeds, store the "
        "trials and show the tables.",
    )
    sub.add_argument("--seed", type=int, default=0, help="first trial seed (default 0)")
    sub.add_argument("--seeds", type=_positive_int, default=3, help="seeds per pair (default 3)")
    sub.add_argument("--suite", default="quick", help="workload suite (default: quick)")
    add_store(sub)
    add_data(sub)

    from optarena.harness import benchmark_command, cli_score

    cli_score.register(commands, add_store)

    sub = add(
        "benchmark",
        benchmark_command.cmd_benchmark,
        "Run a submission on every workload of a suite under a ruleset (studies x trials), "
        "storing each trial; rerun to resume.",
    )
    benchmark_command.add_arguments(sub)
    add_store(sub)
    add_data(sub)

    from optarena.harness import nightly_command, reproduce_command

    nightly_command.register(commands, add_store, add_data)
    reproduce_command.register(commands, add_store, add_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except BadInput as error:
        sys.stderr.write(f"optarena: error: {error}\n".replace("\n", " ").rstrip() + "\n")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    # Run the importable module's main, so that commands defined in other modules (which
    # import `harness.cli`) raise the same `BadInput` that main catches.
    from optarena.harness.cli import main as package_main

    sys.exit(package_main())
