"""Matplotlib figures of a snapshot as PNG bytes: performance profiles and training curves.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global state), so nothing
changes matplotlib's settings for anyone else.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from optarena.scoring.profiles import rho, taus


def _plain(text: str) -> str:
    """Text shown as is: matplotlib would read ``$...$`` as mathematics."""
    return str(text).replace("$", r"\$")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def colours(names: list[str]) -> dict[str, str]:
    """One matplotlib cycle colour per submission, so every plot of a page agrees."""
    return {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(names))}


def profile_png(scores: pd.DataFrame, workloads: pd.DataFrame, colour: dict[str, str]) -> bytes:
    """rho(tau) of each submission of one ruleset, in rank order, from its stored ratios; drawn
    through the 100 grid points, the polyline whose area the score is."""
    grid = taus()
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for row in scores.sort_values(["rank", "submission"]).itertuples(index=False):
        ratios = workloads.loc[workloads["submission"] == row.submission, "ratio"]
        profile = rho(ratios.to_numpy(dtype=float)[None, :], grid)[0]
        axes.plot(
            grid,
            profile,
            linewidth=2,
            color=colour[row.submission],
            label=_plain(f"{row.submission} ({row.score:.4f})"),
        )
    axes.set_xlim(grid[0], grid[-1])
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("tau: time to target / fastest submission's")
    axes.set_ylabel("fraction of base workloads within tau")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    return _png(figure)


def curves_png(curves: pd.DataFrame, trials: pd.DataFrame, colour: dict[str, str]) -> bytes:
    """Validation metric against timed seconds for every trial of one workload, coloured by
    submission, with the validation target as a dashed line."""
    figure = Figure(figsize=(7.5, 4.0), layout="constrained")
    axes = figure.add_subplot()
    submission_of = trials.set_index("trial_id")["submission"]
    labelled = set()
    for trial_id, points in curves.groupby("trial_id", sort=True):
        submission = submission_of[trial_id]
        axes.plot(
            points["timed_sec"],
            points["value"],
            marker="o",
            markersize=3,
            color=colour[submission],
            alpha=0.8,
            label=None if submission in labelled else _plain(submission),
        )
        labelled.add(submission)
    first = curves.iloc[0]
    axes.axhline(
        first["validation_target"],
        color="black",
        linestyle="--",
        label=_plain(f"target {first['validation_target']:g} ({first['mode']})"),
    )
    axes.set_xlabel("timed seconds")
    axes.set_ylabel(_plain(f"validation {first['metric']}"))
    values = curves["value"].to_numpy(dtype=float)
    if np.isfinite(values).any() and (values[np.isfinite(values)] > 0).all():
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _png(figure)
