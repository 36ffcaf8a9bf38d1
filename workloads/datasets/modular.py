"""Modular addition ``(a + b) mod 97`` as sequences ``[a, b, =]``: the grokking setting.

All 97 x 97 pairs are enumerated; a fixed permutation (seed 0) gives half of them to
training, as in Power et al. (2022), and splits the other half evenly into validation
and test.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

MODULUS = 97
EQUALS_TOKEN = MODULUS
VOCAB_SIZE = MODULUS + 1
SEQUENCE_LENGTH = 3
TRAIN_FRACTION = 0.5
SPLIT_SEED = 0


class OptarenaModularAddition(tfds.core.GeneratorBasedBuilder):
    """Token sequences ``[a, b, =]`` labelled with ``(a + b) mod 97``."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Every pair (a, b) of residues mod 97 with the label (a + b) mod 97.",
            features=tfds.features.FeaturesDict(
                {
                    "tokens": tfds.features.Tensor(shape=(SEQUENCE_LENGTH,), dtype=np.int32),
                    "label": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            supervised_keys=("tokens", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        a, b = np.divmod(np.arange(MODULUS * MODULUS), MODULUS)
        order = np.random.default_rng(SPLIT_SEED).permutation(len(a))
        num_train = int(TRAIN_FRACTION * len(a))
        num_validation = (len(a) - num_train) // 2
        splits = {
            "train": order[:num_train],
            "validation": order[num_train : num_train + num_validation],
            "test": order[num_train + num_validation :],
        }
        return {name: self._generate_examples(a, b, index) for name, index in splits.items()}

    def _generate_examples(self, a, b, indices):
        for i in indices:
            tokens = np.array([a[i], b[i], EQUALS_TOKEN], np.int32)
            yield int(i), {"tokens": tokens, "label": np.int64((a[i] + b[i]) % MODULUS)}
