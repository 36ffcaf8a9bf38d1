"""CSV files users hand to optarena: tables of times to score, and recorded scores to compare.

Each reader returns a validated frame or raises a `UserError` whose one line names the file
and what is wrong with it.
"""

from __future__ import annotations

import pandas as pd

from optarena.errors import UserError
from optarena.scoring.report import Report, Settings, score_times_table
from optarena.scoring.times_table import TimesTableError, validate_times


class CsvInputError(UserError, ValueError):
    """A CSV file that cannot be read or used; the message names the file."""


def _read(path: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError as error:
        raise CsvInputError(f"{path}: no such file") from error
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise CsvInputError(f"{path}: not a readable CSV file: {error}".splitlines()[0]) from error


def read_times(path: str) -> pd.DataFrame:
    """A CSV of times to target (the format of `optarena.scoring.times_table`), validated."""
    try:
        return validate_times(_read(path))
    except TimesTableError as error:
        raise CsvInputError(f"{path}: {error}") from error


def score_times_file(path: str, settings: Settings | None = None) -> Report:
    """AlgoPerf's scores of a CSV of times (``optarena score --times``)."""
    times = read_times(path)
    try:
        return score_times_table(times, settings)
    except ValueError as error:
        raise CsvInputError(f"{path}: {error}") from error


def read_recorded_scores(path: str) -> pd.DataFrame:
    """ruleset, submission, score from a CSV with a ``score`` or ``published_score`` column."""
    raw = _read(path)
    column = next((c for c in ("score", "published_score") if c in raw.columns), None)
    missing = [c for c in ("ruleset", "submission") if c not in raw.columns]
    if column is None or missing:
        raise CsvInputError(
            f"{path}: needs the columns ruleset, submission and score (or published_score)"
        )
    frame = raw[["ruleset", "submission"]].copy()
    try:
        frame["score"] = raw[column].astype(float)
    except ValueError as error:
        raise CsvInputError(f"{path}: {column} must be numbers: {error}") from error
    if frame.duplicated(["ruleset", "submission"]).any():
        raise CsvInputError(f"{path}: a (ruleset, submission) appears twice")
    return frame
