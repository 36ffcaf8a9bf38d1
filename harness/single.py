"""One trial, checked and run in this process: what ``optarena run`` does.

`prepare` validates every input before anything runs (an unknown workload, submission or
hyperparameter, a budget that is not positive, a factory that raises: each a `UserError`), and
`run` trains the trial here, calling back at every evaluation, and returns it finished, for
the caller to store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optarena.errors import UserError
from optarena.harness import benchmark, provenance, runner, tracing
from optarena.records import EvalPoint, FinishedTrial, Trial, TrialConfig
from optarena.submissions import loader
from optarena.submissions.api import Submission
from optarena.workloads import registry


class HparamsError(UserError, ValueError):
    """Hyperparameters that the submission does not know."""


def resolve_hparams(
    submission: Submission, overrides: Mapping[str, Any] | None
) -> dict[str, Any] | None:
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
        raise HparamsError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for {submission.name}; "
            f"known: {', '.join(sorted(known))}"
        )
    return {**defaults, **overrides}


def prepare(
    workload: str,
    reference: str,
    *,
    hparams: Mapping[str, Any] | None = None,
    seed: int = 0,
    budget_sec: float | None = None,
    max_steps: int | None = None,
) -> Trial:
    """The trial of ``reference`` on ``workload`` at its default point with ``hparams`` applied,
    its submission's factory tried once so that a broken one fails here."""
    spec = registry.get(workload).spec
    loaded = loader.load(reference)
    point = resolve_hparams(loaded.submission, hparams)
    try:
        config = TrialConfig(
            seed=seed,
            hparams=point,
            budget_sec=spec.budget_sec if budget_sec is None else budget_sec,
            max_steps=max_steps,
        )
        info = tracing.workload_info(
            registry.get(workload), loaded.submission, config.budget_sec, runner.make_mesh().size
        )
    except ValueError as error:
        raise UserError(str(error)) from error
    tracing.make_optimizer(loaded.submission, point, info)
    return Trial(
        submission=benchmark.submission_ref(loaded.info, reference), spec=spec, config=config
    )


def run(
    trial: Trial, data_dir: str, *, on_eval: Callable[[EvalPoint], None] | None = None
) -> FinishedTrial:
    """Train ``trial`` in this process; a failure of the submission's code is a `UserError`."""
    loaded = loader.load(trial.submission.reference)
    started_at = dt.datetime.now(dt.UTC)
    result = runner.run_trial(
        registry.get(trial.workload),
        loaded.submission,
        trial.config,
        data_dir=data_dir,
        on_eval=on_eval,
    )
    return FinishedTrial(
        trial=trial,
        result=result,
        provenance=provenance.collect(),
        started_at=started_at,
        finished_at=dt.datetime.now(dt.UTC),
    )
