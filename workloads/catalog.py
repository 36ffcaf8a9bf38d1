"""Datasets from the TFDS catalog that need a download (MNIST, CIFAR-10...).

They are read exactly like optarena's own datasets, from ``array_record`` files in the data
directory, but preparing them downloads the original files and encodes images, which needs
TensorFlow and internet access: ``pip install "optarena[real-data]"`` then
``optarena data prepare WORKLOAD --download``. Without the files, loading says so in one line.
Their pipelines and models are tested with ``tfds.testing.mock_data``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from optarena.errors import UserError
from optarena.workloads import data
from optarena.workloads.base import Arrays

TRAIN_TEST_SPLITS = {"train": "train[:84%]", "validation": "train[84%:]", "test": "test"}
"""For catalog datasets with only train and test: validation is the last 16% of train."""


class DataNotPreparedError(UserError, RuntimeError):
    """A catalog dataset is not in the data directory (it cannot be made offline)."""


def split_loader(name: str, splits: Mapping[str, str], features: tuple[str, ...]):
    """``load_split(split, data_dir)`` reading ``features`` of TFDS catalog dataset ``name``.

    ``splits`` maps optarena's train/validation/test to TFDS split strings, e.g.
    ``{"train": "train[:84%]", "validation": "train[84%:]", "test": "test"}``.
    """

    def load_split(split: str, data_dir: str) -> Arrays:
        import tensorflow_datasets as tfds

        if split not in data.SPLITS:
            raise ValueError(f"split must be one of {data.SPLITS}, got {split=}")
        try:
            source = tfds.data_source(name, split=splits[split], data_dir=data_dir, download=False)
        except Exception as error:
            raise DataNotPreparedError(
                f"TFDS dataset {name!r} is not prepared in {data_dir} ({type(error).__name__}); "
                f'on a machine with internet: pip install "optarena[real-data]" && '
                f"optarena data prepare <workload> --download --data-dir {data_dir}"
            ) from error
        # One by one: TFDS's mock data sources, which stand in for these in tests, have no
        # batched read.
        arrays = data.read_all(source, batched=False)
        return {feature: arrays[feature] for feature in features}

    return load_split


def download_and_prepare(name: str, data_dir: str) -> None:
    """Download and prepare catalog dataset ``name`` as array_record (needs TensorFlow)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
        builder.download_and_prepare()
    except Exception as error:
        raise DataNotPreparedError(
            f"downloading TFDS dataset {name!r} failed ({type(error).__name__}: {error}); it needs "
            'internet access and TensorFlow: pip install "optarena[real-data]"'.splitlines()[0]
        ) from error


def prepare(
    workloads: Sequence[str], data_dir: str, *, download: bool = False
) -> Iterator[tuple[str, dict[str, int]]]:
    """Prepare the datasets of ``workloads`` (default: every offline one) in ``data_dir``.

    Offline datasets are made here; catalog datasets are downloaded when ``download`` is set,
    and otherwise must already be there. Yields ``("DATASET (WORKLOAD)", examples per split)``
    as each is ready; an unknown name fails before anything is prepared.
    """
    from optarena.workloads import registry, suites

    chosen = [registry.get(name) for name in workloads or suites.workloads("cpu")]
    for workload in chosen:
        if not workload.spec.offline and download:
            download_and_prepare(workload.spec.dataset, data_dir)
        sizes = {
            split: data.num_examples(workload.load_split(split, data_dir)) for split in data.SPLITS
        }
        yield f"{workload.spec.dataset} ({workload.name})", sizes
