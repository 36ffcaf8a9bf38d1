"""A trial's process gets one CPU core and a single-threaded XLA, so its steps cost the same
whatever else runs on the machine.

With XLA's default thread pool a trial spreads over every core, and any other process slows
it: measured on this project's 2-core machine, a busy loop beside a `mnist1d_cnn` trial made
each step 54% slower. Pinned to one core with XLA single-threaded, the same busy loop on the
other core moved its step time by under 2% (`bench/repeatability.py` measures it end to end).
A trial then uses one core, which is how budgets are calibrated (`optarena calibrate` runs
its trials the same way).

`isolate` must run before JAX initializes its backend in the process (its first computation
or device query): XLA reads its flags once.
"""

from __future__ import annotations

import os

TRIAL_XLA_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")
"""XLA flags that keep the CPU backend on one thread."""


def trial_core() -> int | None:
    """The core trials run on: the last one this process may use (None where unknown)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def xla_flags(existing: str) -> str:
    """``existing`` XLA flags with the single-thread ones added (each at most once)."""
    flags = existing.split()
    return " ".join([*flags, *(flag for flag in TRIAL_XLA_FLAGS if flag not in flags)])


def isolate(core: int | None = None) -> None:
    """Pin this process to ``core`` (default `trial_core`) and make XLA single-threaded."""
    os.environ["XLA_FLAGS"] = xla_flags(os.environ.get("XLA_FLAGS", ""))
    core = trial_core() if core is None else core
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
