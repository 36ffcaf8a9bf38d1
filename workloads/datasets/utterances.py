"""Synthetic speech: token sequences rendered as noisy spectral frames, for CTC recognition.

The generative model, with ``rng = default_rng(seed)`` per split (train 0, validation 1,
test 2; the test split differs from validation by its seed only):
  - 16 "phonemes" (tokens 1-16; 0 is CTC's blank) each own a spectral template of 16
    features, drawn once from N(0, 1) with seed `TEMPLATE_SEED` and shared by every split;
  - an utterance has 3-8 tokens, uniform over the phonemes with neighbours always different
    (so an alignment fits after the model halves the frame rate);
  - each token lasts 2-5 frames (uniform); a frame is its token's template, smoothed along
    time by the kernel (1/4, 1/2, 1/4) so neighbouring tokens blend at their boundary, scaled
    by a per-utterance gain drawn from U(0.7, 1.3), plus N(0, `NOISE`^2) per feature;
  - frames are zero-padded to 40, tokens to 8; ``num_frames`` and ``num_labels`` carry the
    true lengths.
10,000 utterances: 8,000 train, 1,000 validation, 1,000 test (the noise makes them distinct).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

NUM_PHONEMES = 16
BLANK = 0
NUM_CLASSES = NUM_PHONEMES + 1
"""Output classes of a recognizer: the blank and every phoneme."""
NUM_FEATURES = 16
MIN_LABELS, MAX_LABELS = 3, 8
MIN_DURATION, MAX_DURATION = 2, 5
MAX_FRAMES = MAX_LABELS * MAX_DURATION
NOISE = 1.0
GAIN_RANGE = (0.7, 1.3)
SMOOTHING = np.array([0.25, 0.5, 0.25], np.float32)
TEMPLATE_SEED = 1234
SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}
SPLIT_SIZES = {"train": 8000, "validation": 1000, "test": 1000}


def templates() -> np.ndarray:
    """The ``(NUM_CLASSES, NUM_FEATURES)`` spectral templates; row 0 (the blank) is unused."""
    table = np.random.default_rng(TEMPLATE_SEED).normal(size=(NUM_CLASSES, NUM_FEATURES))
    table[BLANK] = 0.0
    return table.astype(np.float32)


def make_utterance(rng: np.random.Generator, table: np.ndarray) -> dict[str, np.ndarray]:
    """One padded utterance: frames, labels and their true lengths."""
    num_labels = int(rng.integers(MIN_LABELS, MAX_LABELS + 1))
    tokens = [int(rng.integers(1, NUM_PHONEMES + 1))]
    while len(tokens) < num_labels:
        # Drawn from the 15 phonemes other than the previous one: neighbours always differ.
        step = int(rng.integers(1, NUM_PHONEMES))
        tokens.append((tokens[-1] - 1 + step) % NUM_PHONEMES + 1)
    durations = rng.integers(MIN_DURATION, MAX_DURATION + 1, size=num_labels)
    clean = np.repeat(table[tokens], durations, axis=0)
    padded = np.pad(clean, ((1, 1), (0, 0)), mode="edge")
    smooth = sum(w * padded[i : i + len(clean)] for i, w in enumerate(SMOOTHING))
    gain = rng.uniform(*GAIN_RANGE)
    num_frames = len(clean)
    frames = np.zeros((MAX_FRAMES, NUM_FEATURES), np.float32)
    frames[:num_frames] = gain * smooth + NOISE * rng.normal(size=clean.shape)
    labels = np.zeros(MAX_LABELS, np.int32)
    labels[:num_labels] = tokens
    return {
        "frames": frames,
        "num_frames": np.int32(num_frames),
        "labels": labels,
        "num_labels": np.int32(num_labels),
    }


class OptarenaUtterances(tfds.core.GeneratorBasedBuilder):
    """Padded noisy frame sequences with their phoneme transcripts."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012

    def _info(self) -> tfds.core.DatasetInfo:
        tensor = tfds.features.Tensor
        return tfds.core.DatasetInfo(
            builder=self,
            description="Synthetic utterances: phoneme templates with durations, blur and noise.",
            features=tfds.features.FeaturesDict(
                {
                    "frames": tensor(shape=(MAX_FRAMES, NUM_FEATURES), dtype=np.float32),
                    "num_frames": tensor(shape=(), dtype=np.int32),
                    "labels": tensor(shape=(MAX_LABELS,), dtype=np.int32),
                    "num_labels": tensor(shape=(), dtype=np.int32),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(split) for split in SPLIT_SEEDS}

    def _generate_examples(self, split: str):
        rng = np.random.default_rng(SPLIT_SEEDS[split])
        table = templates()
        for i in range(SPLIT_SIZES[split]):
            yield i, make_utterance(rng, table)
