"""Shared fixtures: one prepared-data directory for the whole run and a controllable fake clock;
XLA flags as in trial processes, a core of its own for each pytest-xdist worker, and one
persistent XLA compilation cache for the whole run."""

from __future__ import annotations

import os
import shutil
import tempfile

import jax
import postgres
import pytest

from optarena.harness import isolation
from optarena.workloads import data


def pytest_configure(config: pytest.Config) -> None:
    """Trials in this process compute with the XLA flags trial processes get (Eigen's threading
    can change results in the last bits, and calibration records are exact), on one core. Under
    pytest-xdist each worker runs on a core of its own, as a one-core machine: its trial processes
    run there too (`isolation.trial_core` is the last core a process may use), so one worker's
    load never lands on another's trials."""
    os.environ["XLA_FLAGS"] = isolation.xla_flags(os.environ.get("XLA_FLAGS", ""))
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[int(worker.removeprefix("gw")) % len(cores)]})
    elif worker is None and not getattr(config.option, "numprocesses", None):
        # Tests run in this process, which computes like a trial process: on one core (XLA's
        # CPU runtime splits work by the cores it may use, and the last bits with it).
        isolation.isolate()
    _share_compiled_programs(config)
    _share_prepared_data(config)


COMPILATION_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


def _share_compiled_programs(config: pytest.Config) -> None:
    """One persistent XLA compilation cache for the run: the controller makes it, and the
    pytest-xdist workers and every trial process they start inherit it through the environment.

    Hundreds of tests compile the same few train steps in fresh processes; loading an
    executable instead of compiling it again changes no result (the cache key is the program,
    its compile options and the jax version), only how long the suite takes. A cache the
    caller set is used as it is and kept.
    """
    folder = os.environ.get(COMPILATION_CACHE_ENV)
    if not folder:
        folder = tempfile.mkdtemp(prefix="optarena-test-xla-cache-")
        os.environ[COMPILATION_CACHE_ENV] = folder
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    # This process imported jax before reading the environment (through optarena.workloads).
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update(
        "jax_persistent_cache_min_compile_time_secs",
        float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")),
    )
    jax.config.update(
        "jax_persistent_cache_min_entry_size_bytes",
        int(os.environ.get("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")),
    )


class FakeClock:
    """A deterministic clock for the runner's ``clock=`` argument.

    Every call returns the current value and then moves it forward by ``tick`` seconds, so
    the runner sees time pass between any two reads; a test can also move it forward by
    hand with `advance` (e.g. from an ``on_eval`` callback, to simulate a slow evaluation).
    The default tick is a power of two so that sums and differences of readings are exact.
    """

    def __init__(self, tick: float = 2.0**-10, start: float = 0.0):
        if tick < 0:
            raise ValueError(f"tick must be non-negative, got {tick=}")
        self.tick = tick
        self.now = start
        self.calls = 0

    def __call__(self) -> float:
        value = self.now
        self.now += self.tick
        self.calls += 1
        return value

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` without counting a call."""
        if seconds < 0:
            raise ValueError(f"a clock never goes back, got {seconds=}")
        self.now += seconds


RUN_DATA_ENV = "OPTARENA_TEST_RUN_DATA_DIR"


def _share_prepared_data(config: pytest.Config) -> None:
    """One fresh data directory for the run: the controller makes it and the pytest-xdist
    workers inherit it through the environment, so each dataset is prepared once per run, not
    once per worker (`workloads.data` lets one process prepare while the others wait)."""
    if os.environ.get(RUN_DATA_ENV):
        return
    folder = tempfile.mkdtemp(prefix="optarena-test-data-")
    os.environ[RUN_DATA_ENV] = folder
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.fixture(scope="session")
def data_dir():
    """The run's data directory (`_share_prepared_data`), also exported as
    ``$OPTARENA_DATA_DIR``.

    The environment variable is what subprocesses (and `workloads.data.default_data_dir`) see;
    its previous value is restored when the session ends.
    """
    path = os.environ[RUN_DATA_ENV]
    previous = os.environ.get(data.DATA_DIR_ENV)
    os.environ[data.DATA_DIR_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(data.DATA_DIR_ENV, None)
        else:
            os.environ[data.DATA_DIR_ENV] = previous


@pytest.fixture(scope="session")
def make_clock():
    """A factory of `FakeClock`: ``make_clock(tick=..., start=...)``."""
    return FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    """A `FakeClock` starting at 0 that advances by 2**-10 s per call."""
    return FakeClock()


# ---------------------------------------------------- stores on SQLite and PostgreSQL


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server (`postgres.Server`) for this session, or this
    pytest-xdist worker, started at first use and stopped at the end; tests that use it are
    skipped where the machine has no server binaries (``.ci/postgres`` installs them)."""
    reason = postgres.missing()
    if reason is not None:
        pytest.skip(reason)
    server = postgres.Server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """The SQLAlchemy URL of a new, empty database on the session's PostgreSQL server."""
    return postgres_server.database(request.node.originalname)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """The URL of a new, empty store: a SQLite file not created yet, or a new database on the
    session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")
