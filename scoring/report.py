"""Everything `optarena score` reports, from a table of times or from stored trials."""

from __future__ import annotations

import pandas as pd

from scoring.aggregate import workload_times
from scoring.profiles import ScoreTables, score_times
from scoring.times_table import STUDY


def score_times_table(times: pd.DataFrame) -> ScoreTables:
    """Scores of a validated times table (one time per workload, or per study)."""
    if STUDY in times.columns:
        times = workload_times(times)
    return score_times(times)
