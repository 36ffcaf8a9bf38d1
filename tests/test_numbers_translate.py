"""What conformance cannot see in `numbers_translate`: the data's generative model, the masks,
the cached greedy decoding and the sequence error rate.

The data are checked against parsers of English and French number words written here, not
with ``num2words``, so that a sentence that does not say its number fails.
"""

from __future__ import annotations

import fast
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optarena.workloads import data, numbers_translate, numbers_translate_glu
from optarena.workloads.datasets import numbers
from optarena.workloads.numbers_translate import Translator, greedy_decode, shift_right

WORKLOAD = numbers_translate.WORKLOAD
SPLITS = ("train", "validation", "test")

UNITS = "zero one two three four five six seven eight nine".split()  # noqa: SIM905
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()  # noqa: SIM905
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()  # noqa: SIM905
ENGLISH_VALUES = {word: value for value, word in enumerate(UNITS + TEENS)} | {
    word: 10 * value for value, word in enumerate(TENS, start=2)
}
FRENCH_VALUES = {
    "zéro": 0, "un": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7,
    "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14,
    "quinze": 15, "seize": 16, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60,
}  # fmt: skip


def parse_english(tokens: list[str]) -> int:
    """The number an English sentence says: units add, ``hundred`` scales, ``thousand`` closes."""
    total, current = 0, 0
    for token in tokens:
        if token == "hundred":
            current *= 100
        elif token == "thousand":
            total, current = total + current * 1000, 0
        elif token != "and":
            current += ENGLISH_VALUES[token]
    return total + current


def parse_french(tokens: list[str]) -> int:
    """The number a French sentence says: ``quatre vingt(s)`` is 80, ``cent(s)`` and ``mille``
    scale what precedes them (1 when nothing does), ``et`` is silent."""
    total, current, previous = 0, 0, None
    for token in tokens:
        if token in ("vingt", "vingts"):
            current += 80 - 4 if previous == "quatre" else 20
        elif token in ("cent", "cents"):
            current = max(current, 1) * 100
        elif token == "mille":
            total, current = total + max(current, 1) * 1000, 0
        elif token != "et":
            current += FRENCH_VALUES[token]
        previous = token
    return total + current


@pytest.fixture(scope="module")
def splits(data_dir):
    workload = WORKLOAD
    return {split: workload.load_split(split, data_dir) for split in SPLITS}


@pytest.fixture(scope="module")
def params():
    return fast.init(WORKLOAD, jax.random.PRNGKey(0))[0]


def test_parsers_read_the_words_of_known_numbers():
    french = {
        71: "soixante et onze",
        80: "quatre vingts",
        97: "quatre vingt dix sept",
        180: "cent quatre vingts",
        200: "deux cents",
        21_000: "vingt et un mille",
        80_000: "quatre vingt mille",
        184_000: "cent quatre vingt quatre mille",
        1_001: "mille un",
    }
    for number, sentence in french.items():
        assert parse_french(sentence.split()) == number, sentence
    english = {
        105_200: "one hundred and five thousand two hundred",
        71_080: "seventy one thousand and eighty",
    }
    for number, sentence in english.items():
        assert parse_english(sentence.split()) == number, sentence


@pytest.mark.parametrize("split", SPLITS)
def test_every_example_says_its_number_in_both_languages(splits, split):
    arrays = splits[split]
    for i in range(data.num_examples(arrays)):
        number = int(arrays["number"][i])
        source, target = arrays["source"][i], arrays["target"][i]
        source_length, target_length = (
            int(arrays["source_length"][i]),
            int(arrays["target_length"][i]),
        )
        assert 0 <= number <= numbers.MAX_NUMBER
        assert 1 <= source_length <= numbers.SOURCE_LENGTH
        assert 2 <= target_length <= numbers.TARGET_LENGTH
        # Real tokens, then padding; the target's last real token is EOS.
        assert (source[:source_length] > numbers.EOS).all() and (source[source_length:] == 0).all()
        assert (target[: target_length - 1] > numbers.EOS).all()
        assert target[target_length - 1] == numbers.EOS and (target[target_length:] == 0).all()
        english = numbers.decode(source)
        french = numbers.decode(target)
        assert set(english) <= set(numbers.ENGLISH_WORDS), english
        assert set(french) <= set(numbers.FRENCH_WORDS), french
        assert parse_english(english) == number, english
        assert parse_french(french) == number, french


def test_splits_hold_out_whole_numbers(splits):
    seen = {split: set(splits[split]["number"].tolist()) for split in SPLITS}
    assert len(seen["train"]) == numbers.NUM_TRAIN
    assert len(seen["validation"]) == numbers.NUM_VALIDATION
    assert len(seen["test"]) == numbers.NUM_TEST
    assert not seen["train"] & seen["validation"]
    assert not seen["train"] & seen["test"]
    assert not seen["validation"] & seen["test"]
    sentences = {split: {a.tobytes() for a in splits[split]["source"]} for split in SPLITS}
    assert not sentences["train"] & (sentences["validation"] | sentences["test"])


def test_the_longest_sentences_fit():
    for number in (777_777, 999_999, 797_797, 0, 80, 200):
        example = numbers.make_example(number)
        assert numbers.decode(example["source"]) == numbers.words(number, "en")
        assert numbers.decode(example["target"]) == numbers.words(number, "fr")
    assert int(numbers.make_example(777_777)["source_length"]) == numbers.SOURCE_LENGTH
    assert int(numbers.make_example(999_999)["target_length"]) == numbers.TARGET_LENGTH


def batch_of(arrays, size=8):
    return {key: jnp.asarray(value[:size]) for key, value in arrays.items()}


def test_padding_never_changes_a_real_position(splits, params):
    model, batch = Translator(), batch_of(splits["validation"])
    source, target = batch["source"], shift_right(batch["target"])
    lengths = batch["source_length"]

    @fast.fast_jit
    def logits(source, decoder_input):
        return model.apply({"params": params}, source, lengths, decoder_input, train=False)

    reference = logits(source, target)
    junk = jnp.where(jnp.arange(numbers.SOURCE_LENGTH) >= lengths[:, None], 7, source)
    assert not jnp.array_equal(junk, source)
    np.testing.assert_allclose(logits(junk, target), reference, atol=1e-5)
    # The decoder is causal: changing position 5 changes no earlier output, and some later one.
    changed = logits(source, target.at[:, 5].set(9))
    np.testing.assert_allclose(changed[:, :5], reference[:, :5], atol=1e-5)
    assert not np.allclose(changed[:, 5:], reference[:, 5:], atol=1e-5)


def test_loss_ignores_target_padding(splits, params):
    workload = WORKLOAD
    batch = dict(batch_of(splits["validation"]))
    loss = workload.loss(params, {}, batch, jax.random.PRNGKey(0), train=True)[0]
    length = batch["target_length"][:, None]
    padded = jnp.arange(numbers.TARGET_LENGTH) >= length
    batch["target"] = jnp.where(padded, 5, batch["target"])
    again = workload.loss(params, {}, batch, jax.random.PRNGKey(0), train=True)[0]
    np.testing.assert_allclose(again, loss, rtol=1e-6)


def naive_greedy_decode(params, source, lengths) -> np.ndarray:
    """Greedy decoding without a cache: rerun the whole decoder for every new token."""
    model = Translator()
    apply = fast.fast_jit(
        lambda params, decoder_input: model.apply(
            {"params": params}, source, lengths, decoder_input, train=False
        )
    )
    decoder_input = np.zeros((len(source), numbers.TARGET_LENGTH), np.int32)
    decoder_input[:, 0] = numbers.BOS
    out = np.zeros_like(decoder_input)
    for t in range(numbers.TARGET_LENGTH):
        logits = apply(params, decoder_input)
        out[:, t] = np.argmax(np.asarray(logits[:, t]), axis=-1)
        if t + 1 < numbers.TARGET_LENGTH:
            decoder_input[:, t + 1] = out[:, t]
    return out


def test_cached_greedy_decoding_matches_recomputing_the_decoder(splits, params):
    batch = batch_of(splits["validation"], 16)
    cached = fast.fast_jit(greedy_decode, static_argnums=0)(
        Translator(), params, batch["source"], batch["source_length"]
    )
    naive = naive_greedy_decode(params, batch["source"], batch["source_length"])
    np.testing.assert_array_equal(np.asarray(cached), naive)
    assert len(np.unique(naive)) > 1, "an untrained model should not emit one token everywhere"


def test_sequence_error_rate_counts_real_positions_only(splits, params):
    """Targets set to the model's own decoding are right; a change after ``target_length`` is
    ignored, a change at a real position (the last one included) makes a sentence wrong."""
    workload = WORKLOAD
    batch = dict(batch_of(splits["validation"], 6))
    decoded = np.asarray(
        fast.fast_jit(greedy_decode, static_argnums=0)(
            Translator(), params, batch["source"], batch["source_length"]
        )
    )
    lengths = np.array([3, 5, 14, 4, 6, 2])
    target = decoded.copy()
    target[0, 3:] = 0  # padding after the real positions: still right
    target[1, 4] = (decoded[1, 4] + 1) % numbers.VOCAB_SIZE  # its last real token: wrong
    target[3, 0] = (decoded[3, 0] + 1) % numbers.VOCAB_SIZE  # its first token: wrong
    target[4, 9] = (decoded[4, 9] + 1) % numbers.VOCAB_SIZE  # past its length: still right
    batch["target"] = jnp.asarray(target)
    batch["target_length"] = jnp.asarray(lengths)
    batch[data.WEIGHT_KEY] = jnp.asarray([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    eval_sums = fast.fast_jit(workload.eval_sums)
    sums = eval_sums(params, {}, batch)
    assert float(sums["count"]) == 5.0
    assert float(sums["errors"]) == 2.0
    batch[data.WEIGHT_KEY] = jnp.asarray([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    assert float(eval_sums(params, {}, batch)["errors"]) == 0.0
    metrics = workload.metrics({k: float(v) for k, v in sums.items()})
    assert metrics["error_rate"] == pytest.approx(2.0 / 5.0)


def test_the_variant_changes_only_the_model():
    base, variant = WORKLOAD, numbers_translate_glu.WORKLOAD
    assert variant.spec.base == base.spec.name
    for field in ("dataset", "budget_sec", "step_hint", "eval_every_steps", "batch_size"):
        assert getattr(variant.spec, field) == getattr(base.spec, field), field
    base_params = jax.eval_shape(base.init, jax.random.PRNGKey(0))[0]
    variant_params = jax.eval_shape(variant.init, jax.random.PRNGKey(0))[0]
    count = lambda tree: sum(leaf.size for leaf in jax.tree.leaves(tree))  # noqa: E731
    assert count(variant_params) > count(base_params), "GLU adds a gate projection per MLP"
