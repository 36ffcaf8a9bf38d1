"""Noisy 16x16 images of random shapes, for denoising: generated from a fixed seed.

Each clean image has a uniform background and one to three filled rectangles or ellipses,
every intensity in [0, 1]; its noisy version adds Gaussian noise (std 0.3) drawn from the
same seed, so every split is fixed. 6,000 images: 4,000 train, 1,000 validation, 1,000 test.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

SIZE = 16
NOISE_STD = 0.3
SEED = 0
NUM_TRAIN, NUM_VALIDATION, NUM_TEST = 4000, 1000, 1000


def make_images(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (clean, noisy) image pairs of shape (SIZE, SIZE, 1), float32."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    clean = np.empty((count, SIZE, SIZE), np.float32)
    for i in range(count):
        image = np.full((SIZE, SIZE), rng.uniform(0.0, 1.0), np.float32)
        for _ in range(rng.integers(1, 4)):
            top, left = rng.integers(0, SIZE - 4, size=2)
            height, width = rng.integers(4, SIZE // 2 + 1, size=2)
            if rng.random() < 0.5:
                inside = (
                    (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
                )
            else:
                center_r, center_c = top + height / 2, left + width / 2
                inside = ((rows - center_r) / (height / 2)) ** 2 + (
                    (cols - center_c) / (width / 2)
                ) ** 2 <= 1.0
            image[inside] = rng.uniform(0.0, 1.0)
        clean[i] = image
    noisy = clean + rng.normal(0.0, NOISE_STD, clean.shape).astype(np.float32)
    return clean[..., None], noisy[..., None]


class OptarenaShapes(tfds.core.GeneratorBasedBuilder):
    """Pairs of clean and noisy 16x16 shape images."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012

    def _info(self) -> tfds.core.DatasetInfo:
        image = tfds.features.Tensor(shape=(SIZE, SIZE, 1), dtype=np.float32)
        return tfds.core.DatasetInfo(
            builder=self,
            description="Random rectangles and ellipses on 16x16 images, with Gaussian noise.",
            features=tfds.features.FeaturesDict({"noisy": image, "clean": image}),
            supervised_keys=("noisy", "clean"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        clean, noisy = make_images(
            NUM_TRAIN + NUM_VALIDATION + NUM_TEST, np.random.default_rng(SEED)
        )
        bounds = {
            "train": range(NUM_TRAIN),
            "validation": range(NUM_TRAIN, NUM_TRAIN + NUM_VALIDATION),
            "test": range(NUM_TRAIN + NUM_VALIDATION, len(clean)),
        }
        return {
            name: self._generate_examples(clean, noisy, indices) for name, indices in bounds.items()
        }

    def _generate_examples(self, clean, noisy, indices):
        for i in indices:
            yield int(i), {"clean": clean[i], "noisy": noisy[i]}
