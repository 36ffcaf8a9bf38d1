"""A trial's process gets one CPU core, so its steps cost the same whatever else runs on the
machine.

With XLA's default thread pool a trial spreads over every core, and any other process slows
it: measured on this project's 2-core machine, a busy loop beside a `mnist1d_cnn` trial made
each step 54% slower. Pinned to one core, the same busy loop on the
other core moved its step time by under 2% (`bench/repeatability.py` measures it end to end).
The core affinity is what confines the trial: XLA's CPU runtime keeps a pool of threads
whatever its flags say (jaxlib 0.10: 13 threads in a pinned process), and they all share the
one core. `TRIAL_XLA_FLAGS` turn off what XLA still lets one turn off (Eigen's own threading).
A trial then uses one core, which is how budgets are calibrated (`optarena calibrate` runs
its trials the same way).

`isolate` must run before JAX initializes its backend in the process (its first computation
or device query): XLA reads its flags once.
"""

from __future__ import annotations

import os

TRIAL_XLA_FLAGS = ("--xla_cpu_multi_thread_eigen=false",)
"""XLA flags that keep the CPU backend's Eigen kernels on their calling thread.

Each must be a real ``--`` flag: XLA stops reading ``XLA_FLAGS`` at the first word that is
not (the folklore ``intra_op_parallelism_threads=1`` silently dropped every flag after it,
``--xla_force_host_platform_device_count`` included)."""


def trial_core() -> int | None:
    """The core trials run on: the last one this process may use (None where unknown)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def spare_core(core: int | None) -> int | None:
    """A core this process may use other than ``core`` (the lowest), or None where there is
    none: where a trial's next steps (tracing, compiling) can run while ``core`` measures."""
    if core is None or not hasattr(os, "sched_getaffinity"):
        return None
    others = sorted(os.sched_getaffinity(0) - {core})
    return others[0] if others else None


def xla_flags(existing: str) -> str:
    """``existing`` XLA flags with `TRIAL_XLA_FLAGS` added (each at most once)."""
    flags = existing.split()
    return " ".join([*flags, *(flag for flag in TRIAL_XLA_FLAGS if flag not in flags)])


def isolate(core: int | None = None) -> None:
    """Pin this process to ``core`` (default `trial_core`) and add `TRIAL_XLA_FLAGS`."""
    os.environ["XLA_FLAGS"] = xla_flags(os.environ.get("XLA_FLAGS", ""))
    core = trial_core() if core is None else core
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
