"""A submission's optimizer for one trial as serialized XLA programs: plain data, no code.

The tracing process (`optarena.harness.tracing`) is the only one that runs a submission's
Python code. It exports what the trial needs as StableHLO programs (`jax.export`) over flat
lists of arrays, because optax's state classes are not registered for serialization while
their leaves are:

- ``init(param_leaves) -> state_leaves``;
- ``update(grad_leaves, state_leaves, param_leaves, loss) -> (update_leaves, state_leaves)``;
- optionally ``eval_params(state_leaves, param_leaves) -> param_leaves``.

The measuring process loads them with `load`, which needs no submission code: it builds the
train step around the deserialized ``update`` with the workload's own loss. jax.export refuses
host callbacks by default, so an exported program cannot call back into Python. `load` checks
what it gets, since the tracing process could have been changed by the code it ran: the
programs must fit the model's parameters, and together hold no more constant values than the
model's largest parameter array (data read while tracing, the validation split say, would have
to be baked in as constants; an update rule needs scalars and small tables, not arrays of data).
This is a cheap check, not a proof: data smaller than that limit would pass it.

On the wire (`to_frames` / `from_frames`) a program is a JSON header and raw byte strings,
never a pickle: the tracing process runs untrusted code, and unpickling what it sends would run
code in the receiver.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from optarena.errors import UserError

MAX_PROGRAM_BYTES = 256 * 2**20
"""The largest serialized program accepted from a tracing process."""

_CONSTANT = re.compile(r'stablehlo\.constant dense<(?:"0x|\[)[^>]*> : tensor<((?:\d+x)*)[a-z]')
"""A constant that is not one value repeated (a splat), and the dims of its shape."""


class SubmissionFailure(UserError, RuntimeError):
    """A submission's own code failed, or produced something a trial cannot run: its factory,
    a hook, its exported programs."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerProgram:
    """What a trial runs of its submission: the batch size it chose and its exported programs.

    Attributes:
      batch_size: the global batch size (the submission's ``batch_size`` hook, or the spec's).
      init: serialized ``jax.export`` program initializing the optimizer state.
      update: serialized program computing updates and the next state.
      eval_params: serialized program giving the parameters to evaluate, or ``None``.
    """

    batch_size: int
    init: bytes
    update: bytes
    eval_params: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise SubmissionFailure(f"batch size must be an int, got {self.batch_size!r}")
        if self.batch_size <= 0:
            raise SubmissionFailure(f"batch size must be positive, got {self.batch_size}")
        for name in ("init", "update", "eval_params"):
            value = getattr(self, name)
            if value is None and name == "eval_params":
                continue
            if not isinstance(value, bytes) or not 0 < len(value) <= MAX_PROGRAM_BYTES:
                raise SubmissionFailure(
                    f"the {name} program must be 1 to {MAX_PROGRAM_BYTES} bytes, "
                    f"got {type(value).__name__} of {len(value) if value else 0}"
                )

    def to_frames(self) -> list[bytes]:
        """The program as byte strings: a JSON header, then each program."""
        header = {"batch_size": self.batch_size, "eval_params": self.eval_params is not None}
        frames = [json.dumps(header).encode(), self.init, self.update]
        return frames if self.eval_params is None else [*frames, self.eval_params]

    @classmethod
    def from_frames(cls, frames: Sequence[bytes]) -> OptimizerProgram:
        """The program `to_frames` wrote; `SubmissionFailure` for anything else."""
        try:
            header = json.loads(frames[0])
            has_eval = header["eval_params"]
            expected = 4 if has_eval is True else 3 if has_eval is False else -1
            if len(frames) != expected or set(header) != {"batch_size", "eval_params"}:
                raise ValueError(f"{len(frames)} frames, header {sorted(header)}")
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise SubmissionFailure(f"malformed optimizer program: {error}") from error
        return cls(
            batch_size=header["batch_size"],
            init=bytes(frames[1]),
            update=bytes(frames[2]),
            eval_params=bytes(frames[3]) if has_eval else None,
        )


def constant_values(module: str) -> int:
    """How many values the non-splat constants of a StableHLO ``module`` hold together."""
    return sum(
        math.prod(int(d) for d in dims.split("x") if d) for dims in _CONSTANT.findall(module)
    )


def load(program: OptimizerProgram, params: Any) -> tuple[Any, Callable | None]:
    """The optax transformation and the ``eval_params`` function that ``program`` exports, for
    parameters shaped like ``params``.

    The optimizer state is the flat list of leaves that ``init`` returns. Raises
    `SubmissionFailure` when a program cannot be read or does not fit the parameters.
    """
    import jax
    import optax
    from jax import export

    try:
        init, update = export.deserialize(program.init), export.deserialize(program.update)
        averaged = export.deserialize(program.eval_params) if program.eval_params else None
    except Exception as error:
        raise SubmissionFailure(f"cannot read the optimizer's programs: {error}") from error
    leaves, treedef = jax.tree.flatten(params)
    shapes = [(tuple(x.shape), str(x.dtype)) for x in leaves]
    for name, exported, avals in (
        ("init", init, init.in_avals),
        ("update", update, update.in_avals[: len(leaves)]),
        ("update's output", update, update.out_avals[: len(leaves)]),
        ("eval_params's output", averaged, averaged.out_avals if averaged else None),
    ):
        if exported is None:
            continue
        got = [(tuple(a.shape), str(a.dtype)) for a in avals]
        if got != shapes:
            raise SubmissionFailure(
                f"the optimizer's {name} program does not fit the model's parameters"
            )

    size = max((math.prod(x.shape) for x in leaves), default=0)
    baked = sum(
        constant_values(exported.mlir_module())
        for exported in (init, update, averaged)
        if exported is not None
    )
    if baked > size:
        raise SubmissionFailure(
            f"the optimizer's programs hold {baked} constant values, more than the model's "
            f"largest parameter array ({size}): data read while tracing?"
        )

    def init_fn(params):
        return list(init.call(jax.tree.leaves(params)))

    def update_fn(grads, state, params=None, **extra):
        value = extra.get("value")
        flat_updates, new_state = update.call(
            jax.tree.leaves(grads), list(state), jax.tree.leaves(params), value
        )
        return jax.tree.unflatten(treedef, flat_updates), list(new_state)

    def eval_params_fn(state, params):
        return jax.tree.unflatten(treedef, averaged.call(list(state), jax.tree.leaves(params)))

    transform = optax.GradientTransformationExtraArgs(init_fn, update_fn)
    return transform, eval_params_fn if averaged is not None else None
