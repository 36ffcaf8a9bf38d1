"""Muon (Jordan et al., 2024) from ``optax.contrib``, with AdamW for what is not a weight matrix.

Muon orthogonalizes the momentum of each weight matrix by Newton-Schulz iterations. It applies
to the ``kernel`` of dense and convolution layers (a convolution kernel is treated as a matrix
from its input dimensions, every axis but the last, to its output channels); biases, norms,
embeddings and other parameters train with AdamW, as Muon's authors recommend. Both learning
rates rise linearly from 0 for ``warmup_factor * step_hint`` steps, then follow a cosine to 0.
"""

from __future__ import annotations

from typing import Any

import jax
import optax
import optax.contrib

from optarena.submissions import Submission, WorkloadInfo
from optarena.submissions.schedules import warmup_cosine

SEARCH_SPACE = {
    "learning_rate": {"min": 3e-3, "max": 1e-1, "scaling": "log"},
    "adam_learning_rate": {"min": 3e-4, "max": 3e-2, "scaling": "log"},
    "one_minus_beta": {"min": 0.02, "max": 0.2, "scaling": "log"},
    "weight_decay": {"min": 1e-3, "max": 1.0, "scaling": "log"},
    "warmup_factor": {"feasible_points": [0.02, 0.05, 0.1]},
}

DEFAULT_HPARAMS = {
    "learning_rate": 0.02,
    "adam_learning_rate": 3e-3,
    "one_minus_beta": 0.05,
    "weight_decay": 0.01,
    "warmup_factor": 0.05,
}


def _last_key(path: tuple) -> str:
    return str(getattr(path[-1], "key", getattr(path[-1], "name", ""))) if path else ""


def muon_dimensions(params: Any) -> Any:
    """Per leaf: how Muon sees it as a matrix, or ``None`` for AdamW.

    A layer ``kernel`` of rank >= 2 is a matrix from all its leading axes to its last one.
    """

    def dimensions(path: tuple, leaf: Any) -> optax.contrib.MuonDimensionNumbers | None:
        if _last_key(path) != "kernel" or leaf.ndim < 2:
            return None
        return optax.contrib.MuonDimensionNumbers(
            reduction_axis=tuple(range(leaf.ndim - 1)), output_axis=leaf.ndim - 1
        )

    return jax.tree_util.tree_map_with_path(dimensions, params)


def muon(
    info: WorkloadInfo,
    learning_rate,
    adam_learning_rate,
    one_minus_beta,
    weight_decay,
    warmup_factor,
) -> optax.GradientTransformation:
    """``optax.contrib.muon`` on layer kernels, AdamW elsewhere, both on warmup + cosine."""
    return optax.contrib.muon(
        learning_rate=warmup_cosine(learning_rate, warmup_factor, info.step_hint),
        adam_learning_rate=warmup_cosine(adam_learning_rate, warmup_factor, info.step_hint),
        beta=1.0 - one_minus_beta,
        weight_decay=weight_decay,
        adam_weight_decay=weight_decay,
        muon_weight_dimension_numbers=muon_dimensions,
    )


SUBMISSION = Submission.from_builder(muon, SEARCH_SPACE, DEFAULT_HPARAMS)
