"""Run one trial by the timing rules.

Timed: every train step (data selection, gradient, optimizer update) and ``eval_params``, in
segments that end at evaluation boundaries. The clock is read only after
``jax.block_until_ready``, at those boundaries; the steps in between are dispatched
asynchronously, so the clock covers every step without a sync per step.

Scored: a trial's scored seconds after ``n`` steps are ``n`` times its **step time**, the median
over its segments so far of each segment's seconds per step (`StepTimer`), the first segment
left out once there is another: it runs the compiled step for the first time (buffers
allocated, caches cold), measured at about 5 times the later segments on `digits_mlp`, and
would otherwise set the step time of a trial that reaches its target after two segments. An
even count takes the lower of the two middle values. A busy machine slows some segments, not
the median, and the median of a trial's own segments is the cost of its steps, slowest parts
(a preconditioner refresh inside every segment) included. The raw
wall-clock seconds are kept beside it (`TrialResult.wall_sec`, `EvalPoint.wall_sec`, and
`wall_time_to_target_sec`, which is AlgoPerf's time: compile plus segments).

Compiled, not scored: the XLA compile of the train step is recorded (``compile_sec``) and
limited (``compile_limit_sec``; past it the trial is a ``timeout``), but not scored: on these
budgets it would be most of the time and rank update rules by how fast XLA compiles them.

Untimed: data preparation, model and optimizer init, evaluations, callbacks.

A trial stops at the first evaluation that meets the validation target within the budget (in
scored seconds), when the budget (or ``max_steps``) is used up, or when the loss is no longer
finite. Inside a segment the host clock is compared with the remaining budget times
`WALL_ALLOWANCE`, so that a pathologically slow step stops dispatching at once while load up
to that factor never cuts a segment short.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import serialize_executable
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from optarena.harness import optimizer_program, tracing
from optarena.harness.optimizer_program import OptimizerProgram, SubmissionFailure
from optarena.records import EvalPoint, TrialConfig, TrialResult, TrialStatus
from optarena.submissions.api import Submission
from optarena.workloads import data
from optarena.workloads.base import Arrays, Workload

Clock = Callable[[], float]
DATA_AXIS = "data"
COMPILE_LIMIT_SEC = 120.0
"""The longest a train step may take to compile before the trial is a ``timeout``."""
WALL_ALLOWANCE = 4.0
"""How many times its remaining scored budget a segment may take in wall-clock seconds."""
FAST_COMPILE: Mapping[str, Any] = {"xla_backend_optimization_level": 2}
"""XLA compiler options for programs that are run to see what they compute, never how fast or
to the last bit: one LLVM optimization level below XLA's default compiles `shapes_unet`'s
first trial (init, train step, evaluation) in 6 s instead of 23 s, and its steps run about as
fast, but round differently. For smoke trials (tests), never for a measured one."""
INIT_COMPILER_OPTIONS: Mapping[str, Any] = FAST_COMPILE
"""XLA compiler options for a workload's ``init`` in every trial: it runs once per trial,
untimed, and at XLA's default LLVM level it compiled in 2.3 s to 12.3 s (`shapes_unet`) per
registered base, against 0.9 s to 2.7 s with these, with bit-identical parameters on every base
(`tests/test_runner.py` checks three model families)."""
MAX_COMPILED = 16
"""How many compiled programs a measuring process keeps for later trials."""


class StepTimer:
    """A trial's step time: the (lower) median over its segments of wall seconds per step, the
    first segment (the compiled step's first run) left out once there is another."""

    def __init__(self) -> None:
        self._per_step: list[float] = []

    def add(self, wall_sec: float, steps: int) -> None:
        if steps > 0:
            self._per_step.append(wall_sec / steps)

    @property
    def step_sec(self) -> float:
        """The step time so far (0 before any segment)."""
        if not self._per_step:
            return 0.0
        return statistics.median_low(self._per_step[1:] or self._per_step)

    def scored_sec(self, steps: int) -> float:
        """The scored seconds of ``steps`` steps."""
        return steps * self.step_sec


class TrainState(NamedTuple):
    """Everything the jitted train step carries from one step to the next."""

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    last_loss: jax.Array
    all_finite: jax.Array


def make_mesh(devices: list | None = None) -> Mesh:
    """A one-axis mesh over ``devices`` (default: all local devices) for data parallelism."""
    devices = jax.local_devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def make_train_step(workload: Workload, tx: optax.GradientTransformationExtraArgs):
    """The pure train step: loss and gradient, optimizer update, parameter update."""

    def train_step(state: TrainState, batch: dict, rng: jax.Array) -> TrainState:
        step_rng = jax.random.fold_in(rng, state.step)

        def loss_fn(params):
            return workload.loss(params, state.model_state, batch, step_rng, train=True)

        (loss, (model_state, _)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
        params = optax.apply_updates(state.params, updates)
        return TrainState(
            step=state.step + 1,
            params=params,
            model_state=model_state,
            opt_state=opt_state,
            last_loss=loss,
            all_finite=state.all_finite & jnp.isfinite(loss),
        )

    return train_step


def _pad_to_multiple(batch_size: int, multiple: int) -> int:
    return -(-batch_size // multiple) * multiple


class _Evaluator:
    """Evaluates params on fixed, device-resident batches of one split (untimed)."""

    def __init__(
        self,
        workload: Workload,
        arrays: Arrays,
        batch_size: int,
        mesh: Mesh,
        compiler_options: Mapping[str, Any] | None = None,
    ):
        replicated = NamedSharding(mesh, PartitionSpec())
        sharded = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
        batch_size = _pad_to_multiple(batch_size, mesh.size)
        self._batches = jax.block_until_ready(
            [jax.device_put(b, sharded) for b in data.eval_batches(arrays, batch_size)]
        )
        self._sums = jax.jit(
            workload.eval_sums,
            in_shardings=(replicated, replicated, sharded),
            compiler_options=compiler_options,
        )
        self._metrics = workload.metrics

    def __call__(self, params, model_state) -> dict[str, float]:
        partial = [self._sums(params, model_state, batch) for batch in self._batches]
        totals = jax.tree.map(lambda *xs: float(np.sum(np.asarray(jax.device_get(xs)))), *partial)
        return {k: float(v) for k, v in self._metrics(totals).items()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompiledAhead:
    """A program of a trial compiled ahead of it by another measuring-side process
    (`precompile`): the key `WorkloadCache` files it under, the serialized executable, and the
    seconds its compile took there."""

    key: str
    executable: bytes
    compile_sec: float


class WorkloadSetup(NamedTuple):
    """What a trial needs of its workload that no optimizer changes."""

    train_arrays: Arrays
    evaluators: dict[str, _Evaluator]
    init: Callable[[jax.Array], tuple[Any, Any]]


class WorkloadCache:
    """What a measuring process keeps between trials: the `WorkloadSetup` of each workload it
    has run (the data read once, the evaluation and the model's init compiled once), and the
    last `MAX_COMPILED` compiled programs, keyed by their lowered text, so that trials whose
    programs are the same (the default point over seeds, say) compile once (all untimed).
    Every program it compiles gets ``compiler_options`` (`FAST_COMPILE` for smoke trials).
    Programs compiled ahead elsewhere (`CompiledAhead`, `add_ahead`) are loaded instead of
    compiled when a lowered program has their key."""

    def __init__(self, compiler_options: Mapping[str, Any] | None = None) -> None:
        self.compiler_options = dict(compiler_options or {})
        self._setups: dict[tuple, WorkloadSetup] = {}
        self._compiled: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._ahead: dict[str, CompiledAhead] = {}
        self.loaded_ahead = 0
        """How many programs compiled ahead were loaded instead of compiled here."""

    @property
    def compiled_programs(self) -> int:
        """How many compiled programs are kept."""
        return len(self._compiled)

    def key(self, lowered: jax.stages.Lowered, mesh: Mesh) -> str:
        """The key ``lowered`` is compiled under: its text, the devices and compiler options."""
        text = lowered.as_text(debug_info=False)
        devices = ",".join(str(d.id) for d in mesh.devices.flat)
        options = json.dumps(self.compiler_options, sort_keys=True)
        return hashlib.sha256(f"{devices}\n{options}\n{text}".encode()).hexdigest()

    def add_ahead(self, programs: Iterable[CompiledAhead]) -> None:
        """Keep ``programs`` (compiled ahead for the next trial) in place of any kept before."""
        self._ahead = {program.key: program for program in programs}

    def compile(self, lowered: jax.stages.Lowered, mesh: Mesh) -> jax.stages.Compiled:
        """``lowered``, compiled for ``mesh``, or the compiled program of an identical one seen
        before on the same devices."""
        return self.compile_timed(lowered, mesh)[0]

    def compile_timed(
        self, lowered: jax.stages.Lowered, mesh: Mesh
    ) -> tuple[jax.stages.Compiled, float]:
        """`compile`, and the compile seconds spent elsewhere on what it returns (those of a
        program compiled ahead, 0 otherwise)."""
        key = self.key(lowered, mesh)
        elsewhere = 0.0
        if key in self._compiled:
            self._compiled.move_to_end(key)
        else:
            ahead = self._ahead.pop(key, None)
            if ahead is not None:
                self._compiled[key] = serialize_executable.deserialize_and_load(
                    ahead.executable, lowered.in_tree, lowered.out_tree
                )
                elsewhere = ahead.compile_sec
                self.loaded_ahead += 1
            else:
                self._compiled[key] = lowered.compile(self.compiler_options or None)
            if len(self._compiled) > MAX_COMPILED:
                self._compiled.popitem(last=False)
        return self._compiled[key], elsewhere

    def compile_ahead(self, lowered: jax.stages.Lowered, mesh: Mesh) -> CompiledAhead:
        """Compile ``lowered`` here for a `WorkloadCache` in another process."""
        start = time.perf_counter()
        compiled = lowered.compile(self.compiler_options or None)
        seconds = time.perf_counter() - start
        executable, _, _ = serialize_executable.serialize(compiled)
        return CompiledAhead(
            key=self.key(lowered, mesh), executable=executable, compile_sec=seconds
        )

    def get(self, workload: Workload, data_dir: str, mesh: Mesh) -> WorkloadSetup:
        key = (workload.spec.sha256(), data_dir, tuple(d.id for d in mesh.devices.flat))
        if key not in self._setups:
            replicated = NamedSharding(mesh, PartitionSpec())
            spec = workload.spec
            self._setups[key] = WorkloadSetup(
                train_arrays=workload.load_split("train", data_dir),
                evaluators={
                    split: _Evaluator(
                        workload,
                        workload.load_split(split, data_dir),
                        spec.eval_batch_size,
                        mesh,
                        self.compiler_options or None,
                    )
                    for split in ("validation", "test")
                },
                init=jax.jit(
                    workload.init,
                    out_shardings=replicated,
                    compiler_options={**INIT_COMPILER_OPTIONS, **self.compiler_options},
                ),
            )
        return self._setups[key]


def _flops(compiled) -> float | None:
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # not every backend implements cost analysis
        return None
    if isinstance(analysis, list):
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return float(flops) if flops is not None and flops >= 0 else None


def _batch_shapes(train_arrays: Arrays, batch_size: int) -> dict[str, jax.ShapeDtypeStruct]:
    return {
        key: jax.ShapeDtypeStruct((batch_size, *value.shape[1:]), value.dtype)
        for key, value in train_arrays.items()
    }


def _lower_init(tx: Any, params: Any, replicated: NamedSharding) -> jax.stages.Lowered:
    return jax.jit(tx.init, out_shardings=replicated).lower(params)


def _lower_train_step(
    workload: Workload, tx: Any, state: TrainState, batch_shapes: Any, step_rng: Any, mesh: Mesh
) -> jax.stages.Lowered:
    replicated = NamedSharding(mesh, PartitionSpec())
    sharded = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    return jax.jit(
        make_train_step(workload, tx),
        in_shardings=(replicated, sharded, replicated),
        out_shardings=replicated,
        donate_argnums=0,
    ).lower(state, batch_shapes, step_rng)


def _lower_eval_params(eval_params: Callable, opt_state: Any, params: Any) -> jax.stages.Lowered:
    return jax.jit(eval_params).lower(opt_state, params)


def _placed(tree: Any, sharding: NamedSharding) -> Any:
    """Shapes and dtypes of ``tree``, placed as ``sharding`` places arrays."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(
            x.shape, x.dtype, sharding=sharding, weak_type=getattr(x, "weak_type", False)
        ),
        tree,
    )


def precompile(
    workload: Workload,
    program: OptimizerProgram,
    config: TrialConfig,
    *,
    data_dir: str,
    cache: WorkloadCache,
    mesh: Mesh | None = None,
) -> list[CompiledAhead]:
    """Compile a trial's optimizer init, train step and ``eval_params`` ahead of its
    `run_program`, from shapes alone, lowered exactly as `run_program` lowers them, so that a
    `WorkloadCache` given them (`WorkloadCache.add_ahead`) loads instead of compiling.

    A measuring-side step: no submission code runs here, only ``program``'s XLA programs are
    compiled. Raises what loading or lowering them raises."""
    mesh = make_mesh() if mesh is None else mesh
    replicated = NamedSharding(mesh, PartitionSpec())
    setup = cache.get(workload, data_dir, mesh)
    init_rng, step_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    params, model_state = _placed(jax.eval_shape(setup.init, init_rng), replicated)
    tx, eval_params = optimizer_program.load(program, params)
    opt_state = _placed(jax.eval_shape(tx.init, params), replicated)
    state = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated),
        params=params,
        model_state=model_state,
        opt_state=opt_state,
        last_loss=jax.ShapeDtypeStruct((), jnp.float32, sharding=replicated),
        all_finite=jax.ShapeDtypeStruct((), jnp.bool_, sharding=replicated),
    )
    lowered = [
        _lower_init(tx, params, replicated),
        _lower_train_step(
            workload,
            tx,
            state,
            _batch_shapes(setup.train_arrays, program.batch_size),
            _placed(step_rng, replicated),
            mesh,
        ),
    ]
    if eval_params is not None:
        lowered.append(_lower_eval_params(eval_params, opt_state, params))
    return [cache.compile_ahead(each, mesh) for each in lowered]


def run_trial(
    workload: Workload,
    submission: Submission,
    config: TrialConfig,
    *,
    data_dir: str,
    mesh: Mesh | None = None,
    **options: Any,
) -> TrialResult:
    """Trace ``submission`` in this process, then `run_program` its optimizer.

    For tests, calibration and ``optarena run``; a benchmark traces in a process of its own
    (`optarena.harness.executors`). ``options`` are `run_program`'s.
    """
    mesh = make_mesh() if mesh is None else mesh
    program = tracing.trace(workload, submission, config.hparams, config.budget_sec, mesh.size)
    return run_program(workload, program, config, data_dir=data_dir, mesh=mesh, **options)


def run_program(
    workload: Workload,
    program: OptimizerProgram,
    config: TrialConfig,
    *,
    data_dir: str,
    mesh: Mesh | None = None,
    clock: Clock = time.perf_counter,
    on_eval: Callable[[EvalPoint], None] | None = None,
    compile_limit_sec: float = COMPILE_LIMIT_SEC,
    cache: WorkloadCache | None = None,
) -> TrialResult:
    """Train ``workload`` with an exported optimizer once and time it by the rules (see the
    module docstring). No submission code runs here: ``program`` is plain data. A ``cache``
    kept across trials saves loading the data and compiling the evaluation and the model's
    init again for each trial of the same workload."""
    spec = workload.spec
    mesh = make_mesh() if mesh is None else mesh
    replicated = NamedSharding(mesh, PartitionSpec())

    # Untimed setup: data, model, optimizer.
    batch_size = program.batch_size
    if batch_size % mesh.size:
        raise SubmissionFailure(
            f"batch size {batch_size} is not divisible by the {mesh.size} device(s)"
        )
    cache = cache or WorkloadCache()
    setup = cache.get(workload, data_dir, mesh)
    train_arrays, evaluators = setup.train_arrays, setup.evaluators
    rng = jax.random.PRNGKey(config.seed)
    init_rng, step_rng = jax.random.split(rng)
    params, model_state = setup.init(init_rng)
    tx, eval_params = optimizer_program.load(program, params)
    try:
        opt_state = cache.compile(_lower_init(tx, params, replicated), mesh)(params)
    except Exception as error:
        raise SubmissionFailure(f"the optimizer's init program failed: {error!r}") from error
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=opt_state,
        last_loss=jnp.zeros((), jnp.float32),
        all_finite=jnp.ones((), jnp.bool_),
    )
    # Init and transfers run asynchronously: finish them before the clock starts.
    state, step_rng = jax.block_until_ready(jax.device_put((state, step_rng), replicated))
    batches: Iterator[Arrays] = data.train_batches(train_arrays, batch_size, config.seed)

    # Compiled, limited, not scored (here, or ahead by `precompile`).
    start = clock()
    try:
        compiled, compile_sec = cache.compile_timed(
            _lower_train_step(
                workload, tx, state, _batch_shapes(train_arrays, batch_size), step_rng, mesh
            ),
            mesh,
        )
        if eval_params is not None:
            eval_params, ahead_sec = cache.compile_timed(
                _lower_eval_params(eval_params, opt_state, params), mesh
            )
            compile_sec += ahead_sec
    except Exception as error:
        raise SubmissionFailure(
            "compiling the train step with the optimizer's programs failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    compile_sec += clock() - start
    if compile_sec > compile_limit_sec:
        return TrialResult.failed(
            TrialStatus.TIMEOUT,
            f"compiling the train step took {compile_sec:.1f} s, over the limit of "
            f"{compile_limit_sec:g} s",
            compile_sec=compile_sec,
        )

    # Timed: steps in segments that end at evaluation boundaries.
    timer = StepTimer()
    wall_sec = 0.0
    points: list[EvalPoint] = []
    step = 0
    status: TrialStatus | None = None
    reason = ""
    to_target: tuple[float, float, int, int] | None = None
    max_steps = config.max_steps or math.inf
    while status is None:
        segment_end = min(step + spec.eval_every_steps, max_steps)
        segment_start, segment_first = clock(), step
        left = config.budget_sec - timer.scored_sec(step)
        deadline = segment_start + WALL_ALLOWANCE * left
        while step < segment_end:
            state = compiled(state, next(batches), step_rng)
            step += 1
            if clock() >= deadline:
                break
        jax.block_until_ready(state)
        eval_params_now = state.params
        if eval_params is not None:
            try:
                eval_params_now = jax.block_until_ready(eval_params(state.opt_state, state.params))
            except Exception as error:
                raise SubmissionFailure(
                    f"the eval_params program raised {type(error).__name__}: {error}"
                ) from error
        segment_sec = clock() - segment_start
        wall_sec += segment_sec
        timer.add(segment_sec, step - segment_first)
        scored_sec = timer.scored_sec(step)

        # Untimed: evaluation and bookkeeping.
        if not bool(state.all_finite):
            status, reason = TrialStatus.DIVERGED, f"non-finite training loss by step {step}"
            break
        metrics = {
            split: ev(eval_params_now, state.model_state) for split, ev in evaluators.items()
        }
        point = EvalPoint(
            step=step,
            examples=step * batch_size,
            timed_sec=scored_sec,
            wall_sec=wall_sec,
            train_loss=float(state.last_loss),
            validation=metrics["validation"],
            test=metrics["test"],
        )
        points.append(point)
        if on_eval is not None:
            on_eval(point)
        value = point.validation[spec.metric]
        if not all(math.isfinite(v) for v in point.validation.values()):
            status, reason = TrialStatus.DIVERGED, f"non-finite validation metrics at step {step}"
        elif scored_sec <= config.budget_sec and spec.reached(value):
            status, reason = (
                TrialStatus.REACHED,
                f"validation {spec.metric} {value:.6g} at step {step}",
            )
            to_target = (scored_sec, compile_sec + wall_sec, step, point.examples)
        elif scored_sec >= config.budget_sec:
            status, reason = TrialStatus.NOT_REACHED, f"budget of {config.budget_sec:g} s used up"
        elif step >= max_steps:
            status, reason = TrialStatus.NOT_REACHED, f"max_steps {config.max_steps} reached"

    return TrialResult(
        status=status,
        reason=reason,
        time_to_target_sec=to_target[0] if to_target else math.inf,
        wall_time_to_target_sec=to_target[1] if to_target else math.inf,
        steps_to_target=to_target[2] if to_target else None,
        examples_to_target=to_target[3] if to_target else None,
        timed_sec=timer.scored_sec(step),
        wall_sec=wall_sec,
        step_sec=timer.step_sec,
        compile_sec=compile_sec,
        num_steps=step,
        batch_size=batch_size,
        num_devices=mesh.size,
        device_kind=mesh.devices.flat[0].device_kind,
        flops_per_step=_flops(compiled),
        eval_points=tuple(points),
    )
