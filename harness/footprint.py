"""What later trials run on, fingerprinted, so that a trial that changes it is noticed.

A submission's code runs in processes of its own, but under the benchmark's user: nothing stops
it from writing files that user can write. What the trials after it depend on (optarena's
installed code and the prepared data of the workloads a benchmark has loaded) is fingerprinted
before its first trial and checked after each one, so that a change is said in one line before
anything is measured on it, never silently. The fingerprint is every file's inode, size,
modification and change times: writing or replacing a file changes them, and resetting its
modification time (``os.utime``) changes its change time, which only the kernel sets.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from optarena.errors import UserError

_BYTECODE = "__pycache__"
"""Python writes bytecode here for modules imported for the first time: new files in it are
expected; a changed or removed one is not."""


class FootprintChanged(UserError, RuntimeError):
    """Installed code or prepared data changed while a trial ran."""


def code_roots() -> list[Path]:
    """The folders optarena's own modules were imported from (one per top-level package)."""
    roots = {
        Path(module.__file__).resolve().parent
        for name, module in list(sys.modules.items())
        if (name == "optarena" or (name.count(".") == 1 and name.startswith("optarena.")))
        and getattr(module, "__file__", None)
    }
    return sorted(roots)


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


def _files(roots: Iterable[Path]) -> dict[str, tuple[int, int, int, int] | None]:
    files = {}
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                files[path] = _stat(path)
    return files


@dataclasses.dataclass(frozen=True)
class Footprint:
    """The files under ``roots`` and their fingerprints, taken by `take`."""

    roots: tuple[Path, ...]
    files: Mapping[str, tuple[int, int, int, int] | None]

    @classmethod
    def take(cls, roots: Iterable[Path]) -> Footprint:
        roots = tuple(dict.fromkeys(Path(root) for root in roots if Path(root).is_dir()))
        return cls(roots, _files(roots))

    def changed(self) -> str | None:
        """The first file that changed, was removed or (outside ``__pycache__``) was added
        since `take`, said in words; ``None`` when there is none."""
        now = _files(self.roots)
        for path, before in self.files.items():
            if path not in now:
                return f"{path} was removed"
            if now[path] != before:
                return f"{path} was changed"
        for path in now.keys() - self.files.keys():
            if Path(path).parent.name != _BYTECODE:
                return f"{path} was added"
        return None
