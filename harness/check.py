"""``optarena check``: the conformance suite a submitter runs before submitting.

Each check yields one `CheckResult` whose message is a single line: what was verified, or
what is wrong and what to fix. The checks, in order:

1. the module loads and exposes ``SUBMISSION``;
2. it can enter a ruleset: a search space (external tuning) or ``self_tuning=True``;
3. the optimizer state is a pytree of arrays;
4. the search space is valid and every sampled point builds an optimizer;
5. the factory returns an optax transformation on every offline workload's parameter tree, and
   its ``init``/``update`` keep the parameters' structure (traced abstractly: nothing runs);
6. ``init``/``update`` are pure: two separate traces give identical results;
7. the train step does not recompile after the first step (the state's types do not change);
8. updates are finite on a few real steps of a small workload;
9. ``eval_params``, if any, returns parameters of the same structure.

Real steps run on one small workload (``digits_mlp`` by default), whose data is prepared on
first use; everything else is shape-level and cheap.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optarena.harness import sandbox, tracing
from optarena.submissions import loader
from optarena.submissions import search_space as spaces
from optarena.submissions.api import Hparams, Submission, WorkloadInfo
from optarena.workloads import data, registry

EXIT_FAILED = 1
STEPS_WORKLOAD = "digits_mlp"
REAL_STEPS = 3
SAMPLED_POINTS = 8


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One item of the checklist: its name, whether it passed, and a one-line message."""

    name: str
    passed: bool
    message: str


class _Failed(Exception):
    """Raised inside a check to fail it with a one-line message."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """``Type: message`` on a single line, shortened to ``limit`` characters."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _path(path: tuple) -> str:
    return jax.tree_util.keystr(path) or "(root)"


@functools.cache
def _abstract_params(workload_name: str) -> Any:
    """The parameter tree of a workload as shapes and dtypes (``jax.eval_shape``: nothing runs)."""
    workload = registry.get(workload_name)
    params, _ = jax.eval_shape(workload.init, jax.random.PRNGKey(0))
    return params


def _info(workload_name: str, submission: Submission) -> WorkloadInfo:
    workload = registry.get(workload_name)
    try:
        return tracing.workload_info(workload, submission, workload.spec.budget_sec, 1)
    except tracing.SubmissionFailure as error:
        raise _Failed(f"{error}; fix the batch_size hook") from error


def _build(submission: Submission, hparams: Hparams | None, info: WorkloadInfo, where: str):
    """The submission's optimizer, built as a trial builds it (`tracing.make_optimizer`), or a
    failure saying what to fix."""
    try:
        return tracing.make_optimizer(submission, hparams, info)
    except tracing.SubmissionFailure as failure:
        if failure.__cause__ is not None:
            raise _Failed(
                f"make_optimizer({_show(hparams)}, info) raised {one_line(failure.__cause__)} "
                f"{where}; make the factory accept this point"
            ) from failure
        raise _Failed(
            f"{failure} {where}; return optax.chain(...) or another optax transformation"
        ) from failure


def _show(hparams: Hparams | None) -> str:
    if hparams is None:
        return "None"
    text = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in hparams.items()
    )
    return "{" + text + "}"


def _trial_hparams(submission: Submission) -> Hparams | None:
    """The point the checks build with: the default point, else ``None`` (self-tuning), else
    the first point of the search space (``None`` when the space is invalid)."""
    if submission.default_hparams is not None:
        return dict(submission.default_hparams)
    if submission.self_tuning or submission.search_space is None:
        return None
    try:
        return spaces.sample(submission.search_space, 1, seed=0)[0]
    except spaces.SearchSpaceError:  # reported by the search-space check
        return None


def _describe_difference(expected: Any, got: Any, what: str) -> str | None:
    """A one-line description of how two trees of arrays differ in structure, shape or dtype."""
    if jax.tree.structure(expected) != jax.tree.structure(got):
        expected_structure, got_structure = jax.tree.structure(expected), jax.tree.structure(got)
        return f"{what} has structure {got_structure}, expected {expected_structure}"
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(expected), jax.tree.leaves(got), strict=True
    ):
        shape_a, shape_b = jnp.shape(a), jnp.shape(b)
        dtype_a, dtype_b = jnp.result_type(a), jnp.result_type(b)
        if shape_a != shape_b or dtype_a != dtype_b:
            return (
                f"{what} at {_path(path)} is {dtype_b}{list(shape_b)}, "
                f"expected {dtype_a}{list(shape_a)}"
            )
    return None


def _update(tx, grads, state, params, loss):
    return tx.update(grads, state, params, value=loss)


def _non_array_leaf(tree: Any) -> str | None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if not isinstance(leaf, jax.Array | np.ndarray | np.generic):
            return f"{_path(path)} is a {type(leaf).__name__}"
    return None


# ---------------------------------------------------------------------------------------------
# The checks. Each returns a one-line success message or raises _Failed.


def check_rulesets(submission: Submission) -> str:
    if submission.search_space is None and not submission.self_tuning:
        raise _Failed(
            "no search_space and self_tuning=False, so no ruleset can run it; give a search "
            "space (external tuning) or set self_tuning=True (make_optimizer(None, info) builds)"
        )
    rulesets = []
    if submission.search_space is not None:
        rulesets.append("external tuning")
    if submission.self_tuning:
        rulesets.append("self-tuning")
    return " and ".join(rulesets)


def check_search_space(submission: Submission) -> str:
    info = _info(STEPS_WORKLOAD, submission)
    params = _abstract_params(STEPS_WORKLOAD)
    built = []
    if submission.search_space is not None:
        try:
            space = spaces.parse(submission.search_space)
            points = spaces.sample(space, SAMPLED_POINTS, seed=0)
        except spaces.SearchSpaceError as error:
            raise _Failed(f"invalid search space: {error}") from error
        built += [("sampled point", point) for point in points]
    if submission.default_hparams is not None:
        built.append(("default point", dict(submission.default_hparams)))
    if submission.self_tuning:
        built.append(("self-tuning (hparams=None)", None))
    for label, point in built:
        tx = _build(submission, point, info, f"for the {label}")
        try:
            jax.eval_shape(tx.init, params)
        except Exception as error:
            raise _Failed(
                f"init raised {one_line(error)} for the {label} {_show(point)}; "
                "every point of the search space must build a working optimizer"
            ) from error
    if submission.search_space is None:
        return f"no search space (self-tuning only); {len(built)} point(s) build"
    return f"valid; {len(built)} points build ({SAMPLED_POINTS} sampled, seed 0)"


def check_parameter_trees(submission: Submission) -> str:
    hparams = _trial_hparams(submission)
    names = [name for name in registry.names() if registry.get(name).spec.offline]
    for name in names:
        params = _abstract_params(name)
        tx = _build(submission, hparams, _info(name, submission), f"on {name}")
        loss = jax.ShapeDtypeStruct((), jnp.float32)
        try:
            state = jax.eval_shape(tx.init, params)
        except Exception as error:
            raise _Failed(
                f"init on {name}'s parameters raised {one_line(error)}; "
                "the optimizer must handle every parameter shape (vectors, matrices, conv kernels)"
            ) from error
        try:
            updates, _ = jax.eval_shape(functools.partial(_update, tx), params, state, params, loss)
        except Exception as error:
            raise _Failed(
                f"update on {name}'s parameters raised {one_line(error)}; "
                "the optimizer must handle every parameter shape (vectors, matrices, conv kernels)"
            ) from error
        problem = _describe_difference(params, updates, f"update on {name}")
        if problem:
            raise _Failed(f"{problem}; updates must have the parameters' structure and dtypes")
    return f"builds, inits and updates on all {len(names)} offline workloads' parameter trees"


def _real_batches(data_dir: str, batch_size: int) -> Iterator[dict]:
    workload = registry.get(STEPS_WORKLOAD)
    arrays = workload.load_split("train", data_dir)
    return data.train_batches(arrays, batch_size, seed=0)


def run_checks(
    reference: str, *, data_dir: str, workloads_check: bool = True
) -> tuple[loader.LoadedSubmission | None, list[CheckResult]]:
    """Load ``reference`` and run every check on it; stops at the first check others depend on.

    Raises `loader.SubmissionNotFound` when ``reference`` names nothing at all.

    ``workloads_check=False`` skips the check over every offline workload's parameter tree.
    """
    results: list[CheckResult] = []

    def record(name: str, check: Callable[[], str]) -> bool:
        try:
            message = check()
        except _Failed as failure:
            results.append(CheckResult(name, False, str(failure)))
            return False
        except loader.SubmissionNotFound:
            raise
        except Exception as error:  # a bug in the submission that no check anticipated
            results.append(CheckResult(name, False, f"raised {one_line(error)}"))
            return False
        results.append(CheckResult(name, True, message))
        return True

    loaded: loader.LoadedSubmission | None = None

    def load() -> str:
        nonlocal loaded
        try:
            loaded = loader.load(reference)
        except loader.SubmissionNotFound:
            raise
        except loader.SubmissionError as error:
            raise _Failed(" ".join(str(error).split())) from error
        return f"{loaded.name} ({loaded.origin}, sha256 {loaded.source_sha256[:12]})"

    if not record("loads and exposes SUBMISSION", load):
        return None, results
    submission = loaded.submission
    record("ruleset", lambda: check_rulesets(submission))

    def shape_checks() -> None:
        record("search space", lambda: check_search_space(submission))
        if workloads_check:
            record("every workload's parameter tree", lambda: check_parameter_trees(submission))

    _run_step_checks(submission, data_dir, record, shape_checks)
    return loaded, results


def _run_step_checks(
    submission: Submission, data_dir: str, record, shape_checks: Callable[[], None]
) -> None:
    """State pytree first (the shape-level checks need it), then ``shape_checks``, then purity,
    no recompilation, finite updates and eval_params on real steps."""
    workload = registry.get(STEPS_WORKLOAD)
    context: dict[str, Any] = {}

    def setup() -> str:
        info = _info(STEPS_WORKLOAD, submission)
        tx = _build(submission, _trial_hparams(submission), info, f"on {STEPS_WORKLOAD}")
        params, model_state = jax.jit(workload.init)(jax.random.PRNGKey(0))
        try:
            state = tx.init(params)
        except Exception as error:
            raise _Failed(f"init raised {one_line(error)} on {STEPS_WORKLOAD}") from error
        leaf = _non_array_leaf(state)
        if leaf is not None:
            raise _Failed(
                f"optimizer state leaf {leaf}, not an array; build the state from NamedTuples, "
                "tuples, lists and dicts of arrays (register any custom class as a pytree)"
            )
        context.update(tx=tx, params=params, model_state=model_state, state=state, info=info)
        return f"{len(jax.tree.leaves(state))} array(s)"

    if not record("state is a pytree of arrays", setup):
        return
    shape_checks()
    tx, params, model_state, state0 = (
        context["tx"],
        context["params"],
        context["model_state"],
        context["state"],
    )

    def step(params, opt_state, batch):
        def loss_fn(p):
            return workload.loss(p, model_state, batch, jax.random.PRNGKey(0), train=True)[0]

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params, value=loss)
        return updates, opt_state, optax.apply_updates(params, updates)

    batches = _real_batches(data_dir, context["info"].batch_size)
    batch_list = [next(batches) for _ in range(REAL_STEPS)]
    jitted = jax.jit(step)

    def pure() -> str:
        try:
            first = jitted(params, state0, batch_list[0])
        except Exception as error:
            raise _Failed(
                f"the train step with this optimizer failed to trace or run: {one_line(error)}"
            ) from error
        if not _same_traces(tx.init, params):
            raise _Failed(
                "two traces of init differ; init must be a pure function of the parameters "
                "(no globals, counters or np.random)"
            )
        if not _same_traces(step, params, state0, batch_list[0]):
            raise _Failed(
                "two traces of update differ; update must not read or change Python state "
                "(globals, counters, np.random): keep all it needs in the optimizer state"
            )
        context["first"] = first
        return "separate traces of init and update are identical"

    if not record("init and update are pure", pure):
        return

    def no_recompile() -> str:
        _, new_state, _ = context["first"]
        problem = _describe_difference(state0, new_state, "the state after one update")
        if problem is None:
            weak = _weak_type_change(state0, new_state)
            problem = weak and f"the state after one update {weak}"
        if problem:
            raise _Failed(
                f"{problem}, so the train step recompiles after the first step; make init "
                "return exactly the structure, shapes and dtypes that update returns"
            )
        return "the state keeps its structure, shapes and dtypes across updates"

    record("jit without recompiling after the first step", no_recompile)

    def finite() -> str:
        params_now, opt_state = params, state0
        for index, batch in enumerate(batch_list, start=1):
            updates, opt_state, params_now = jitted(params_now, opt_state, batch)
            problem = _describe_difference(params, updates, "the update")
            if problem:
                raise _Failed(f"{problem}; updates must have the parameters' structure")
            bad = _non_finite_leaf(updates)
            if bad is not None:
                raise _Failed(
                    f"update {index} on {STEPS_WORKLOAD} has non-finite values at {bad}; check "
                    "divisions and epsilons, and the default hyperparameters"
                )
        context["trained"] = (params_now, opt_state)
        return f"{REAL_STEPS} real steps on {STEPS_WORKLOAD}: updates finite"

    if not record("updates are finite on real steps", finite):
        return
    if submission.eval_params is None:
        return

    def eval_params() -> str:
        params_now, opt_state = context["trained"]
        try:
            evaluated = jax.jit(submission.eval_params)(opt_state, params_now)
        except Exception as error:
            raise _Failed(
                f"eval_params(opt_state, params) raised {one_line(error)}; it receives the "
                "optimizer state and the trained parameters"
            ) from error
        problem = _describe_difference(params_now, evaluated, "eval_params' result")
        if problem:
            raise _Failed(f"{problem}; eval_params must return parameters like the ones it gets")
        bad = _non_finite_leaf(evaluated)
        if bad is not None:
            raise _Failed(f"eval_params gave non-finite values at {bad}")
        return "returns finite parameters of the same structure"

    record("eval_params", eval_params)


def _same_traces(fn: Callable, *args: Any) -> bool:
    """Whether two fresh traces of ``fn`` give the same program and the same constants.

    A function that reads or changes Python state (a counter, a global, ``np.random``) while
    traced bakes a different constant into each trace; jit would then give results that depend
    on when it happened to trace. Tracing is cheap: nothing is compiled.
    """
    first, second = (jax.make_jaxpr(lambda *a: fn(*a))(*args) for _ in range(2))
    if str(first.jaxpr) != str(second.jaxpr) or len(first.consts) != len(second.consts):
        return False
    return all(
        np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
        for a, b in zip(first.consts, second.consts, strict=True)
    )


def _weak_type_change(before: Any, after: Any) -> str | None:
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(before), jax.tree.leaves(after), strict=True
    ):
        weak_a = getattr(jax.typeof(a), "weak_type", False)
        weak_b = getattr(jax.typeof(b), "weak_type", False)
        if weak_a != weak_b:
            return f"at {_path(path)} changes weak typing ({weak_a} -> {weak_b})"
    return None


def _non_finite_leaf(tree: Any) -> str | None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        array = np.asarray(leaf)
        if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
            return _path(path)
    return None


def passed(results: list[CheckResult]) -> bool:
    return bool(results) and all(result.passed for result in results)


def format_line(result: CheckResult) -> str:
    mark = "ok  " if result.passed else "FAIL"
    return f"[{mark}] {result.name}: {result.message}"


def command(reference: str, data_dir: str) -> int:
    """``optarena check``: print the checklist on stdout; exit 0 when all pass, else 1, with
    the first failure repeated as one line on stderr."""
    _, results = run_checks(reference, data_dir=data_dir)
    for result in results:
        sys.stdout.write(format_line(result) + "\n")
    failed = [result for result in results if not result.passed]
    if failed:
        sys.stderr.write(
            f"optarena: check: {len(failed)} check(s) failed for {reference}; "
            f"first: {failed[0].name}: {failed[0].message}\n"
        )
        return EXIT_FAILED
    sys.stdout.write(f"{reference}: all {len(results)} checks passed\n")
    return 0


CHECK_LIMIT_SEC = 600.0
"""How long the whole checklist may take before the submission is reported as hanging."""


def _checked_frames(reference: str, data_dir: str) -> list[bytes]:
    """`run_checks`'s results as JSON, for a sandboxed process."""
    try:
        _, results = run_checks(reference, data_dir=data_dir)
    except loader.SubmissionNotFound as error:
        raise sandbox.Refused(str(error)) from error
    return [json.dumps([dataclasses.asdict(result) for result in results]).encode()]


def check_in_sandbox(
    reference: str, *, data_dir: str, limit_sec: float = CHECK_LIMIT_SEC
) -> list[CheckResult]:
    """`run_checks` in a sandboxed process (`optarena.harness.sandbox`): a submission that
    exits, crashes or hangs fails the check, and never ends the calling process.

    Raises `loader.SubmissionNotFound` when ``reference`` names nothing at all.
    """
    # The sandbox has a working directory of its own: a relative path is this one's.
    where = str(Path(reference).resolve()) if loader.is_path(reference) else reference
    try:
        (frame,) = sandbox.call(
            _checked_frames,
            (where, data_dir),
            limit_sec=limit_sec,
            what=f"checking {reference}",
        )
    except sandbox.Refused as error:
        raise loader.SubmissionNotFound(str(error)) from None
    except sandbox.SandboxFailure as error:
        return [CheckResult("the checks run to their end", False, str(error))]
    return [CheckResult(**fields) for fields in json.loads(frame)]
