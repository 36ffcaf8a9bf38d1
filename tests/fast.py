"""Programs for tests that check what a computation gives (finite, shaped, equal to a
reference within a tolerance), never how fast it runs or its last bits: compiled at
`runner.FAST_COMPILE`, and a workload's init as trials compile it."""

from __future__ import annotations

import jax

from optarena.harness import runner


def fast_jit(fun, **kwargs):
    """``jax.jit(fun, **kwargs)`` compiled with `runner.FAST_COMPILE`."""
    return jax.jit(fun, compiler_options=runner.FAST_COMPILE, **kwargs)


def init(workload, key: jax.Array):
    """``workload.init(key)``, compiled as a trial compiles it (`runner.INIT_COMPILER_OPTIONS`):
    the same parameters as XLA's default build, in a fraction of the compile time."""
    return jax.jit(workload.init, compiler_options=runner.INIT_COMPILER_OPTIONS)(key)
