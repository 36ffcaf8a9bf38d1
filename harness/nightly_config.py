"""The nightly job's settings: a TOML file (every key optional), checked before anything runs.

Every key, its type and its default is in `NightlyConfig`; the README's "Nightly job and
reproduction" section lists them. An unknown key or a value of the wrong kind is a
`ConfigError` whose message is one line naming the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from optarena.errors import UserError
from optarena.harness.benchmark import PlanError, check_held_out_variants
from optarena.harness.executors import ExecutorKind
from optarena.records import Ruleset

EXECUTORS = tuple(kind.value for kind in ExecutorKind)


class ConfigError(UserError, ValueError):
    """A nightly configuration that cannot be used; the message is one line."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class NightlyConfig:
    """What the nightly job runs, where it stores it, and how it judges a change.

    The defaults keep a night of the ``quick`` suite to minutes per submission on a laptop CPU:
    three studies (the fewest that give the median and its bootstrap band something to vary),
    two trials per study under external tuning (AlgoPerf runs five).
    """

    suite: str = "quick"
    workloads: tuple[str, ...] = ()
    """Base workloads of the suite to run; empty: all of them."""
    held_out_variants: int = 0
    """Held-out variants per base workload drawn, run and scored: 0 as AlgoPerf v0.6, 1 as
    v0.5."""
    rulesets: tuple[str, ...] = ("external", "self")
    studies: int = 3
    trials: int = 2
    """Trials per study under external tuning; self-tuning runs one per study (its rule)."""
    seed: int = 0
    """Benchmark seed: held-out draw, study points and trial seeds."""
    max_steps: int | None = None
    budget_factor: float | None = None
    """Factor on workload budgets; none: each ruleset's own (1 external, 1.5 self)."""
    submissions: tuple[str, ...] = ()
    """Built-in names, installed plugin names or ``.py`` paths; empty: every registered one."""
    store: str | None = None
    """SQLAlchemy URL; none: ``$OPTARENA_DB`` or ``sqlite:///optarena.db``."""
    output_dir: str = "nightly"
    executor: str = "child-process"
    """child-process, in-process, ray (the cluster at ``ray_address``) or slurm (a SLURM job
    per trial, see ``slurm_partition``); timing trials included (README: "Running on a
    cluster")."""
    ray_address: str | None = None
    """With ``executor = "ray"``: the cluster's ``HOST:PORT``; none: as ``--executor ray``."""
    slurm_partition: str | None = None
    """With ``executor = "slurm"``: the partition each trial's job goes to."""
    slurm_gpus_per_trial: int | None = None
    """With ``executor = "slurm"``: the GPUs each trial's job asks for (none: no GPU)."""
    reference: str = "nadamw"
    """The submission whose fixed trials are re-timed every night to measure the machine."""
    timing_seeds: int = 2
    """Fixed trials of the reference per base workload (seeds 0, 1, ...) re-timed each night."""
    timing_steps: int = 1000
    """Step cap of those trials (their budget is 10x the workload's, so it never binds and
    every night times the same steps)."""
    timing_tolerance: float = 0.1
    """The least relative slowdown of a time that can count as a regression."""
    normalize_timing: bool = False
    """Divide each trial's time by its night's machine speed (see the README) before scoring."""
    replicates: int = 1000
    bootstrap_seed: int = 0
    level: float = 0.95

    def comparison_key(self) -> str:
        """A hash of the settings that make two nights' snapshots comparable."""
        fields = {
            "suite": self.suite,
            "workloads": sorted(self.workloads),
            "held_out_variants": self.held_out_variants,
            "studies": self.studies,
            "trials": self.trials,
            "seed": self.seed,
            "max_steps": self.max_steps,
            "budget_factor": self.budget_factor,
            "normalize_timing": self.normalize_timing,
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def _check_type(key: str, value: Any, expected: Any) -> Any:
    kind = {
        "str": str,
        "bool": bool,
        "int": int,
        "float": float,
        "tuple[str, ...]": tuple,
        "int | None": int,
        "float | None": float,
        "str | None": str,
    }[expected]
    if kind is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings, got {value!r}")
        return tuple(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"{key} must be {_article(kind)}, got {value!r}")
    return value


def _article(kind: type) -> str:
    return {str: "a string", bool: "true or false", int: "an integer", float: "a number"}[kind]


def _validate(config: NightlyConfig) -> NightlyConfig:
    known = (Ruleset.EXTERNAL.value, Ruleset.SELF.value)
    if not config.rulesets or any(r not in known for r in config.rulesets):
        raise ConfigError(f"rulesets must be a non-empty list of {', '.join(known)}")
    if len(set(config.rulesets)) != len(config.rulesets):
        raise ConfigError("rulesets names a ruleset twice")
    for key in ("studies", "trials", "timing_seeds", "timing_steps", "replicates"):
        if getattr(config, key) <= 0:
            raise ConfigError(f"{key} must be positive, got {getattr(config, key)}")
    try:
        check_held_out_variants(config.held_out_variants)
    except PlanError as error:
        raise ConfigError(str(error)) from None
    if config.max_steps is not None and config.max_steps <= 0:
        raise ConfigError(f"max_steps must be positive, got {config.max_steps}")
    positive = (config.budget_factor, config.timing_tolerance)
    if any(v is not None and not (v > 0 and math.isfinite(v)) for v in positive):
        raise ConfigError("budget_factor and timing_tolerance must be positive numbers")
    if not 0 < config.level < 1:
        raise ConfigError(f"level must be between 0 and 1, got {config.level}")
    if config.executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}")
    if config.ray_address is not None and config.executor != ExecutorKind.RAY:
        raise ConfigError('ray_address needs executor = "ray"')
    slurm = (config.slurm_partition, config.slurm_gpus_per_trial)
    if slurm != (None, None) and config.executor != ExecutorKind.SLURM:
        raise ConfigError('slurm_partition and slurm_gpus_per_trial need executor = "slurm"')
    if config.slurm_gpus_per_trial is not None and config.slurm_gpus_per_trial <= 0:
        raise ConfigError(
            f"slurm_gpus_per_trial must be positive, got {config.slurm_gpus_per_trial}"
        )
    if len(set(config.submissions)) != len(config.submissions):
        raise ConfigError("submissions names a submission twice")
    return config


def from_mapping(raw: Mapping[str, Any], source: str = "config") -> NightlyConfig:
    """A checked config from parsed TOML; unknown keys and bad values are one-line errors."""
    fields = {f.name: f for f in dataclasses.fields(NightlyConfig)}
    unknown = sorted(set(raw) - set(fields))
    if "held_out" in unknown:
        raise ConfigError(
            f"{source}: held_out is now held_out_variants, the number of held-out variants per "
            "base workload (0, the default, as AlgoPerf v0.6; 1 as v0.5)"
        )
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}"
        )
    values = {}
    for key, value in raw.items():
        try:
            values[key] = _check_type(key, value, fields[key].type)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None
    try:
        return _validate(NightlyConfig(**values))
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def load(path: str | None) -> NightlyConfig:
    """The config in ``path`` (TOML), or every default when ``path`` is None."""
    if path is None:
        return _validate(NightlyConfig())
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}".splitlines()[0]) from error
    return from_mapping(raw, path)
