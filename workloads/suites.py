"""Named suites: which registered workloads a benchmark run covers.

``quick`` is small enough for the README's main job and CI (NAdamW at its default point
reaches every target in seconds); ``cpu`` is every workload whose data is made here, held-out
variants included; ``real`` is the workloads on downloaded TFDS catalog datasets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from optarena.errors import UserError
from optarena.workloads import registry

QUICK = ("digits_mlp", "mnist1d_cnn")


def _by_offline(offline: bool) -> list[str]:
    return [name for name in registry.names() if registry.get(name).spec.offline is offline]


_SUITES: dict[str, Callable[[], list[str]]] = {
    "quick": lambda: list(QUICK),
    "cpu": lambda: _by_offline(True),
    "real": lambda: _by_offline(False),
}


class UnknownSuiteError(UserError, LookupError):
    """Raised for a suite name that is not defined, or workloads that are not in the suite."""


def names() -> list[str]:
    return sorted(_SUITES)


def workloads(suite: str) -> list[str]:
    """The workload names of ``suite``."""
    if suite not in _SUITES:
        raise UnknownSuiteError(f"unknown suite {suite!r}; known: {', '.join(names())}")
    return _SUITES[suite]()


def base_workloads(suite: str, only: Sequence[str] = ()) -> list[str]:
    """The base workloads of ``suite`` in suite order, or those of them named in ``only``.

    Raises `UnknownSuiteError` when ``only`` names anything that is not a base of the suite.
    """
    bases = [name for name in workloads(suite) if registry.get(name).spec.base is None]
    if not only:
        return bases
    unknown = [name for name in only if name not in bases]
    if unknown:
        raise UnknownSuiteError(
            f"workloads must be base workloads of suite {suite!r} ({', '.join(bases)}); "
            f"got {', '.join(unknown)}"
        )
    return [name for name in bases if name in only]
