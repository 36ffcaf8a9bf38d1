"""Benchmark plans under AlgoPerf's two rulesets: which trials run, with which points and seeds.

A benchmark runs a submission on every base workload of a suite and, when the config asks for
``held_out_variants`` (AlgoPerf v0.5 scored one per base; v0.6, the default here, none), that
many held-out variants of each base, drawn from the benchmark seed; a plan is a list of
`Trial`s. Under the **external** ruleset each study samples its own points from the
submission's search space (a scrambled Halton sequence seeded per study) and runs one trial per
point; under **self-tuning** the submission gets ``hparams=None`` and a longer budget, one trial
per study. Every trial's seed is derived from ``(benchmark seed, workload, study, trial)``, so a
plan is a pure function of its inputs: the same command plans the same trials, and a rerun can
recognise the ones already stored. The main job (`optarena quickstart`) plans the same way with
the ``default`` ruleset: each submission at its default point, one study per seed.

Nothing here runs a trial; a campaign does (`optarena.harness.campaign`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optarena.errors import UserError
from optarena.records import BenchmarkPlace, Ruleset, SubmissionRef, Trial, TrialConfig
from optarena.submissions import search_space

if TYPE_CHECKING:
    from optarena.submissions.loader import SubmissionInfo


@dataclasses.dataclass(frozen=True, kw_only=True)
class RulesetDefaults:
    """A ruleset's defaults: studies, trials per study, and the factor on workload budgets."""

    studies: int
    trials: int
    budget_factor: float


MAX_STUDIES = 1000
MAX_TRIALS = 1000
"""The most studies per workload and trials per study a benchmark plans."""
MAX_HELD_OUT_VARIANTS = 100
"""The most held-out variants per base a benchmark asks for (a base with fewer gives them all)."""

DEFAULTS: Mapping[Ruleset, RulesetDefaults] = {
    # AlgoPerf v0.6: 3 studies x 5 trials, the workload's budget.
    Ruleset.EXTERNAL: RulesetDefaults(studies=3, trials=5, budget_factor=1.0),
    # AlgoPerf v0.6: 3 studies x 1 trial at 1.5x the budget (v0.5 gave 3x).
    Ruleset.SELF: RulesetDefaults(studies=3, trials=1, budget_factor=1.5),
    # The main job: three seeds at the default point, the workload's budget.
    Ruleset.DEFAULT_POINT: RulesetDefaults(studies=3, trials=1, budget_factor=1.0),
}


class PlanError(UserError, ValueError):
    """A benchmark that cannot be planned (bad input): the message is one line."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchmarkConfig:
    """How to run a benchmark; with the submission and workloads it determines every trial."""

    ruleset: Ruleset
    studies: int
    trials: int
    seed: int
    budget_factor: float
    max_steps: int | None = None
    held_out_variants: int = 0
    """Held-out variants per base workload drawn, run and scored: 0 as AlgoPerf v0.6 (its
    current rules), 1 as v0.5 (a base's time becomes infinite where its variant misses)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ruleset", Ruleset(self.ruleset))
        check_held_out_variants(self.held_out_variants)
        if not (0 < self.studies <= MAX_STUDIES and 0 < self.trials <= MAX_TRIALS):
            raise ValueError(
                f"studies must be 1 to {MAX_STUDIES} and trials 1 to {MAX_TRIALS}, got "
                f"{self.studies=}, {self.trials=}"
            )
        if not self.budget_factor > 0:
            raise ValueError(f"budget_factor must be positive, got {self.budget_factor=}")

    @classmethod
    def for_ruleset(cls, ruleset: Ruleset | str, **overrides: Any) -> BenchmarkConfig:
        """The ruleset's defaults (see `DEFAULTS`), with any field given in ``overrides``."""
        if ruleset not in tuple(Ruleset):
            known = ", ".join(r.value for r in Ruleset)
            raise PlanError(f"unknown ruleset {ruleset!r}; known: {known}")
        ruleset = Ruleset(ruleset)
        defaults = DEFAULTS[ruleset]
        fields = {
            "studies": defaults.studies,
            "trials": defaults.trials,
            "seed": 0,
            "budget_factor": defaults.budget_factor,
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(ruleset=ruleset, **fields)


def ruleset_config(
    ruleset: Ruleset | str, *, external_trials: int | None, **overrides: Any
) -> BenchmarkConfig:
    """`BenchmarkConfig.for_ruleset` with ``external_trials`` trials per study under external
    tuning; self-tuning keeps its own (one per study). For commands that run both rulesets."""
    trials = external_trials if ruleset == Ruleset.EXTERNAL else None
    return BenchmarkConfig.for_ruleset(ruleset, trials=trials, **overrides)


def check_held_out_variants(value: object) -> int:
    """``value`` if it is a valid number of held-out variants per base; else a `PlanError`."""
    valid = isinstance(value, int) and not isinstance(value, bool)
    if not (valid and 0 <= value <= MAX_HELD_OUT_VARIANTS):
        raise PlanError(
            f"held_out_variants must be an integer from 0 to {MAX_HELD_OUT_VARIANTS} (0: none, "
            f"as AlgoPerf v0.6; 1: one per base workload, as v0.5), got {value!r}"
        )
    return value


def derive_seed(*parts: object) -> int:
    """A seed in ``[0, 2**31)`` from the parts' text: stable across runs, machines and Pythons."""
    text = "/".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def trial_seed(benchmark_seed: int, workload: str, study: int, trial: int) -> int:
    """The seed of one trial (model init, data order, per-step randomness)."""
    return derive_seed("trial", benchmark_seed, workload, study, trial)


def study_seed(benchmark_seed: int, study: int) -> int:
    """The seed from which a study samples its points of the search space."""
    return derive_seed("study", benchmark_seed, study)


def held_out_candidates(base: str) -> list[str]:
    """The registered held-out variants of ``base``, sorted by name."""
    from optarena.workloads import registry

    return [name for name in registry.names() if registry.get(name).spec.base == base]


def draw_variants(bases: Sequence[str], seed: int, count: int = 1) -> dict[str, tuple[str, ...]]:
    """``count`` held-out variants per base (all of them where a base has fewer; bases without
    a variant, or every base when ``count`` is 0, are left out), drawn from ``seed``.

    The first variant of a base is its candidate at ``derive_seed("held_out", seed, base)``
    modulo their number, the next ones follow in name order, wrapping around: the draw for a
    base depends only on the seed, the base's name and its candidates, so it is the same
    whatever else the suite holds, can be reproduced from the recorded seed, and a larger
    ``count`` keeps the variants a smaller one drew.
    """
    check_held_out_variants(count)
    drawn = {}
    for base in bases:
        candidates = held_out_candidates(base)
        if candidates and count:
            first = derive_seed("held_out", seed, base) % len(candidates)
            taken = min(count, len(candidates))
            drawn[base] = tuple(candidates[(first + k) % len(candidates)] for k in range(taken))
    return drawn


def study_points(
    loaded: SubmissionInfo, config: BenchmarkConfig
) -> list[list[Mapping[str, Any] | None]]:
    """The hyperparameter points of each study, one per trial.

    External tuning samples ``config.trials`` points per study from the study's own seed (a
    list of fixed points gives its first ``config.trials`` points, AlgoPerf's rule, so a short
    list means fewer trials). Self-tuning gives ``None`` for every trial.
    """
    if config.ruleset is Ruleset.DEFAULT_POINT:
        point = loaded.default_hparams
        if point is None and not loaded.self_tuning:
            raise PlanError(f"{loaded.name} has no default point and is not self-tuning")
        return [[point] * config.trials for _ in range(config.studies)]
    if config.ruleset is Ruleset.SELF:
        if not loaded.self_tuning:
            raise PlanError(
                f"{loaded.name} does not declare self_tuning=True, so it cannot run under the "
                "self-tuning ruleset (use --ruleset external)"
            )
        return [[None] * config.trials for _ in range(config.studies)]
    raw = loaded.search_space
    if raw is None:
        raise PlanError(
            f"{loaded.name} has no search space, so it cannot run under the external "
            "ruleset (use --ruleset self)"
        )
    try:
        space = search_space.parse(raw)
    except search_space.SearchSpaceError as error:
        raise PlanError(f"invalid search space of {loaded.name}: {error}") from error
    return [
        search_space.sample(space, config.trials, study_seed(config.seed, study))
        for study in range(config.studies)
    ]


def submission_ref(loaded: SubmissionInfo, reference: str) -> SubmissionRef:
    """The identity a trial records of ``loaded``, loaded from ``reference``; a path becomes
    absolute, so that the trial loads the same file from any working directory."""
    from optarena.submissions import loader

    return SubmissionRef(
        name=loaded.name,
        reference=str(Path(reference).resolve()) if loader.is_path(reference) else reference,
        origin=loaded.origin,
        source_sha256=loaded.source_sha256,
    )


def benchmark_workloads(bases: Sequence[str], variants: Mapping[str, Sequence[str]]) -> list[str]:
    """Each base followed by its held-out variants in ``variants`` (see `draw_variants`)."""
    names: list[str] = []
    for base in bases:
        names.append(base)
        names.extend(variants.get(base, ()))
    return names


def trial_seed_of(config: BenchmarkConfig, workload: str, study: int, trial: int) -> int:
    """The seed of a planned trial: the main job's studies are its seeds (``seed + study``),
    the rulesets derive one per trial (see `trial_seed`)."""
    if config.ruleset is Ruleset.DEFAULT_POINT:
        return config.seed + study
    return trial_seed(config.seed, workload, study, trial)


def plan(
    loaded: SubmissionInfo, reference: str, workloads: Sequence[str], config: BenchmarkConfig
) -> list[Trial]:
    """Every trial of the benchmark, workload by workload, study by study, trial by trial."""
    from optarena.workloads import registry

    points = study_points(loaded, config)
    submission = submission_ref(loaded, reference)
    trials = []
    for name in workloads:
        spec = registry.get(name).spec
        for study, study_hparams in enumerate(points):
            for index, hparams in enumerate(study_hparams):
                trials.append(
                    Trial(
                        submission=submission,
                        spec=spec,
                        config=TrialConfig(
                            seed=trial_seed_of(config, name, study, index),
                            hparams=hparams,
                            budget_sec=spec.budget_sec * config.budget_factor,
                            max_steps=config.max_steps,
                        ),
                        place=BenchmarkPlace(
                            ruleset=config.ruleset,
                            study=study,
                            trial=index,
                            benchmark_seed=config.seed,
                            held_out_variants=config.held_out_variants,
                        ),
                    )
                )
    return trials
