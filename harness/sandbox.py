"""Short-lived processes that run a submission's code and send back only byte strings.

A submission's code (its import, hooks and factory) runs only in such a process: describing a
submission for planning (`optarena.harness.describing`) and tracing its optimizer for a trial
(`optarena.harness.tracing`). The process is forked from a fork server that has imported the
harness, never a submission, so it starts in a fraction of a second; it runs on one core; it
gets no ``OPTARENA_*`` variables and a working directory of its own; it dies with its parent;
and it answers in byte strings, never a pickle, since unpickling what it sends would run its
code in the receiver. Whatever it does to itself (``sys.exit``, ``os._exit``, a crash, a
hang, patching the harness) ends with it: `call` turns it into a `SandboxFailure`.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum

from optarena.errors import UserError
from optarena.harness import isolation
from optarena.records import TrialStatus

MAX_FRAMES = 8
MAX_FRAME_BYTES = 256 * 2**20
MAX_MESSAGE_CHARS = 500

PRELOAD = (
    "optarena.harness.runner",
    "optarena.harness.tracing",
    "optarena.submissions.loader",
    "optarena.workloads.registry",
    "tensorflow_datasets",
)
"""Modules the fork server imports once, so that each process starts without them (none is a
submission: the built-ins are imported only by the processes that need them)."""


class Reply(StrEnum):
    """What a sandboxed function's process answers, in its first frame."""

    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"
    """The function raised `Refused`: what it was asked for cannot be done (no such
    submission, say), which is the caller's error, not the submission's."""


class SandboxFailure(Exception):
    """A sandboxed call gave no answer: ``status`` is what a trial that needed it becomes."""

    def __init__(self, status: TrialStatus, message: str):
        super().__init__(message)
        self.status = status


class Refused(UserError, RuntimeError):
    """Raised by a sandboxed function, and then by `call`, when what it was asked for cannot
    be done; any other exception of the function is a `SandboxFailure`."""


def context() -> multiprocessing.context.BaseContext:
    """The fork-server context every harness process starts from."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


_STARTING = threading.Lock()
"""Held while a process starts: a benchmark starts them from two threads (a trial's, and the
lookahead's), and each swaps ``__main__``'s spec while it does."""


@contextlib.contextmanager
def caller_script_hidden() -> Iterator[None]:
    """Start processes without the caller's ``__main__``.

    A new multiprocessing process first re-imports the parent's main script, which is only
    safe for scripts guarded by ``if __name__ == "__main__"`` and impossible for code read from
    stdin or typed in a notebook. A harness process needs nothing from it (its target and
    arguments are importable from optarena), so while a child starts, ``__main__`` reads as a
    module named ``__main__``, which multiprocessing does not re-import.
    """
    with _STARTING:
        main = sys.modules["__main__"]
        saved = main.__dict__.get("__spec__")
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
        try:
            yield
        finally:
            main.__spec__ = saved


def die_with_parent(connection) -> None:
    """Kill this process as soon as the parent's end of ``connection`` closes.

    The parent never writes, so the only thing a read can see is the end of the connection,
    when the benchmark process exits or is killed: then no orphan goes on running.
    """

    def watch() -> None:
        with contextlib.suppress(OSError, EOFError):
            connection.poll(None)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent watchdog", daemon=True).start()


@contextlib.contextmanager
def child(target: Callable, args: tuple, name: str) -> Iterator[tuple]:
    """A started child process of `context` and this end of its connection (passed to
    ``target`` as its last argument); killed if still alive on the way out."""
    ctx = context()
    receiver, sender = ctx.Pipe(duplex=True)
    process = ctx.Process(target=target, args=(*args, sender), name=name)
    with caller_script_hidden():
        process.start()
    sender.close()  # the child holds the only other end: its death closes the connection
    try:
        yield process, receiver
    finally:
        receiver.close()
        if process.is_alive():
            process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


def died(exitcode: int | None, which: str) -> SandboxFailure:
    """How a process that ended without an answer failed."""
    if exitcode == -signal.SIGKILL:
        return SandboxFailure(
            TrialStatus.OOM,
            f"the {which} was killed by SIGKILL before returning a result "
            "(the kernel's out-of-memory killer, most likely)",
        )
    if exitcode is not None and exitcode < 0:
        return SandboxFailure(
            TrialStatus.ERROR, f"the {which} died of signal {signal.Signals(-exitcode).name}"
        )
    return SandboxFailure(
        TrialStatus.ERROR, f"the {which} exited with status {exitcode} without a result"
    )


def _one_line(error: BaseException) -> str:
    line = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    return line[:MAX_MESSAGE_CHARS]


def _forget_the_benchmark() -> None:
    """No ``OPTARENA_*`` variables, and a working directory of its own (a relative ``--db``
    lies in the benchmark's)."""
    for key in [key for key in os.environ if key.startswith("OPTARENA_")]:
        del os.environ[key]
    os.chdir(tempfile.mkdtemp(prefix="optarena-sandbox-"))


def _run(fn: Callable[..., Sequence[bytes]], args: tuple, core: int | None, connection) -> None:
    isolation.isolate(core)
    die_with_parent(connection)
    _forget_the_benchmark()
    try:
        reply, frames = Reply.DONE, list(fn(*args))
    except Refused as error:
        reply, frames = Reply.REFUSED, [str(error).encode()]
    except BaseException as error:  # SystemExit and KeyboardInterrupt are failures too
        reply, frames = Reply.FAILED, [_one_line(error).encode()]
    connection.send_bytes(json.dumps({"reply": reply, "frames": len(frames)}).encode())
    for frame in frames:
        connection.send_bytes(frame)
    connection.close()


def call(
    fn: Callable[..., Sequence[bytes]],
    args: tuple,
    *,
    limit_sec: float,
    what: str,
    core: int | None = None,
) -> list[bytes]:
    """``fn(*args)``'s byte strings, computed in a sandboxed process within ``limit_sec``.

    ``fn`` and ``args`` must be importable and picklable (they go to the process; only bytes
    come back). Raises `Refused` when ``fn`` raised it, and `SandboxFailure` for any
    other end: an exception (``SystemExit`` included), a death, a timeout, a malformed answer.
    ``what`` names the call in messages ("tracing the submission").
    """
    core = isolation.trial_core() if core is None else core
    deadline = time.monotonic() + limit_sec
    with child(_run, (fn, args, core), what) as (process, receiver):

        def frame(max_bytes: int) -> bytes:
            if not receiver.poll(max(0.0, deadline - time.monotonic())):
                process.kill()
                raise SandboxFailure(
                    TrialStatus.TIMEOUT, f"{what} gave no answer within {limit_sec:g} s; killed"
                )
            try:
                return receiver.recv_bytes(max_bytes)
            except EOFError:
                process.join()
                raise died(process.exitcode, f"process {what}") from None
            except OSError as error:  # longer than max_bytes
                raise SandboxFailure(
                    TrialStatus.ERROR, f"the process {what} sent too much: {error}"
                ) from None

        try:
            header = json.loads(frame(1024))
            reply, count = Reply(header["reply"]), int(header["frames"])
            if not 1 <= count <= MAX_FRAMES or set(header) != {"reply", "frames"}:
                raise ValueError(f"{count} frames")
        except (ValueError, KeyError, TypeError) as error:
            raise SandboxFailure(
                TrialStatus.ERROR, f"the process {what} sent a malformed answer: {error}"
            ) from None
        frames = [frame(MAX_FRAME_BYTES) for _ in range(count)]
    if reply is Reply.DONE:
        return frames
    message = frames[0].decode(errors="replace")[:MAX_MESSAGE_CHARS]
    if reply is Reply.REFUSED:
        raise Refused(message)
    raise SandboxFailure(TrialStatus.ERROR, message)
