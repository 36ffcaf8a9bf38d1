"""Find a submission by built-in name, by ``.py`` path, or by an installed package's entry point.

Every loaded submission carries the sha256 of its source, so results are tied to
the exact code that produced them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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


class SubmissionError(ValueError):
    """A reference that does not name a loadable submission."""


class SubmissionNotFound(SubmissionError):
    """A reference that names nothing: no such file, built-in or installed plugin."""


@dataclasses.dataclass(frozen=True)
class LoadedSubmission:
    """A submission with where it came from and the hash of its source."""

    submission: Submission
    origin: str
    source_sha256: str

    @property
    def name(self) -> str:
        return self.submission.name


def _checked(entries) -> dict[str, str]:
    registry: dict[str, str] = {}
    for name, module in entries:
        if name in registry:
            raise ValueError(f"duplicate submission name {name!r} ({registry[name]} and {module})")
        registry[name] = module
    return registry


_REGISTRY = _checked(_BUILTIN)


def builtin_names() -> list[str]:
    return sorted(_REGISTRY)


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed plugins by name; a plugin may not reuse a built-in's name."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY or ep.name in found:
            raise SubmissionError(
                f"duplicate submission name {ep.name!r} from entry point {ep.value}"
            )
        found[ep.name] = ep
    return found


def _hash_files(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def source_sha256(module: ModuleType) -> str:
    """sha256 of a module's source; for a package, of every ``.py`` file under it, in path order."""
    path = Path(module.__file__ or "").resolve()
    files = list(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    return _hash_files(path.parent, files)


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


def _module_file(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _load_file(path: Path) -> tuple[ModuleType, str]:
    """Import a submission file; returns the module and the hash of its source and siblings.

    Modules the file imports from its own folder count as its source. They are taken out of
    ``sys.modules`` afterwards, so that another submission's same-named sibling (a ``utils.py``
    in another folder, say) is imported afresh rather than confused with this one's.
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
            file = _module_file(sys.modules[name])
            if file is not None and file.is_relative_to(folder):
                siblings.append(file)
                del sys.modules[name]
    return module, _hash_files(folder, [path.resolve(), *siblings])


def _is_path(reference: str) -> bool:
    return reference.endswith(".py") or "/" in reference or "\\" in reference


def load(reference: str) -> LoadedSubmission:
    """Load a submission by ``.py`` path, built-in name, or entry-point name (in that order)."""
    if _is_path(reference):
        module, digest = _load_file(Path(reference))
        return LoadedSubmission(_submission_of(module, reference), reference, digest)
    if reference in _REGISTRY:
        module = importlib.import_module(_REGISTRY[reference])
        return LoadedSubmission(
            _submission_of(module, reference), f"builtin:{reference}", source_sha256(module)
        )
    plugins = entry_points()
    if reference in plugins:
        ep = plugins[reference]
        try:
            obj = ep.load()
        except Exception as error:
            raise SubmissionError(
                f"loading entry point {reference!r} ({ep.value}) failed: "
                f"{type(error).__name__}: {error}"
            ) from error
        module = sys.modules[ep.module]
        return LoadedSubmission(
            _submission_of(obj, f"entry point {ep.value}"),
            f"entry_point:{ep.value}",
            source_sha256(module),
        )
    known = ", ".join([*builtin_names(), *sorted(plugins)])
    raise SubmissionNotFound(
        f"unknown submission {reference!r}; known: {known} (or give a .py path)"
    )
