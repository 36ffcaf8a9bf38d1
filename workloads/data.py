"""TFDS-backed data: prepare a builder once into a data directory, then batch it deterministically.

Builders write ``array_record`` files with numpy ``Tensor`` features, so preparing
and reading them needs no TensorFlow. Each split is read into host memory once
(untimed dataset preparation); training batches are drawn from a per-epoch
permutation seeded by the trial seed, which makes them identical run to run.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from optarena.workloads.base import Arrays

DATA_DIR_ENV = "OPTARENA_DATA_DIR"
SPLITS = ("train", "validation", "test")
WEIGHT_KEY = "weight"


def default_data_dir() -> str:
    """``$OPTARENA_DATA_DIR``, else ``~/.cache/optarena/tensorflow_datasets``."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return configured
    return str(Path.home() / ".cache" / "optarena" / "tensorflow_datasets")


def prepare(builder_cls: type, data_dir: str):
    """Prepare ``builder_cls`` into ``data_dir`` (a no-op when already prepared) and return it."""
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    builder = builder_cls(data_dir=data_dir, file_format="array_record")
    # TFDS prints its preparation messages to stdout; keep stdout for results (e.g. --json).
    with contextlib.redirect_stdout(sys.stderr):
        builder.download_and_prepare()
    return builder


_CACHE: dict[tuple[type, str, str], tuple[Path, Arrays]] = {}


def load_split(builder_cls: type, split: str, data_dir: str) -> Arrays:
    """Read a whole split of a prepared builder into read-only numpy arrays.

    Splits are cached per process while their prepared files exist; a deleted data directory
    is prepared again.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split=}")
    key = (builder_cls, split, str(data_dir))
    if key in _CACHE and _CACHE[key][0].is_dir():
        return _CACHE[key][1]
    builder = prepare(builder_cls, str(data_dir))
    arrays = read_all(builder.as_data_source()[split])
    _CACHE[key] = (Path(builder.data_dir), arrays)
    return arrays


def prepared_dirs() -> list[Path]:
    """The prepared dataset folders this process has read splits from."""
    return sorted({folder for folder, _ in _CACHE.values()})


def read_all(source, *, batched: bool = True) -> Arrays:
    """Every record of a TFDS data source, stacked feature by feature into read-only arrays.

    ``batched`` reads all records in one ``__getitems__`` call; otherwise one by one.
    """
    if batched:
        records = source.__getitems__(list(range(len(source))))
    else:
        records = [source[i] for i in range(len(source))]
    arrays = {f: np.stack([np.asarray(r[f]) for r in records]) for f in records[0]}
    for array in arrays.values():
        array.setflags(write=False)
    return arrays


def num_examples(arrays: Arrays) -> int:
    return len(next(iter(arrays.values())))


def train_batches(arrays: Arrays, batch_size: int, seed: int) -> Iterator[Arrays]:
    """Endless training batches, each epoch permuted by ``(seed, epoch)``, remainder dropped."""
    n = num_examples(arrays)
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} training examples")
    epoch = 0
    while True:
        order = np.random.default_rng((seed, epoch)).permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            yield {key: value[index] for key, value in arrays.items()}
        epoch += 1


def eval_batches(arrays: Arrays, batch_size: int) -> list[Arrays]:
    """A split in fixed-size batches, the last zero-padded, with a ``weight`` of 0 on padding."""
    n = num_examples(arrays)
    batches = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        pad = batch_size - (stop - start)
        batch = {
            key: np.concatenate([value[start:stop], np.zeros((pad, *value.shape[1:]), value.dtype)])
            for key, value in arrays.items()
        }
        batch[WEIGHT_KEY] = np.concatenate(
            [np.ones(stop - start, np.float32), np.zeros(pad, np.float32)]
        )
        batches.append(batch)
    return batches
