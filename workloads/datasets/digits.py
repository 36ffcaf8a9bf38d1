"""scikit-learn's bundled 8x8 handwritten digits (1,797 images) as a TFDS builder.

The images ship inside scikit-learn, so nothing is downloaded. A fixed permutation
(seed 0) splits them into 1,197 train, 300 validation and 300 test images.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = 0
NUM_VALIDATION = 300
NUM_TEST = 300


class OptarenaDigits(tfds.core.GeneratorBasedBuilder):
    """8x8 digits, pixels scaled to [0, 1] and flattened to 64 features."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="scikit-learn load_digits, 8x8 grey images of 10 digit classes.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(64,), dtype=np.float32),
                    "label": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = (digits.data / 16.0).astype(np.float32)
        labels = digits.target.astype(np.int64)
        order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
        test, validation = order[:NUM_TEST], order[NUM_TEST : NUM_TEST + NUM_VALIDATION]
        train = order[NUM_TEST + NUM_VALIDATION :]
        return {
            "train": self._generate_examples(images, labels, train),
            "validation": self._generate_examples(images, labels, validation),
            "test": self._generate_examples(images, labels, test),
        }

    def _generate_examples(self, images, labels, indices):
        for i in indices:
            yield int(i), {"image": images[i], "label": labels[i]}
