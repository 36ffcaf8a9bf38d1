"""The explicit registry of built-in workloads, by name.

Each entry names the module that defines ``WORKLOAD``; modules are imported only
when a workload is asked for, so listing names costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from optarena.errors import UserError

if TYPE_CHECKING:
    from optarena.workloads.base import Workload

_BUILTIN: tuple[tuple[str, str], ...] = (
    ("digits_mlp", "optarena.workloads.digits_mlp"),
    ("mnist1d_cnn", "optarena.workloads.mnist1d_cnn"),
    ("modular_transformer", "optarena.workloads.modular_transformer"),
    ("shapes_unet", "optarena.workloads.shapes_unet"),
    ("click_dlrm", "optarena.workloads.click_dlrm"),
    ("graphs_gin", "optarena.workloads.graphs_gin"),
    ("digits_mlp_tanh", "optarena.workloads.digits_mlp_tanh"),
    ("mnist1d_cnn_batchnorm", "optarena.workloads.mnist1d_cnn_batchnorm"),
    ("modular_transformer_attention_temp", "optarena.workloads.modular_transformer_attention_temp"),
    ("shapes_unet_tanh", "optarena.workloads.shapes_unet_tanh"),
    ("click_dlrm_embed_init", "optarena.workloads.click_dlrm_embed_init"),
    ("graphs_gin_gelu", "optarena.workloads.graphs_gin_gelu"),
    ("mnist_cnn", "optarena.workloads.mnist_cnn"),
    ("cifar10_cnn", "optarena.workloads.cifar10_cnn"),
    ("pysource_lm", "optarena.workloads.pysource_lm"),
    ("pysource_lm_glu", "optarena.workloads.pysource_lm_glu"),
    ("speech_conformer", "optarena.workloads.speech_conformer"),
    ("speech_conformer_gelu", "optarena.workloads.speech_conformer_gelu"),
    ("digits_vit", "optarena.workloads.digits_vit"),
    ("digits_vit_post_ln", "optarena.workloads.digits_vit_post_ln"),
    ("numbers_translate", "optarena.workloads.numbers_translate"),
    ("numbers_translate_glu", "optarena.workloads.numbers_translate_glu"),
)


class UnknownWorkloadError(UserError, LookupError):
    """Raised for a workload name that is not registered."""


def _checked(entries: Iterable[tuple[str, str]]) -> dict[str, str]:
    registry: dict[str, str] = {}
    for name, module in entries:
        if name in registry:
            raise ValueError(f"duplicate workload name {name!r} ({registry[name]} and {module})")
        registry[name] = module
    return registry


_REGISTRY = _checked(_BUILTIN)


def names() -> list[str]:
    """Registered workload names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Workload:
    """The registered workload ``name``; raises `UnknownWorkloadError` with the known names."""
    if name not in _REGISTRY:
        raise UnknownWorkloadError(f"unknown workload {name!r}; known: {', '.join(names())}")
    workload = importlib.import_module(_REGISTRY[name]).WORKLOAD
    if workload.spec.name != name:
        raise ValueError(f"module {_REGISTRY[name]} defines {workload.spec.name!r}, not {name!r}")
    return workload
