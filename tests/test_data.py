"""Prepared data: the arrays kept beside a builder's records are the decoded records, written
once however many processes load a split at the same time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from optarena.workloads import data
from optarena.workloads.datasets.digits import OptarenaDigits
from optarena.workloads.datasets.graphs import OptarenaGraphs
from optarena.workloads.datasets.utterances import OptarenaUtterances


@pytest.mark.parametrize("builder_cls", [OptarenaDigits, OptarenaGraphs, OptarenaUtterances])
def test_loaded_splits_are_the_decoded_records(builder_cls, data_dir):
    for split in data.SPLITS:
        loaded = data.load_split(builder_cls, split, data_dir)
        decoded = data.read_all(data.prepare(builder_cls, data_dir).as_data_source()[split])
        assert loaded.keys() == decoded.keys()
        for feature, array in decoded.items():
            assert loaded[feature].dtype == array.dtype, feature
            np.testing.assert_array_equal(loaded[feature], array, err_msg=feature)
            assert not loaded[feature].flags.writeable, feature


def test_the_arrays_are_written_once_and_read_back_later(tmp_path):
    folder = Path(data.prepare(OptarenaDigits, str(tmp_path)).data_dir)
    first = data.load_split(OptarenaDigits, "train", str(tmp_path))
    kept = folder / data.ARRAYS_FOLDER
    assert sorted(p.name for p in kept.iterdir()) == sorted(data.SPLITS)
    written = {path: path.stat().st_mtime_ns for path in kept.rglob("*.npy")}
    data._CACHE.clear()  # as a new process would start
    again = data.load_split(OptarenaDigits, "train", str(tmp_path))
    assert {path: path.stat().st_mtime_ns for path in kept.rglob("*.npy")} == written
    for feature, array in first.items():
        np.testing.assert_array_equal(again[feature], array)


LOAD = """
import sys
from optarena.workloads import data
from optarena.workloads.datasets.graphs import OptarenaGraphs
arrays = data.load_split(OptarenaGraphs, "validation", sys.argv[1])
print(sum(float(a.sum()) for a in arrays.values()))
"""


def test_processes_loading_at_once_prepare_once_and_leave_one_complete_copy_of_the_arrays(tmp_path):
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent(LOAD))
    directory = tmp_path / "data"
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(directory)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert len({out for out, _ in outputs}) == 1
    # TFDS says so each time it prepares a dataset rather than reusing it.
    assert sum("downloaded and prepared" in err for _, err in outputs) == 1
    versions = list((directory / "optarena_graphs").iterdir())
    assert len(versions) == 1, "no half-written folder is left"
    assert sorted(p.name for p in (versions[0] / data.ARRAYS_FOLDER).iterdir()) == sorted(
        data.SPLITS
    )
