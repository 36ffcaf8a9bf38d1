"""Byte windows of the Python standard library's own source, read locally at prepare time.

The corpus is every public top-level module of the running interpreter's standard library
(``sysconfig.get_paths()["stdlib"]/*.py`` whose name does not start with ``_``) smaller than
`MAX_FILE_BYTES`, in sorted order: on CPython 3.11.7, 125 files and 2.04 MB. Each file goes
whole into one split, chosen by the SHA-256 of its name (`split_of`), so no file is in two
splits. A file is cut into windows of ``CONTEXT + 1`` bytes with a stride of ``CONTEXT``:
every byte but a file's first is a prediction target exactly once, and a file's last window
is zero-padded, with its true length carried as the ``length`` feature. Training keeps every
window of its files; validation and test keep every `HELD_OUT_STRIDE`-th window of theirs
(evaluations run every 2% of training and must stay cheap), and drop a window that also occurs
in an earlier split (train, then validation), so that the splits share no example. On
CPython 3.11.7 that gives train 114 files, 29,647 windows, 1,893,871 targets; validation 4 files,
155 windows, 9,920 targets; test 7 files, 134 windows, 8,576 targets.

The corpus changes between Python releases, so the builder's config is named after the
interpreter's exact version (``py3_11_7``) and the workload's ``dataset`` carries that name:
results on another release's corpus are a different dataset, never mixed with these. The
corpus's SHA-256 is recorded in the dataset's metadata.
"""

from __future__ import annotations

import hashlib
import sys
import sysconfig
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

CONTEXT = 64
"""Tokens a model reads; a window holds one more, the last position's target."""
WINDOW = CONTEXT + 1
VOCAB_SIZE = 256
"""Byte tokens."""
MAX_FILE_BYTES = 50_000
SPLIT_BUCKETS = 20
"""A file's name hashes to one of 20 buckets: bucket 0 is validation, 1 is test, the rest train."""
HELD_OUT_STRIDE = 8
"""Validation and test keep every 8th window of their files, to keep evaluations cheap."""
CONFIG_NAME = f"py{sys.version_info.major}_{sys.version_info.minor}_{sys.version_info.micro}"
"""The running interpreter's release, which fixes the corpus."""


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files(directory: Path) -> list[Path]:
    """The corpus's files under ``directory``, sorted by name (see the module docstring)."""
    return [
        path
        for path in sorted(directory.glob("*.py"))
        if not path.name.startswith("_") and path.stat().st_size < MAX_FILE_BYTES
    ]


def split_of(name: str) -> str:
    """The split of the file called ``name``: a hash of the name, independent of its contents."""
    bucket = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % SPLIT_BUCKETS
    return {0: "validation", 1: "test"}.get(bucket, "train")


def windows(text: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``text`` cut into zero-padded ``WINDOW``-byte windows with stride ``CONTEXT``.

    Returns ``(tokens, lengths)``: ``tokens[i, :lengths[i]]`` are real bytes, the rest zeros.
    Every byte of ``text`` but the first is the target of exactly one window.
    """
    data = np.frombuffer(text, np.uint8)
    starts = range(0, max(len(data) - 1, 0), CONTEXT)
    tokens = np.zeros((len(starts), WINDOW), np.uint8)
    lengths = np.zeros(len(starts), np.int32)
    for row, start in enumerate(starts):
        piece = data[start : start + WINDOW]
        tokens[row, : len(piece)] = piece
        lengths[row] = len(piece)
    return tokens, lengths


def corpus_sha256(files: list[Path]) -> str:
    """SHA-256 over the files' names and contents, in order: the corpus's identity."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_splits(files: list[Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (tokens, lengths)}`` of ``files``, held-out windows seen earlier dropped."""
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
        "train": [],
        "validation": [],
        "test": [],
    }
    for path in files:
        split = split_of(path.name)
        tokens, lengths = windows(path.read_bytes())
        stride = 1 if split == "train" else HELD_OUT_STRIDE
        parts[split].append((tokens[::stride], lengths[::stride]))
    splits, seen = {}, set()
    for split, pieces in parts.items():
        tokens = np.concatenate([t for t, _ in pieces])
        lengths = np.concatenate([n for _, n in pieces])
        rows = [row.tobytes() + n.tobytes() for row, n in zip(tokens, lengths, strict=True)]
        keep = np.array([split == "train" or row not in seen for row in rows], bool)
        seen.update(rows)
        splits[split] = (tokens[keep], lengths[keep])
    return splits


class OptarenaPythonSource(tfds.core.GeneratorBasedBuilder):
    """Byte windows of the standard library's public top-level modules, split by file."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012
    BUILDER_CONFIGS = [  # noqa: RUF012
        tfds.core.BuilderConfig(
            name=CONFIG_NAME, description=f"The standard library of Python {CONFIG_NAME}."
        )
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                f"{WINDOW}-byte windows (stride {CONTEXT}) of the public top-level modules "
                f"under {MAX_FILE_BYTES} bytes of the Python standard library."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "tokens": tfds.features.Tensor(shape=(WINDOW,), dtype=np.uint8),
                    "length": tfds.features.Tensor(shape=(), dtype=np.int32),
                }
            ),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        files = corpus_files(stdlib_dir())
        self.info.metadata.update({"corpus_sha256": corpus_sha256(files), "num_files": len(files)})
        return {
            split: self._generate_examples(tokens, lengths)
            for split, (tokens, lengths) in build_splits(files).items()
        }

    def _generate_examples(self, tokens, lengths):
        for i, (row, length) in enumerate(zip(tokens, lengths, strict=True)):
            yield i, {"tokens": row, "length": length}
