"""Calibrate a workload's targets, budget and ``step_hint`` from baseline runs, reproducibly.

The rule, as AlgoPerf sets its targets but sized for a CPU (all of it is recorded):

1. **Tune**: the baseline submission's default point and ``points`` quasi-random points of its
   search space (seed ``tuning_seed``) each train for ``steps`` steps, the schedule planned for
   ``steps`` (it becomes ``step_hint``), evaluated every ``eval_every_steps`` (at least every
   `MIN_RESOLUTION` of ``step_hint``, so that a time to target resolves to 2%), and are ranked
   by their best validation metric at any evaluation.
2. **Rerun** the ``finalists`` best points on every seed in ``seeds``; the winner is the
   finalist whose worst seed is best, so that one lucky seed cannot set the target.
3. **Validation target**: the worst, over seeds, of each seed's best validation metric, rounded
   outward to 3 significant digits (so every recorded seed reaches it). **Test target**: the
   worst test metric over seeds at the evaluation where each first reached the validation
   target, rounded outward the same way. A target at the metric's bound (``metric_bound``,
   an error rate of 0) moves off it by the smallest step its split can show, one example
   (``1 / examples``, rounded outward): at the bound a trial is either perfect or never
   reaches the target.
4. **Budget**: twice the median over seeds of the quiet scored time to target, rounded up to
   0.05 s. The quiet scored time is steps to target times the quiet step time: the fastest
   step time (each run's step time as a trial is scored: the median seconds per step over its
   evaluation segments, compile excluded) among the seed runs, which all run the same program. Load
   on a shared machine only ever adds time, so the fastest measurement is the best estimate
   of the machine's own speed. The baseline thus reaches the target in about half its
   budget. A budget over `MAX_BUDGET_SEC` is an error.
5. **Checks**: the fraction of tuning points that reach the target within ``steps`` is recorded,
   and calibration fails when every point reaches it (the target says nothing), when the
   learning rate divided by 100 also reaches it, or when a recorded seed's quiet time to
   target exceeds the budget (possible for a held-out variant, which inherits its budget).

A held-out variant keeps its base's budget, ``step_hint`` and cadence (as in AlgoPerf) and
gets its own targets by steps 1-3 with ``steps`` equal to its base's ``step_hint``, counting
only the evaluations each run reaches within the base's budget (at the run's own step time):
its target is what the tuned baseline reaches in the time the rules give it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import platform
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from optarena.errors import UserError
from optarena.records import TrialConfig, TrialResult
from optarena.workloads.spec import MetricMode, WorkloadSpec

MAX_BUDGET_SEC = 60.0
BUDGET_FACTOR = 2.0
BUDGET_ROUNDING_SEC = 0.05
MIN_RESOLUTION = 0.02
"""The longest evaluation cadence, as a fraction of ``step_hint``."""
TARGET_DIGITS = 3
BAD_LEARNING_RATE_FACTOR = 0.01
RECORD_DIR = Path(__file__).resolve().parent.parent / "workloads" / "calibration"


class CalibrationError(UserError, RuntimeError):
    """Calibration cannot derive a sound target or budget (the message says why)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSummary:
    """One calibration run, as plain data: its curve and its speed."""

    hparams: Mapping[str, Any]
    seed: int
    steps: int
    curve: tuple[tuple[int, float, float], ...]
    """``(step, validation metric, test metric)`` at every evaluation."""
    compile_sec: float
    sec_per_step: float
    """The run's step time, as its trial was scored (`optarena.harness.runner.StepTimer`)."""
    diverged: bool = False

    def best_validation(self, mode: MetricMode) -> float:
        values = [value for _, value, _ in self.curve if math.isfinite(value)]
        if not values:
            return math.inf if mode is MetricMode.MIN else -math.inf
        return min(values) if mode is MetricMode.MIN else max(values)

    def within(self, budget_sec: float) -> RunSummary:
        """The run as far as its scored time stays within ``budget_sec``."""
        curve = tuple(p for p in self.curve if p[0] * self.sec_per_step <= budget_sec)
        return dataclasses.replace(self, curve=curve)

    def first_reach(self, spec: WorkloadSpec, target: float) -> tuple[int, float] | None:
        """``(step, test metric)`` at the first evaluation meeting ``target``, else None."""
        for step, value, test in self.curve:
            if spec.reached(value, target=target):
                return step, test
        return None


def round_outward(value: float, mode: MetricMode, digits: int = TARGET_DIGITS) -> float:
    """``value`` to ``digits`` significant digits, rounded towards the easier side of ``mode``."""
    if value == 0 or not math.isfinite(value):
        return value
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(value))))
    step = 1 if mode is MetricMode.MIN else -1
    units = math.ceil(value * scale) if mode is MetricMode.MIN else math.floor(value * scale)
    rounded = float(f"{units / scale:.{digits + 6}g}")
    while (rounded < value) if mode is MetricMode.MIN else (rounded > value):
        units += step  # value * scale lost a bit in floating point: step to the easier side
        rounded = float(f"{units / scale:.{digits + 6}g}")
    return rounded


def worst(values: Sequence[float], mode: MetricMode) -> float:
    """The hardest-to-beat value is the easiest target: max for ``min`` metrics, else min."""
    return max(values) if mode is MetricMode.MIN else min(values)


def off_bound(spec: WorkloadSpec, target: float, examples: int) -> float:
    """``target``, or, where it sits at the metric's bound, one example's worth off it."""
    if spec.metric_bound is None or target != spec.metric_bound:
        return target
    step = 1.0 / examples if spec.mode is MetricMode.MIN else -1.0 / examples
    return round_outward(target + step, spec.mode)


def derive_targets(
    spec: WorkloadSpec, seed_runs: Sequence[RunSummary], split_sizes: Mapping[str, int]
) -> tuple[float, float]:
    """Validation and test targets from the winner's seed runs (rule 3); ``split_sizes`` gives
    the validation and test examples, to move a target off the metric's bound."""
    mode = spec.mode
    validation = round_outward(worst([r.best_validation(mode) for r in seed_runs], mode), mode)
    validation = off_bound(spec, validation, split_sizes["validation"])
    if not math.isfinite(validation):
        raise CalibrationError(f"{spec.name}: a seed run never gave a finite validation metric")
    tests = []
    for run in seed_runs:
        reach = run.first_reach(spec, validation)
        if reach is None:  # cannot happen after rounding outward, unless the curve is empty
            raise CalibrationError(f"{spec.name}: seed {run.seed} does not reach {validation}")
        tests.append(reach[1])
    test = round_outward(worst(tests, mode), mode)
    return validation, off_bound(spec, test, split_sizes["test"])


@dataclasses.dataclass(frozen=True)
class QuietSpeed:
    """The machine's own speed for one program: its fastest compile and step time; a scored
    time counts the steps only."""

    compile_sec: float
    sec_per_step: float

    @classmethod
    def of(cls, runs: Sequence[RunSummary]) -> QuietSpeed:
        return cls(min(r.compile_sec for r in runs), min(r.sec_per_step for r in runs))

    def time_to(self, step: int) -> float:
        return step * self.sec_per_step


def derive_budget(spec: WorkloadSpec, seed_runs: Sequence[RunSummary], target: float) -> float:
    """Twice the median quiet time to ``target`` over seeds, rounded up (rule 4)."""
    speed = QuietSpeed.of(seed_runs)
    times = []
    for run in seed_runs:
        reach = run.first_reach(spec, target)
        if reach is None:
            raise CalibrationError(f"{spec.name}: seed {run.seed} does not reach {target}")
        times.append(speed.time_to(reach[0]))
    units = math.ceil(BUDGET_FACTOR * statistics.median(times) / BUDGET_ROUNDING_SEC)
    budget = round(units * BUDGET_ROUNDING_SEC, 6)
    if budget > MAX_BUDGET_SEC:
        raise CalibrationError(
            f"{spec.name}: the budget would be {budget:g} s, over the {MAX_BUDGET_SEC:g} s "
            "a CPU workload may take; make the model or step count smaller"
        )
    return budget


def summarize(result, hparams: Mapping[str, Any], seed: int, metric: str) -> RunSummary:
    """A `RunSummary` of a runner `TrialResult`."""
    curve = tuple(
        (p.step, float(p.validation[metric]), float(p.test[metric])) for p in result.eval_points
    )
    return RunSummary(
        hparams=dict(hparams),
        seed=seed,
        steps=result.num_steps,
        curve=curve,
        compile_sec=result.compile_sec,
        sec_per_step=result.step_sec,
        diverged=result.status.value == "diverged",
    )


def _unreachable(spec: WorkloadSpec, steps: int) -> WorkloadSpec:
    """``spec`` with a target no run meets, so that a run trains for all its steps."""
    target = -1e30 if spec.mode is MetricMode.MIN else 1e30
    return dataclasses.replace(spec, validation_target=target, step_hint=steps)


def machine() -> dict[str, Any]:
    """Where calibration ran: enough to judge whether its timings carry over."""
    import jax

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class CalibrationPlan:
    """What to run: the rule's parameters (recorded with the result)."""

    workload: str
    submission: str = "nadamw"
    points: int = 8
    tuning_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int | None = None
    finalists: int = 3

    def __post_init__(self) -> None:
        if self.points < 0:
            raise CalibrationError(f"points must be non-negative, got {self.points}")
        if not self.seeds:
            raise CalibrationError("at least one seed is needed")
        if self.finalists <= 0:
            raise CalibrationError(f"finalists must be positive, got {self.finalists}")
        if self.steps is not None and self.steps <= 0:
            raise CalibrationError(f"steps must be positive, got {self.steps}")

    def command(self, steps: int) -> str:
        """The command that reruns this plan and writes its record (kept in the record)."""
        return (
            f"optarena calibrate {self.workload} --submission {self.submission} "
            f"--points {self.points} --seeds {','.join(map(str, self.seeds))} "
            f"--tuning-seed {self.tuning_seed} --finalists {self.finalists} "
            f"--steps {steps} --write"
        )


RunFn = Callable[[WorkloadSpec, Mapping[str, Any], int, int], RunSummary]
"""``run(spec, hparams, seed, max_steps) -> RunSummary``: one untimed-target calibration run."""


def calibrate(
    plan: CalibrationPlan,
    spec: WorkloadSpec,
    base_spec: WorkloadSpec | None,
    default_hparams: Mapping[str, Any],
    search_space: Any,
    run: RunFn,
    split_sizes: Mapping[str, int],
    on_progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run the rule for ``spec`` with ``run`` and return the calibration record (plain data);
    ``split_sizes`` are the workload's validation and test examples."""
    from optarena.submissions import search_space as spaces

    steps = base_spec.step_hint if base_spec is not None else plan.steps or spec.step_hint
    if steps % spec.eval_every_steps:
        raise CalibrationError(
            f"steps ({steps}) must be a multiple of eval_every_steps ({spec.eval_every_steps}), "
            "so that the last step is evaluated in a benchmark run too"
        )
    if spec.eval_every_steps > MIN_RESOLUTION * steps:
        raise CalibrationError(
            f"eval_every_steps ({spec.eval_every_steps}) must be at most "
            f"{MIN_RESOLUTION:.0%} of the {steps} steps, so that a time to target resolves "
            "to that fraction of step_hint"
        )
    tuning_spec = _unreachable(spec, steps)
    candidates = [dict(default_hparams)]
    if plan.points:
        candidates += [
            {**default_hparams, **point}
            for point in spaces.sample(search_space, plan.points, plan.tuning_seed)
        ]
    tuning = []
    for index, hparams in enumerate(candidates):
        on_progress(f"tuning point {index + 1}/{len(candidates)}")
        tuning.append(run(tuning_spec, hparams, plan.tuning_seed, steps))
    mode = spec.mode
    if base_spec is not None:  # a variant's targets are what its runs reach in the budget
        tuning = [r.within(base_spec.budget_sec) for r in tuning]
    order = sorted(
        range(len(candidates)),
        key=lambda i: tuning[i].best_validation(mode) * (1 if mode is MetricMode.MIN else -1),
    )
    finalists = []
    for index in order[: plan.finalists]:
        runs = []
        for seed in plan.seeds:
            on_progress(f"finalist {len(finalists) + 1}/{plan.finalists}, seed {seed}")
            seed_run = (
                tuning[index]
                if seed == plan.tuning_seed
                else run(tuning_spec, candidates[index], seed, steps)
            )
            runs.append(seed_run.within(base_spec.budget_sec) if base_spec else seed_run)
        finalists.append((candidates[index], runs))
    # The winner is the finalist whose worst seed is best (ties: the better tuning run).
    worst_seed = [worst([r.best_validation(mode) for r in runs], mode) for _, runs in finalists]
    best = min(worst_seed) if mode is MetricMode.MIN else max(worst_seed)
    chosen, seed_runs = finalists[worst_seed.index(best)]
    validation_target, test_target = derive_targets(spec, seed_runs, split_sizes)
    if base_spec is None:
        budget_sec, step_hint = derive_budget(spec, seed_runs, validation_target), steps
    else:
        budget_sec, step_hint = base_spec.budget_sec, base_spec.step_hint

    bad_hparams = {**chosen, "learning_rate": chosen["learning_rate"] * BAD_LEARNING_RATE_FACTOR}
    on_progress("learning rate / 100")
    bad = run(tuning_spec, bad_hparams, plan.seeds[0], steps)
    reaching = [r.first_reach(spec, validation_target) is not None for r in tuning[1:]]
    record = {
        "workload": spec.name,
        "base": spec.base,
        "rule": __doc__.split("\n\n", 1)[1].strip(),
        "plan": {**dataclasses.asdict(plan), "seeds": list(plan.seeds), "steps": steps},
        "derived": {
            "validation_target": validation_target,
            "test_target": test_target,
            "budget_sec": budget_sec,
            "step_hint": step_hint,
        },
        "chosen_hparams": chosen,
        "finalists": [
            {"hparams": hparams, "worst_seed_best_validation": value}
            for (hparams, _), value in zip(finalists, worst_seed, strict=True)
        ],
        "quiet_speed": dataclasses.asdict(QuietSpeed.of(seed_runs)),
        "seed_runs": [
            _run_record(spec, r, validation_target, QuietSpeed.of(seed_runs)) for r in seed_runs
        ],
        "tuning": [
            {
                "hparams": r.hparams,
                "best_validation": r.best_validation(spec.mode),
                "reaches_target_at_step": _reach_step(spec, r, validation_target),
            }
            for r in tuning
        ],
        "checks": {
            "random_points_reaching_target": f"{sum(reaching)}/{len(reaching)}",
            "bad_setting": {
                "hparams": bad_hparams,
                "steps": bad.steps,
                "best_validation": bad.best_validation(spec.mode),
                "reaches_target_at_step": _reach_step(spec, bad, validation_target),
            },
        },
    }
    check_record(spec, record)
    return record


def _reach_step(spec: WorkloadSpec, run: RunSummary, target: float) -> int | None:
    reach = run.first_reach(spec, target)
    return None if reach is None else reach[0]


def _run_record(
    spec: WorkloadSpec, run: RunSummary, target: float, speed: QuietSpeed
) -> dict[str, Any]:
    step = _reach_step(spec, run, target)
    return {
        "seed": run.seed,
        "best_validation": run.best_validation(spec.mode),
        "steps_to_target": step,
        "compile_sec": round(run.compile_sec, 4),
        "sec_per_step": run.sec_per_step,
        "quiet_time_to_target_sec": None if step is None else round(speed.time_to(step), 4),
        "curve": [list(point) for point in run.curve],
    }


def check_record(spec: WorkloadSpec, record: Mapping[str, Any]) -> None:
    """Raise `CalibrationError` when a record's target is unsound (rule 5)."""
    if any(run["steps_to_target"] is None for run in record["seed_runs"]):
        raise CalibrationError(f"{spec.name}: a recorded seed does not reach the target")
    budget = record["derived"]["budget_sec"]
    slow = [r["seed"] for r in record["seed_runs"] if r["quiet_time_to_target_sec"] > budget]
    if slow:
        raise CalibrationError(
            f"{spec.name}: seed(s) {slow} need more than the {budget:g} s budget to reach "
            "the target"
        )
    derived = record["derived"]
    if spec.metric_bound is not None and spec.metric_bound in (
        derived["validation_target"],
        derived["test_target"],
    ):
        raise CalibrationError(f"{spec.name}: a target sits at the metric's bound")
    reached, total = map(int, record["checks"]["random_points_reaching_target"].split("/"))
    if total and reached == total:
        raise CalibrationError(
            f"{spec.name}: every random point of the search space reaches the target; "
            "it does not tell good training from bad"
        )
    if record["checks"]["bad_setting"]["reaches_target_at_step"] is not None:
        raise CalibrationError(f"{spec.name}: a learning rate 100x too small reaches the target")


def record_path(name: str, directory: Path = RECORD_DIR) -> Path:
    return directory / f"{name}.json"


def load_record(name: str, directory: Path = RECORD_DIR) -> dict[str, Any] | None:
    """The committed calibration record of workload ``name``, or None when there is none."""
    path = record_path(name, directory)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_record(record: Mapping[str, Any], directory: Path = RECORD_DIR) -> Path:
    path = record_path(record["workload"], directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
    return path


def stamp(record: dict[str, Any], command: str) -> dict[str, Any]:
    """``record`` with the command, the machine and the date it was made on."""
    return {
        **record,
        "command": command,
        "machine": machine(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def spec_mismatches(spec: WorkloadSpec, record: Mapping[str, Any]) -> list[str]:
    """The spec fields that differ from what the record derived (empty when they agree)."""
    return [
        f"{field}: spec {getattr(spec, field)!r}, record {value!r}"
        for field, value in record["derived"].items()
        if getattr(spec, field) != value
    ]


def split_sizes(workload, data_dir: str) -> dict[str, int]:
    """The examples in ``workload``'s validation and test splits (rule 3's smallest step)."""
    from optarena.workloads import data

    return {
        split: data.num_examples(workload.load_split(split, data_dir))
        for split in ("validation", "test")
    }


def trial_runner(workload, submission, data_dir: str) -> RunFn:
    """A `RunFn` training ``submission`` on ``workload`` with the real runner and clock."""
    from optarena.harness import runner

    def run(spec: WorkloadSpec, hparams: Mapping[str, Any], seed: int, steps: int) -> RunSummary:
        config = TrialConfig(seed=seed, hparams=dict(hparams), budget_sec=1e9, max_steps=steps)
        result = runner.run_trial(
            dataclasses.replace(workload, spec=spec), submission, config, data_dir=data_dir
        )
        return summarize(result, hparams, seed, spec.metric)

    return run


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifiedRun:
    """One rerun of a committed record: the chosen point on a recorded seed (``chosen``), or
    the point with its learning rate divided by 100, which must miss the target."""

    seed: int
    chosen: bool
    result: TrialResult


def verify(
    workload, submission, data_dir: str, on_progress: Callable[[str], None] = lambda _: None
) -> tuple[list[VerifiedRun], list[str]]:
    """Rerun ``workload``'s committed record under the real budget: every recorded seed must
    reach the target at its recorded step and lr / 100 must not reach it within ``step_hint``
    steps. Returns the runs and every problem found (none: the record reproduces)."""
    from optarena.harness import runner

    spec = workload.spec
    record = load_record(spec.name)
    if record is None:
        raise CalibrationError(
            f"{spec.name} has no calibration record; run optarena calibrate --write"
        )
    problems = spec_mismatches(spec, record)
    settings = [(run["seed"], record["chosen_hparams"], True) for run in record["seed_runs"]]
    bad = record["checks"]["bad_setting"]
    settings.append((record["plan"]["seeds"][0], bad["hparams"], False))
    runs = []
    for seed, hparams, chosen in settings:
        on_progress(f"verifying {spec.name}, seed {seed}")
        config = TrialConfig(
            seed=seed,
            hparams=hparams,
            budget_sec=spec.budget_sec,
            max_steps=None if chosen else spec.step_hint,
        )
        result = runner.run_trial(workload, submission, config, data_dir=data_dir)
        runs.append(VerifiedRun(seed=seed, chosen=chosen, result=result))
        if result.reached != chosen:
            verb = "missed" if chosen else "reached"
            problems.append(f"seed {seed} {verb} the target ({result.reason})")
        if chosen and result.reached:
            recorded = next(r for r in record["seed_runs"] if r["seed"] == seed)
            if result.steps_to_target != recorded["steps_to_target"]:
                problems.append(
                    f"seed {seed} took {result.steps_to_target} steps, the record says "
                    f"{recorded['steps_to_target']}"
                )
    return runs, problems
