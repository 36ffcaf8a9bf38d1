"""Hyperparameter points shared by the v0.5 entries built on AlgoPerf's NAdamW baseline.

`BASELINE_POINTS` are the five points of the v0.5 external-tuning baseline's
``tuning_search_space.json`` (``prize_qualification_baselines/external_tuning/`` in
mlcommons/algorithmic-efficiency): learning rate, ``1 - beta1``, ``beta2``, weight decay and
warmup fraction; its dropout and label-smoothing settings are the workload's business in
optarena and are left out. `SELF_TUNING_POINT` is the v0.5 self-tuning baseline's fixed point.
"""

from __future__ import annotations

BASELINE_POINTS = [
    {
        "learning_rate": 0.001308209823469072,
        "one_minus_beta1": 0.02686663061,
        "beta2": 0.9981232922116359,
        "weight_decay": 0.16375311233774334,
        "warmup_factor": 0.1,
    },
    {
        "learning_rate": 0.0008445074561975979,
        "one_minus_beta1": 0.11042418465,
        "beta2": 0.9978504782314613,
        "weight_decay": 0.08135402759553023,
        "warmup_factor": 0.05,
    },
    {
        "learning_rate": 0.001308209823469072,
        "one_minus_beta1": 0.02686663061,
        "beta2": 0.9981232922116359,
        "weight_decay": 0.16375311233774334,
        "warmup_factor": 0.1,
    },
    {
        "learning_rate": 0.004958460849689891,
        "one_minus_beta1": 0.13625575743,
        "beta2": 0.6291854735396584,
        "weight_decay": 0.1147386261512052,
        "warmup_factor": 0.02,
    },
    {
        "learning_rate": 0.0017486387539278373,
        "one_minus_beta1": 0.06733926164,
        "beta2": 0.9955159689799007,
        "weight_decay": 0.08121616522670176,
        "warmup_factor": 0.02,
    },
]

SELF_TUNING_POINT = {
    "learning_rate": 0.0017486387539278373,
    "one_minus_beta1": 0.06733926164,
    "beta2": 0.9955159689799007,
    "weight_decay": 0.08121616522670176,
    "warmup_factor": 0.02,
}


def with_extra(points: list[dict], **extra) -> list[dict]:
    """`points`, each with the entry's own fixed settings ``extra`` added."""
    return [{**point, **extra} for point in points]
