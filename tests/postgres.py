"""A throwaway PostgreSQL server for the tests, from the machine's own server binaries.

`Server.start` runs ``initdb`` into a fresh folder under ``/tmp`` and starts the
server there with ``pg_ctl``, listening on a Unix socket in that folder only (no TCP port,
so pytest-xdist workers, each with a server of its own, never collide); `Server.database`
creates an empty database and returns its SQLAlchemy URL. PostgreSQL refuses to run as root:
as root, the server runs as the ``postgres`` user that Debian's package creates.

The binaries come from Debian's ``postgresql`` package (``.ci/postgres`` installs it in CI);
`missing` says why no server can be started here, for the tests to skip with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import itertools
import math
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

SERVER_USER = "postgres"
"""The unprivileged user that runs the server when the tests run as root."""

SKIP_REASON = "no PostgreSQL server binaries (initdb, pg_ctl): run .ci/postgres to install them"


def _version(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path))


def find_bin_dir() -> Path | None:
    """The folder of the newest ``initdb`` and ``pg_ctl``: Debian's, else those on ``PATH``."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    candidates = [Path(path).parent for path in reversed(debian)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "pg_ctl").exists():
            return folder
    return None


def missing() -> str | None:
    """Why no server can be started here (None when one can)."""
    if find_bin_dir() is None:
        return SKIP_REASON
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "no psycopg (PostgreSQL driver): pip install -e '.[test]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as"
    return None


@dataclasses.dataclass
class Server:
    """One running server; `stop` ends it and removes its folder."""

    folder: Path
    bin_dir: Path
    start_sec: float
    """Seconds that initdb and the start took."""
    _names: itertools.count = dataclasses.field(default_factory=itertools.count)

    @classmethod
    def start(cls) -> Server:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError(SKIP_REASON)
        began = time.perf_counter()
        # A short path of its own, in /tmp (which the server's user can reach, whatever
        # $TMPDIR says): a Unix socket's path is limited to about 100 characters.
        folder = Path(tempfile.mkdtemp(prefix="optarena-pg-", dir="/tmp"))
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(folder, user.pw_uid, user.pw_gid)
        server = cls(folder=folder, bin_dir=bin_dir, start_sec=math.nan)
        try:
            server._run(
                "initdb",
                "--pgdata",
                str(folder / "data"),
                "--username",
                SERVER_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            )
            # Durability off (the data is thrown away), and a zone other than UTC for the
            # sessions, which the store must not depend on.
            options = (
                f"-k {folder} -c listen_addresses='' -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c timezone=Asia/Kolkata"
            )
            server._run(
                "pg_ctl",
                "start",
                "--pgdata",
                str(folder / "data"),
                "--log",
                str(folder / "server.log"),
                "--wait",
                "--timeout",
                "60",
                "-o",
                options,
            )
        except BaseException:
            server.stop()
            raise
        server.start_sec = time.perf_counter() - began
        return server

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True)
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr}{tail}")

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg 3, over the socket)."""
        return f"postgresql+psycopg://{SERVER_USER}@/{database}?host={self.folder}"

    def database(self, prefix: str = "test") -> str:
        """A new, empty database (a name not used before on this server): its URL."""
        import psycopg

        name = f"{re.sub(r'[^a-z0-9_]', '_', prefix.lower())[:40]}_{next(self._names)}"
        with psycopg.connect(host=str(self.folder), user=SERVER_USER, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and remove its folder."""
        if (self.folder / "data" / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._run(
                    "pg_ctl", "stop", "--pgdata", str(self.folder / "data"), "-m", "immediate"
                )
        shutil.rmtree(self.folder, ignore_errors=True)
