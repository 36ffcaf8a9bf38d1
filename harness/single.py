"""One trial, checked and run: what ``optarena run`` does.

`prepare` validates every input before anything runs (an unknown workload, submission or
hyperparameter, a budget that is not positive, a factory that fails: each a `UserError`) and
traces the submission's optimizer in a sandboxed process (`optarena.harness.sandbox`); `run`
trains the trial in this process, which never imports the submission, calling back at every
evaluation, and returns it finished, for the caller to store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optarena.errors import UserError
from optarena.harness import benchmark, describing, executors, provenance, runner, sandbox
from optarena.harness.optimizer_program import OptimizerProgram
from optarena.records import EvalPoint, FinishedTrial, Trial, TrialConfig
from optarena.submissions.loader import SubmissionInfo
from optarena.workloads import registry


class HparamsError(UserError, ValueError):
    """Hyperparameters that the submission does not know."""


class TraceError(UserError, RuntimeError):
    """The submission's optimizer could not be traced for the trial."""


@dataclasses.dataclass(frozen=True)
class PreparedTrial:
    """A trial and its traced optimizer, ready to run."""

    trial: Trial
    program: OptimizerProgram


def resolve_hparams(
    submission: SubmissionInfo, overrides: Mapping[str, Any] | None
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
) -> PreparedTrial:
    """The trial of ``reference`` on ``workload`` at its default point with ``hparams``
    applied, and its optimizer traced, so that a broken factory fails here."""
    spec = registry.get(workload).spec
    described = describing.describe(reference)
    point = resolve_hparams(described, hparams)
    try:
        config = TrialConfig(
            seed=seed,
            hparams=point,
            budget_sec=spec.budget_sec if budget_sec is None else budget_sec,
            max_steps=max_steps,
        )
    except ValueError as error:
        raise UserError(str(error)) from error
    trial = Trial(
        submission=benchmark.submission_ref(described, reference), spec=spec, config=config
    )
    try:
        program = executors.trace_in_sandbox(trial)
    except sandbox.SandboxFailure as error:
        raise TraceError(f"{described.name} cannot run on {workload}: {error}") from None
    return PreparedTrial(trial, program)


def run(
    prepared: PreparedTrial,
    data_dir: str,
    *,
    on_eval: Callable[[EvalPoint], None] | None = None,
) -> FinishedTrial:
    """Train the prepared trial in this process: only its exported programs run here."""
    trial = prepared.trial
    started_at = dt.datetime.now(dt.UTC)
    result = runner.run_program(
        registry.get(trial.workload),
        prepared.program,
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
