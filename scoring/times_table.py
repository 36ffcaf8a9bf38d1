"""Validation of an external table of times to target, such as a published leaderboard's.

Columns: ruleset, submission, workload, base_workload (equal to workload for a base workload),
time_to_target_sec (a positive number of seconds, or ``inf`` for a missed target) and,
optionally, study (a non-negative integer; then each row is one study's time and the workload
time is the median over studies). Errors name the line of the file (the header is line 1).
"""

from __future__ import annotations

import math

import pandas as pd

from optarena.errors import UserError
from optarena.scoring.profiles import GROUP_KEYS, TIME

REQUIRED_COLUMNS = (*GROUP_KEYS, TIME)
STUDY = "study"


class TimesTableError(UserError, ValueError):
    """A table of times that cannot be scored; the message names the offending line."""


def _line(position: int) -> int:
    return position + 2


def _parse_time(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 and not math.isnan(value) else None


def _parse_study(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def validate_times(raw: pd.DataFrame) -> pd.DataFrame:
    """Check a table read as strings and return it typed (times as floats, studies as ints).

    Raises `TimesTableError` naming the first bad line: a missing or unknown column, an empty
    name, a time that is not a positive number or ``inf``, a workload given two different
    bases, a base that is itself a variant, or a duplicated row.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise TimesTableError(
            f"missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)}"
            f" (and optionally {STUDY}), got {', '.join(map(str, raw.columns))}"
        )
    unknown = [c for c in raw.columns if c not in (*REQUIRED_COLUMNS, STUDY)]
    if unknown:
        raise TimesTableError(
            f"unknown column(s) {', '.join(map(str, unknown))}; expected exactly "
            f"{', '.join(REQUIRED_COLUMNS)} (and optionally {STUDY})"
        )
    if raw.empty:
        raise TimesTableError("the table has no rows")
    has_study = STUDY in raw.columns
    keys = ["ruleset", "submission", "workload"] + ([STUDY] if has_study else [])
    times, studies = [], []
    base_of: dict[tuple[str, str], tuple[str, int]] = {}
    seen: dict[tuple, int] = {}
    for position, row in enumerate(raw.itertuples(index=False)):
        line = _line(position)
        fields = row._asdict()
        for column in GROUP_KEYS:
            text = fields[column]
            if not isinstance(text, str) or not text.strip():
                raise TimesTableError(f"line {line}: empty {column}")
        time = _parse_time(str(fields[TIME]).strip())
        if time is None:
            raise TimesTableError(
                f"line {line}: {TIME} must be a positive number of seconds or 'inf', "
                f"got {fields[TIME]!r}"
            )
        times.append(time)
        if has_study:
            study = _parse_study(str(fields[STUDY]).strip())
            if study is None:
                raise TimesTableError(
                    f"line {line}: {STUDY} must be a non-negative integer, got {fields[STUDY]!r}"
                )
            studies.append(study)
        workload_key = (fields["ruleset"], fields["workload"])
        base = fields["base_workload"]
        if workload_key in base_of and base_of[workload_key][0] != base:
            earlier_base, earlier_line = base_of[workload_key]
            raise TimesTableError(
                f"line {line}: workload {fields['workload']!r} has base_workload {base!r}, "
                f"but {earlier_base!r} on line {earlier_line}"
            )
        base_of.setdefault(workload_key, (base, line))
        key = tuple(studies[-1] if k == STUDY else fields[k] for k in keys)
        if key in seen:
            raise TimesTableError(
                f"line {line}: a second row for "
                + ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
                + f" (first on line {seen[key]})"
            )
        seen[key] = line
    for (ruleset, workload), (base, line) in base_of.items():
        base_base = base_of.get((ruleset, base))
        if base != workload and base_base is not None and base_base[0] != base:
            raise TimesTableError(
                f"line {line}: base_workload {base!r} of {workload!r} is itself a held-out "
                f"variant (of {base_base[0]!r}, line {base_base[1]})"
            )
    table = raw[list(GROUP_KEYS)].astype(str).copy()
    if has_study:
        table[STUDY] = studies
    table[TIME] = times
    return table
