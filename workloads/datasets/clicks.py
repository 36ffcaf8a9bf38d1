"""Synthetic click logs from a fixed, documented generative model (a Criteo-like task).

Each example has 13 dense features ``x ~ N(0, I)`` and 8 categorical fields whose values
(100 buckets each) follow a Zipf law with exponent 1.1. From seed 0 the generator draws,
per field, a scalar effect ``a_f[v] ~ N(0, 0.5^2)`` and a 4-dimensional factor
``u_f[v] ~ N(0, 0.4^2 I)``, and dense weights ``w ~ N(0, 0.3^2 I)``. The click probability is

    p = sigmoid(b + w.x + sum_f a_f[c_f] + sum_{f<g} u_f[c_f].u_g[c_g]),  b = -1.2,

and the label is drawn from Bernoulli(p). The true ``p`` is stored too, so the Bayes-optimal
log loss of every split is known. 240,000 examples: 200,000 train, 20,000 validation and
20,000 test.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

NUM_DENSE = 13
NUM_FIELDS = 8
NUM_BUCKETS = 100
FACTOR_DIM = 4
ZIPF_EXPONENT = 1.1
BIAS = -1.2
SEED = 0
NUM_TRAIN, NUM_VALIDATION, NUM_TEST = 200_000, 20_000, 20_000


def make_clicks(count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``count`` examples of the generative model above, with their true click probability."""
    effects = rng.normal(0.0, 0.5, (NUM_FIELDS, NUM_BUCKETS))
    factors = rng.normal(0.0, 0.4, (NUM_FIELDS, NUM_BUCKETS, FACTOR_DIM))
    weights = rng.normal(0.0, 0.3, NUM_DENSE)
    popularity = 1.0 / np.arange(1, NUM_BUCKETS + 1) ** ZIPF_EXPONENT
    dense = rng.normal(0.0, 1.0, (count, NUM_DENSE)).astype(np.float32)
    categorical = np.stack(
        [
            rng.choice(NUM_BUCKETS, size=count, p=popularity / popularity.sum())
            for _ in range(NUM_FIELDS)
        ],
        axis=1,
    ).astype(np.int32)
    fields = np.arange(NUM_FIELDS)
    picked = factors[fields, categorical]  # (count, fields, dim)
    pairwise = np.einsum("nfd,ngd->nfg", picked, picked)
    interactions = (pairwise.sum(axis=(1, 2)) - np.trace(pairwise, axis1=1, axis2=2)) / 2
    logits = BIAS + dense @ weights + effects[fields, categorical].sum(axis=1) + interactions
    probability = 1.0 / (1.0 + np.exp(-logits))
    label = (rng.random(count) < probability).astype(np.float32)
    return {
        "dense": dense,
        "categorical": categorical,
        "label": label,
        "probability": probability.astype(np.float32),
    }


class OptarenaClicks(tfds.core.GeneratorBasedBuilder):
    """Dense and categorical features with a click label and its true probability."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Synthetic click logs (see the module docstring for the model).",
            features=tfds.features.FeaturesDict(
                {
                    "dense": tfds.features.Tensor(shape=(NUM_DENSE,), dtype=np.float32),
                    "categorical": tfds.features.Tensor(shape=(NUM_FIELDS,), dtype=np.int32),
                    "label": tfds.features.Tensor(shape=(), dtype=np.float32),
                    "probability": tfds.features.Tensor(shape=(), dtype=np.float32),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        examples = make_clicks(NUM_TRAIN + NUM_VALIDATION + NUM_TEST, np.random.default_rng(SEED))
        bounds = {
            "train": range(NUM_TRAIN),
            "validation": range(NUM_TRAIN, NUM_TRAIN + NUM_VALIDATION),
            "test": range(NUM_TRAIN + NUM_VALIDATION, NUM_TRAIN + NUM_VALIDATION + NUM_TEST),
        }
        return {name: self._generate_examples(examples, index) for name, index in bounds.items()}

    def _generate_examples(self, examples, indices):
        for i in indices:
            yield int(i), {key: value[i] for key, value in examples.items()}
