"""Describing a submission for planning, in a sandboxed process.

The process that plans a benchmark and stores its results never imports a submission: it
plans from a `SubmissionInfo` (identity, search space, default point, flags) that a sandboxed
process (`optarena.harness.sandbox`) reads and sends back as JSON. A submission that exits,
crashes, hangs or patches the harness when imported costs only that process, and the command
that asked for it fails with one line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from optarena.harness import sandbox
from optarena.submissions import loader
from optarena.submissions.loader import SubmissionInfo

DESCRIBE_LIMIT_SEC = 120.0
"""How long importing a submission and reading its description may take."""


def _described(reference: str) -> list[bytes]:
    """`loader.load`'s description of ``reference``, for a sandboxed process."""
    try:
        return [loader.load(reference).info.to_json().encode()]
    except loader.SubmissionError as error:
        raise sandbox.Refused(str(error)) from error


def describe(reference: str, *, limit_sec: float = DESCRIBE_LIMIT_SEC) -> SubmissionInfo:
    """The description of the submission ``reference`` names, read in a sandboxed process.

    Raises `loader.SubmissionError` (one line) when it cannot be loaded, or when loading it
    fails in any way: an exception, an exit, a crash, a hang past ``limit_sec``.
    """
    # The sandbox has a working directory of its own: a relative path is this one's.
    where = str(Path(reference).resolve()) if loader.is_path(reference) else reference
    try:
        (frame,) = sandbox.call(
            _described, (where,), limit_sec=limit_sec, what=f"loading {reference}"
        )
    except sandbox.Refused as error:
        raise loader.SubmissionError(str(error)) from None
    except sandbox.SandboxFailure as error:
        raise loader.SubmissionError(f"loading submission {reference!r} failed: {error}") from None
    except ValueError as error:  # more than one frame
        raise loader.SubmissionError(f"loading {reference!r} gave a malformed answer") from error
    info = SubmissionInfo.from_json(frame)
    return dataclasses.replace(info, origin=reference) if where != reference else info
