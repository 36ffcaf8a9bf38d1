"""Numbers written in English words, translated into French words: a generated translation task.

Each example is a whole number ``n`` in [0, 999,999], drawn without replacement by a fixed
permutation (seed 0): the first 500 numbers are the validation split, the next 500 the test
split and the next 5,000 the training split, so no number (hence no source sentence)
appears in two splits and every held-out number is one the model never saw. The sentences are
``num2words`` (run only when the dataset is prepared) in English and in French, split into word
tokens at spaces, hyphens and commas, e.g. 71,080 is ``seventy one thousand and eighty`` ->
``soixante et onze mille quatre vingts``. French reorders and regroups (70-99 count in
twenties: 71 = 60 + 11, 97 = 4 x 20 + 17), inserts ``et`` before ``un``/``onze`` in 21-71,
writes ``vingts``/``cents`` in the plural only when nothing follows, and drops ``un`` before
``mille`` and ``cent``: no token maps to a token one to one.

Features: ``source`` (English tokens, zero-padded to `SOURCE_LENGTH`) with ``source_length``,
``target`` (French tokens then `EOS`, zero-padded to `TARGET_LENGTH`) with ``target_length``
(``EOS`` included), and the ``number`` itself.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

PAD, BOS, EOS = 0, 1, 2
ENGLISH_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    "hundred", "thousand", "and",
)  # fmt: skip
FRENCH_WORDS = (
    "zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix",
    "onze", "douze", "treize", "quatorze", "quinze", "seize", "vingt", "vingts", "trente",
    "quarante", "cinquante", "soixante", "cent", "cents", "mille", "et",
)  # fmt: skip
VOCABULARY = ("<pad>", "<bos>", "<eos>", *dict.fromkeys(ENGLISH_WORDS + FRENCH_WORDS))
"""Every token, by id: one vocabulary for both languages (``six`` is a word of each)."""
VOCAB_SIZE = len(VOCABULARY)
TOKEN_IDS = {word: i for i, word in enumerate(VOCABULARY)}
SOURCE_LENGTH = 11
"""The longest English sentence, e.g. 777,777, in words."""
TARGET_LENGTH = 14
"""The longest French sentence (13 words, e.g. 999,999) and its ``EOS``."""
MAX_NUMBER = 999_999
SEED = 0
NUM_TRAIN, NUM_VALIDATION, NUM_TEST = 5_000, 500, 500


def words(number: int, lang: str) -> list[str]:
    """``number`` written out in ``lang`` by ``num2words``, as word tokens."""
    from num2words import num2words

    return num2words(number, lang=lang).replace("-", " ").replace(",", " ").split()


def encode(tokens: list[str], length: int) -> np.ndarray:
    """Token ids of ``tokens``, zero-padded to ``length``."""
    if len(tokens) > length:
        raise ValueError(f"{len(tokens)} tokens do not fit in {length=}: {tokens}")
    ids = np.full(length, PAD, np.int32)
    ids[: len(tokens)] = [TOKEN_IDS[token] for token in tokens]
    return ids


def decode(ids: np.ndarray) -> list[str]:
    """The words of a token-id sequence, up to its first ``EOS`` or padding."""
    out = []
    for i in np.asarray(ids).tolist():
        if i in (PAD, EOS):
            break
        out.append(VOCABULARY[i])
    return out


def make_example(number: int) -> dict[str, np.ndarray]:
    """The padded English-to-French example for ``number``."""
    source = words(number, "en")
    target = [*words(number, "fr"), VOCABULARY[EOS]]
    return {
        "source": encode(source, SOURCE_LENGTH),
        "source_length": np.int64(len(source)),
        "target": encode(target, TARGET_LENGTH),
        "target_length": np.int64(len(target)),
        "number": np.int64(number),
    }


def split_numbers() -> dict[str, np.ndarray]:
    """The numbers of each split: disjoint slices of one seeded permutation of 0-999,999."""
    order = np.random.default_rng(SEED).permutation(MAX_NUMBER + 1)
    bounds = np.cumsum([0, NUM_VALIDATION, NUM_TEST, NUM_TRAIN])
    names = ("validation", "test", "train")
    return {name: order[bounds[i] : bounds[i + 1]] for i, name in enumerate(names)}


class OptarenaNumbers(tfds.core.GeneratorBasedBuilder):
    """English number words paired with their French translation, padded, with lengths."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012

    def _info(self) -> tfds.core.DatasetInfo:
        tensor = tfds.features.Tensor
        return tfds.core.DatasetInfo(
            builder=self,
            description="Numbers 0-999,999 in English words translated into French words.",
            features=tfds.features.FeaturesDict(
                {
                    "source": tensor(shape=(SOURCE_LENGTH,), dtype=np.int32),
                    "source_length": tensor(shape=(), dtype=np.int64),
                    "target": tensor(shape=(TARGET_LENGTH,), dtype=np.int32),
                    "target_length": tensor(shape=(), dtype=np.int64),
                    "number": tensor(shape=(), dtype=np.int64),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {name: self._generate_examples(numbers) for name, numbers in split_numbers().items()}

    def _generate_examples(self, numbers):
        for number in numbers:
            yield int(number), make_example(int(number))
