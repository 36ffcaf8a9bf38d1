"""Find a submission by built-in name, by a group's entry name, by ``.py`` path, or by an
installed package's entry point.

Groups are sets of submissions kept apart from the everyday built-ins (``optarena submissions``
lists the built-ins; ``--group NAME`` lists a group), such as ``algoperf-v05``, the AlgoPerf
v0.5 field re-entered as submissions. A group's entries load by name like built-ins, and no
name may be taken twice, by a built-in, a group entry or an installed plugin.

Every loaded submission carries the sha256 of its source, so results are tied to
the exact code that produced them.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import sys
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any

from optarena.errors import UserError
from optarena.submissions.api import Submission

ENTRY_POINT_GROUP = "optarena.submissions"

_BUILTIN: tuple[tuple[str, str], ...] = (
    ("sgd_momentum", "optarena.submissions.sgd_momentum"),
    ("sgd_nesterov", "optarena.submissions.sgd_nesterov"),
    ("adam", "optarena.submissions.adam"),
    ("adamw", "optarena.submissions.adamw"),
    ("nadamw", "optarena.submissions.nadamw"),
    ("schedule_free_adamw", "optarena.submissions.schedule_free_adamw"),
    ("muon", "optarena.submissions.muon"),
    ("shampoo", "optarena.submissions.shampoo"),
    ("prodigy", "optarena.submissions.prodigy"),
    ("lion", "optarena.submissions.lion"),
    ("lamb", "optarena.submissions.lamb"),
)


class Group(StrEnum):
    """A named set of submissions kept apart from the built-ins."""

    ALGOPERF_V05 = "algoperf-v05"


_V05 = "optarena.submissions.algoperf_v05"

_GROUPS: dict[Group, tuple[tuple[str, str], ...]] = {
    Group.ALGOPERF_V05: (
        ("v05_shampoo", f"{_V05}.shampoo"),
        ("v05_schedule_free_adamw", f"{_V05}.schedule_free_adamw"),
        ("v05_generalized_adam", f"{_V05}.generalized_adam"),
        ("v05_cyclic_lr", f"{_V05}.cyclic_lr"),
        ("v05_nadamp", f"{_V05}.nadamp"),
        ("v05_baseline", f"{_V05}.baseline"),
        ("v05_amos", f"{_V05}.amos"),
        ("v05_caspr_adaptive", f"{_V05}.caspr_adaptive"),
        ("v05_lawa_queue", f"{_V05}.lawa_queue"),
        ("v05_lawa_ema", f"{_V05}.lawa_ema"),
        ("v05_schedule_free_prodigy", f"{_V05}.schedule_free_prodigy"),
        ("v05_nadamw_sequential", f"{_V05}.nadamw_sequential"),
        ("v05_adamg", f"{_V05}.adamg"),
    ),
}


class SubmissionError(UserError, ValueError):
    """A reference that does not name a loadable submission."""


class SubmissionNotFound(SubmissionError):
    """A reference that names nothing: no such file, built-in or installed plugin."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SubmissionInfo:
    """What planning needs to know of a submission, as plain data: its identity, search space,
    default point and flags. It can be read in another process (`to_json`, `from_json`), so
    that the process that plans and stores never runs a submission's code."""

    name: str
    origin: str
    source_sha256: str
    search_space: Any = None
    default_hparams: Mapping[str, Any] | None = None
    self_tuning: bool = False

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> SubmissionInfo:
        """The info `to_json` wrote; `SubmissionError` for anything else."""

        def not_a_number(token: str) -> None:
            raise ValueError(f"{token} is not a finite number")

        try:
            return cls._checked(json.loads(text, parse_constant=not_a_number))
        except (ValueError, TypeError) as error:
            raise SubmissionError(f"malformed submission description: {error}") from error

    @classmethod
    def _checked(cls, fields: dict[str, Any]) -> SubmissionInfo:
        info = cls(**fields)
        strings = (info.name, info.origin, info.source_sha256)
        if not all(isinstance(value, str) and value for value in strings):
            raise TypeError("name, origin and source_sha256 must be non-empty strings")
        if not isinstance(info.self_tuning, bool):
            raise TypeError("self_tuning must be true or false")
        if info.default_hparams is not None and not isinstance(info.default_hparams, dict):
            raise TypeError("default_hparams must be a mapping of names to values, or None")
        return info


@dataclasses.dataclass(frozen=True)
class LoadedSubmission:
    """A submission with where it came from and the hash of its source."""

    submission: Submission
    origin: str
    source_sha256: str

    @property
    def name(self) -> str:
        return self.submission.name

    @property
    def info(self) -> SubmissionInfo:
        """The plain-data description of this submission."""
        submission = self.submission
        fields = {
            "name": submission.name,
            "origin": self.origin,
            "source_sha256": self.source_sha256,
            "search_space": submission.search_space,
            "default_hparams": submission.default_hparams,
            "self_tuning": submission.self_tuning,
        }
        try:
            # Through JSON, so that it is the same as one read from another process.
            return SubmissionInfo._checked(json.loads(json.dumps(fields, allow_nan=False)))
        except (TypeError, ValueError) as error:
            raise SubmissionError(
                f"{submission.name}: its search space and default point must be plain JSON "
                f"data (names, finite numbers, lists): {error}"
            ) from error


def _checked(entries: Iterable[tuple[str, str]]) -> dict[str, str]:
    registry: dict[str, str] = {}
    for name, module in entries:
        if name in registry:
            raise ValueError(f"duplicate submission name {name!r} ({registry[name]} and {module})")
        registry[name] = module
    return registry


def grouped_registry(
    builtins: Mapping[str, str], groups: Mapping[str, Iterable[tuple[str, str]]]
) -> dict[str, tuple[str, str]]:
    """Every group entry's name -> (group, module); `ValueError` for a name that a built-in or
    another entry already has, naming both modules."""
    entries: dict[str, tuple[str, str]] = {}
    for group, members in groups.items():
        for name, module in members:
            taken = builtins.get(name) or entries.get(name, ("", ""))[1]
            if taken:
                raise ValueError(
                    f"group {group}: submission name {name!r} is taken ({taken} and {module})"
                )
            entries[name] = (str(group), module)
    return entries


_REGISTRY = _checked(_BUILTIN)
_GROUPED = grouped_registry(_REGISTRY, _GROUPS)


def builtin_names() -> list[str]:
    return sorted(_REGISTRY)


def group_names() -> list[str]:
    """The groups, by name."""
    return [str(group) for group in Group]


def group_members(group: str) -> list[str]:
    """The names of ``group``'s submissions, in the group's order; `SubmissionNotFound` for an
    unknown group."""
    if group not in tuple(Group):
        raise SubmissionNotFound(f"unknown group {group!r}; known: {', '.join(group_names())}")
    return [name for name, _ in _GROUPS[Group(group)]]


def _plugins() -> tuple[dict[str, importlib.metadata.EntryPoint], dict[str, str]]:
    """Installed plugins by name, and, for each name that cannot be loaded because it is
    taken (by a built-in or by another plugin), why, naming every source."""
    found: dict[str, dict[str, importlib.metadata.EntryPoint]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, {}).setdefault(ep.value, ep)
    usable: dict[str, importlib.metadata.EntryPoint] = {}
    clashes: dict[str, str] = {}
    for name, by_value in found.items():
        eps = list(by_value.values())
        sources = " and ".join(
            f"{ep.value} (from {ep.dist.name if ep.dist else 'an unknown distribution'})"
            for ep in eps
        )
        if name in _REGISTRY or name in _GROUPED:
            taken = _REGISTRY[name] if name in _REGISTRY else _GROUPED[name][1]
            clashes[name] = f"plugin name {name!r} is the built-in {taken}'s; plugin: {sources}"
        elif len(eps) > 1:
            clashes[name] = f"{len(eps)} plugins are named {name!r}: {sources}"
        else:
            usable[name] = eps[0]
    return usable, clashes


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed plugins by name, leaving out every name that clashes (`plugin_clashes`), so
    that one badly named plugin never stops the others."""
    return _plugins()[0]


def plugin_clashes() -> dict[str, str]:
    """Why each clashing plugin name cannot be loaded, naming both sources."""
    return _plugins()[1]


def _is_optarena(name: str) -> bool:
    return name == "optarena" or name.startswith("optarena.")


def _module_file(name: str) -> Path | None:
    """The file module ``name`` is (or would be) imported from; ``None`` for anything else,
    such as a name imported from a module rather than a submodule."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.has_location or spec.origin is None:
        return None
    return Path(spec.origin).resolve()


def _imported_names(file: Path, package: str | None) -> set[str]:
    """Every module name ``file``'s import statements mention, read with ``ast``.

    ``from a.b import c`` mentions ``a.b`` and ``a.b.c`` (``c`` may be a submodule); relative
    imports are resolved against ``package`` and skipped when it is ``None``.
    """
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and package is None:
                continue
            relative = "." * node.level + (node.module or "")
            base = importlib.util.resolve_name(relative, package) if node.level else relative
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _project_modules(files: list[Path], package: str | None = None) -> dict[str, Path]:
    """The ``optarena.*`` modules that ``files`` import, directly or through one another.

    Modules are found by reading import statements, so an import inside a function counts as
    much as one at the top of a file; each is located with `importlib.util.find_spec`, which
    gives the module already imported when there is one.
    """
    found: dict[str, Path] = {}
    pending = [(file, package) for file in files]
    while pending:
        file, file_package = pending.pop()
        for name in sorted(_imported_names(file, file_package)):
            if name in found or not _is_optarena(name):
                continue
            path = _module_file(name)
            if path is None or path in files:
                continue
            found[name] = path
            if path.suffix == ".py":
                own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                pending.append((path, own_package))
    return found


def _digest(root: Path, files: list[Path], package: str | None = None) -> str:
    """sha256 of ``files`` (named by their path under ``root``) and of the project modules they
    import (named by module name), so that the same code hashes the same wherever it lies."""
    own = {file.relative_to(root).as_posix(): file for file in files}
    named = {**own, **_project_modules(list(own.values()), package)}
    digest = hashlib.sha256()
    for label in sorted(named):
        digest.update(label.encode())
        digest.update(named[label].read_bytes())
    return digest.hexdigest()


def source_sha256(module: ModuleType) -> str:
    """sha256 of a module's source and of every ``optarena`` module it imports, transitively.

    A module's own source is its file or, for a package, every ``.py`` file under it. The
    project modules it imports count too, so that a change to a shared piece (a schedule, the
    defaults helper) makes every submission that uses it a new one, while a change to a module
    it does not import leaves its hash as it was.
    """
    path = Path(module.__file__ or "").resolve()
    is_package = path.name == "__init__.py"
    files = sorted(path.parent.rglob("*.py")) if is_package else [path]
    package = module.__name__ if is_package else module.__name__.rpartition(".")[0]
    return _digest(path.parent, files, package or None)


def plugin_sha256(ep: importlib.metadata.EntryPoint) -> str:
    """sha256 of an installed plugin: its distribution's name and version and the source of the
    top-level package its entry point lies in (every ``.py`` file under it, so that a helper
    module the submission imports counts), with the project modules they import.

    A top-level namespace package has no one folder; then the entry point's own module counts.
    """
    top = importlib.import_module(ep.module.partition(".")[0])
    module = top if getattr(top, "__file__", None) else sys.modules[ep.module]
    dist = ep.dist
    label = f"{dist.name} {dist.version}" if dist is not None else "no distribution"
    return hashlib.sha256(f"{label}\n{source_sha256(module)}".encode()).hexdigest()


def _submission_of(obj: object, origin: str) -> Submission:
    candidate = getattr(obj, "SUBMISSION", obj) if isinstance(obj, ModuleType) else obj
    if isinstance(obj, ModuleType) and not hasattr(obj, "SUBMISSION"):
        raise SubmissionError(f"{origin} is not a submission: it defines no SUBMISSION")
    if not isinstance(candidate, Submission):
        raise SubmissionError(
            f"{origin} is not a submission: SUBMISSION is a {type(candidate).__name__}, "
            "not submissions.api.Submission"
        )
    return candidate


def _load_file(path: Path) -> tuple[ModuleType, str]:
    """Import a submission file; returns the module and the hash of its source and siblings.

    Modules the file imports from its own folder count as its source. They are taken out of
    ``sys.modules`` afterwards, so that another submission's same-named sibling (a ``utils.py``
    in another folder, say) is imported afresh rather than confused with this one's. Project
    (``optarena``) modules are never siblings, even for a file inside the project: they stay
    imported and count by module name, as they do for every submission.
    """
    if not path.is_file():
        raise SubmissionNotFound(f"submission file not found: {path}")
    if path.suffix != ".py":
        raise SubmissionError(f"submission file must be a .py file, got {path}")
    folder = path.parent.resolve()
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"optarena_submission_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SubmissionError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    already_loaded = set(sys.modules)
    sys.modules[module_name] = module
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise SubmissionError(
            f"importing {path} failed: {type(error).__name__}: {error}"
        ) from error
    finally:
        sys.path.remove(str(folder))
        siblings = []
        for name in set(sys.modules) - already_loaded - {module_name}:
            if _is_optarena(name):
                continue
            file = getattr(sys.modules[name], "__file__", None)
            file = Path(file).resolve() if file else None
            if file is not None and file.is_relative_to(folder):
                siblings.append(file)
                del sys.modules[name]
    return module, _digest(folder, [path.resolve(), *siblings])


def is_path(reference: str) -> bool:
    """Whether ``reference`` names a ``.py`` file rather than a built-in or an entry point."""
    return reference.endswith(".py") or "/" in reference or "\\" in reference


def load(reference: str) -> LoadedSubmission:
    """Load a submission by ``.py`` path, built-in name, or entry-point name (in that order)."""
    if is_path(reference):
        module, digest = _load_file(Path(reference))
        return LoadedSubmission(_submission_of(module, reference), reference, digest)
    if reference in _REGISTRY:
        module = importlib.import_module(_REGISTRY[reference])
        return LoadedSubmission(
            _submission_of(module, reference), f"builtin:{reference}", source_sha256(module)
        )
    if reference in _GROUPED:
        group, name = _GROUPED[reference]
        module = importlib.import_module(name)
        submission = _submission_of(module, reference)
        if submission.name != reference:
            raise SubmissionError(
                f"{name} holds a submission named {submission.name!r}, registered as {reference!r}"
            )
        return LoadedSubmission(submission, f"{group}:{reference}", source_sha256(module))
    plugins, clashes = _plugins()
    if reference in clashes:
        raise SubmissionError(clashes[reference])
    if reference in plugins:
        ep = plugins[reference]
        try:
            obj = ep.load()
        except Exception as error:
            raise SubmissionError(
                f"loading entry point {reference!r} ({ep.value}) failed: "
                f"{type(error).__name__}: {error}"
            ) from error
        submission = _submission_of(obj, f"entry point {ep.value}")
        if submission.name != reference:
            raise SubmissionError(
                f"entry point {reference!r} ({ep.value}) holds a submission named "
                f"{submission.name!r}: the two names must be the same"
            )
        return LoadedSubmission(submission, f"entry_point:{ep.value}", plugin_sha256(ep))
    known = ", ".join([*builtin_names(), *sorted(plugins)])
    groups = ", ".join(group_names())
    raise SubmissionNotFound(
        f"unknown submission {reference!r}; known: {known} (or give a .py path; groups: "
        f"{groups}, listed by `optarena submissions --group NAME`)"
    )
