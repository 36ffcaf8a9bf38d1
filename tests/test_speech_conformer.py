"""speech_conformer: the utterances' generative model, the CTC decoding and edit distance
against rapidfuzz, the token error rate end to end, and the model's masking of padding."""

from __future__ import annotations

import itertools

import fast
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from optarena.workloads import data, registry
from optarena.workloads import speech_conformer as conformer
from optarena.workloads.datasets import utterances

NAME = "speech_conformer"


@pytest.fixture(scope="module")
def splits(data_dir):
    workload = registry.get(NAME)
    return {split: workload.load_split(split, data_dir) for split in data.SPLITS}


@pytest.fixture(scope="module")
def initialized():
    return fast.init(registry.get(NAME), jax.random.PRNGKey(0))


def reference_decode(logits: np.ndarray, num_frames: int) -> list[int]:
    """Greedy CTC decoding in plain Python: argmax, merge runs, drop blanks."""
    best = np.argmax(logits[:num_frames], axis=-1)
    return [int(token) for token, _ in itertools.groupby(best) if token != utterances.BLANK]


# ---------------------------------------------------------------------------------------------
# Data.


@pytest.mark.parametrize("split", data.SPLITS)
def test_every_utterance_follows_the_generative_model(splits, split):
    arrays = splits[split]
    assert len(arrays["labels"]) == utterances.SPLIT_SIZES[split]
    for frames, num_frames, labels, num_labels in zip(
        arrays["frames"], arrays["num_frames"], arrays["labels"], arrays["num_labels"], strict=True
    ):
        assert utterances.MIN_LABELS <= num_labels <= utterances.MAX_LABELS
        tokens = labels[:num_labels]
        assert np.all((tokens >= 1) & (tokens <= utterances.NUM_PHONEMES))
        assert np.all(tokens[1:] != tokens[:-1]), "neighbouring tokens must differ"
        assert np.all(labels[num_labels:] == utterances.BLANK)
        assert utterances.MIN_DURATION * num_labels <= num_frames
        assert num_frames <= utterances.MAX_DURATION * num_labels
        assert np.all(frames[num_frames:] == 0.0)
        assert np.all(np.any(frames[:num_frames] != 0.0, axis=-1))
        # A CTC alignment fits in the model's output frames (neighbours never repeat).
        assert int(conformer.output_frames(num_frames)) >= num_labels


def test_noiseless_frames_spell_their_transcript(monkeypatch):
    """Without noise, the runs of each frame's most similar template (by cosine) are the
    transcript: blending at boundaries and the gain leave every token recognizable."""
    monkeypatch.setattr(utterances, "NOISE", 0.0)
    table = utterances.templates()[1:]
    unit = table / np.linalg.norm(table, axis=-1, keepdims=True)
    rng = np.random.default_rng(5)
    spelled = 0
    for _ in range(200):
        example = utterances.make_utterance(rng, utterances.templates())
        signal = example["frames"][: example["num_frames"]]
        nearest = 1 + np.argmax(signal @ unit.T, axis=-1)
        runs = [int(token) for token, _ in itertools.groupby(nearest)]
        spelled += runs == example["labels"][: example["num_labels"]].tolist()
    assert spelled >= 190


def test_splits_differ_by_seed_only(splits):
    validation, test = splits["validation"], splits["test"]
    assert not np.array_equal(validation["labels"], test["labels"])
    for key in ("num_labels", "num_frames"):
        assert abs(validation[key].mean() - test[key].mean()) < 0.1 * validation[key].mean()
    assert validation["frames"].std() == pytest.approx(test["frames"].std(), rel=0.05)


def test_utterances_are_deterministic():
    table = utterances.templates()
    first = utterances.make_utterance(np.random.default_rng(3), table)
    again = utterances.make_utterance(np.random.default_rng(3), table)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])


# ---------------------------------------------------------------------------------------------
# Decoding and edit distance.


def test_edit_distance_matches_rapidfuzz():
    rng = np.random.default_rng(0)
    hyp_len, ref_len = 20, utterances.MAX_LABELS
    distance = fast.fast_jit(jax.vmap(conformer.edit_distance))
    count = 500
    hypotheses = rng.integers(1, 5, size=(count, hyp_len))
    references = rng.integers(1, 5, size=(count, ref_len))
    hyp_lengths = rng.integers(0, hyp_len + 1, size=count)
    ref_lengths = rng.integers(0, ref_len + 1, size=count)
    got = np.asarray(distance(hypotheses, hyp_lengths, references, ref_lengths))
    want = [
        Levenshtein.distance(list(h[:hl]), list(r[:rl]))
        for h, hl, r, rl in zip(hypotheses, hyp_lengths, references, ref_lengths, strict=True)
    ]
    np.testing.assert_array_equal(got, want)


def test_edit_distance_ignores_tokens_past_the_lengths():
    hypothesis = jnp.array([1, 2, 3, 9, 9])
    reference = jnp.array([1, 3, 7, 7])
    assert int(conformer.edit_distance(hypothesis, 3, reference, 2)) == 1
    assert int(conformer.edit_distance(hypothesis, 0, reference, 2)) == 2
    assert int(conformer.edit_distance(hypothesis, 3, reference, 0)) == 3


def test_greedy_decode_merges_repeats_drops_blanks_and_stops_at_the_length():
    best = [0, 3, 3, 0, 3, 5, 5, 5, 0, 2, 4]
    logits = jax.nn.one_hot(jnp.array(best), utterances.NUM_CLASSES)
    tokens, length = conformer.greedy_decode(logits, 10)
    assert int(length) == 4
    assert tokens[:4].tolist() == [3, 3, 5, 2]
    assert np.all(np.asarray(tokens[4:]) == utterances.BLANK)


def test_greedy_decode_matches_a_python_reference():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(200, 20, utterances.NUM_CLASSES)).astype(np.float32)
    logits[..., utterances.BLANK] += 1.0  # blanks as common as in a trained model
    num_frames = rng.integers(0, 21, size=200)
    tokens, lengths = fast.fast_jit(jax.vmap(conformer.greedy_decode))(logits, num_frames)
    for i in range(200):
        want = reference_decode(logits[i], num_frames[i])
        assert int(lengths[i]) == len(want)
        assert np.asarray(tokens[i, : len(want)]).tolist() == want


def test_token_error_rate_matches_rapidfuzz_on_the_decoded_split(splits, initialized):
    workload = registry.get(NAME)
    params, model_state = initialized
    arrays = {key: value[:300] for key, value in splits["validation"].items()}
    batches = data.eval_batches(arrays, 128)
    sums_fn = fast.fast_jit(workload.eval_sums)
    parts = [sums_fn(params, model_state, batch) for batch in batches]
    sums = {key: float(sum(float(p[key]) for p in parts)) for key in parts[0]}
    got = workload.metrics(sums)["token_error_rate"]

    logits, mask = conformer.Conformer().apply(
        {"params": params}, arrays["frames"], arrays["num_frames"], train=False
    )
    edits = tokens = 0
    for i in range(300):
        hypothesis = reference_decode(np.asarray(logits[i]), int(mask[i].sum()))
        reference = arrays["labels"][i, : arrays["num_labels"][i]].tolist()
        edits += Levenshtein.distance(hypothesis, reference)
        tokens += len(reference)
    assert got == pytest.approx(edits / tokens, rel=1e-6)
    assert sums["tokens"] == tokens


# ---------------------------------------------------------------------------------------------
# Model.


def test_logits_have_one_row_per_output_frame(splits, initialized):
    params, _ = initialized
    arrays = splits["validation"]
    logits, mask = conformer.Conformer().apply(
        {"params": params}, arrays["frames"][:8], arrays["num_frames"][:8], train=False
    )
    assert logits.shape == (8, utterances.MAX_FRAMES // 2, utterances.NUM_CLASSES)
    np.testing.assert_array_equal(mask.sum(axis=1), (arrays["num_frames"][:8] + 1) // 2)


def test_padding_frames_do_not_change_real_outputs(splits, initialized):
    params, _ = initialized
    arrays = splits["validation"]
    frames, num_frames = arrays["frames"][:16], arrays["num_frames"][:16]
    padding = np.arange(utterances.MAX_FRAMES)[None, :, None] >= num_frames[:, None, None]
    noise = np.random.default_rng(2).normal(size=frames.shape).astype(np.float32) * 10.0
    model = conformer.Conformer()
    clean, mask = model.apply({"params": params}, frames, num_frames, train=False)
    noisy, _ = model.apply({"params": params}, frames + noise * padding, num_frames, train=False)
    real = np.asarray(mask)
    assert not real.all(), "some utterance must have padding for the test to mean anything"
    np.testing.assert_allclose(np.asarray(noisy)[real], np.asarray(clean)[real], atol=1e-5)


def test_depthwise_conv_equals_flax_grouped_conv():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 20, 8))
    ours = conformer.DepthwiseConv(7)
    params = ours.init(jax.random.PRNGKey(1), x)
    kernel = params["params"]["kernel"]
    flax_conv = nn.Conv(8, (7,), feature_group_count=8, padding="SAME", use_bias=False)
    flax_params = {"params": {"kernel": kernel[:, None, :]}}
    np.testing.assert_allclose(
        ours.apply(params, x), flax_conv.apply(flax_params, x), rtol=1e-5, atol=1e-5
    )


def test_variant_changes_only_the_activation():
    base = registry.get(NAME)
    variant = registry.get("speech_conformer_gelu")
    assert variant.spec.base == NAME
    for field in ("budget_sec", "step_hint", "eval_every_steps", "batch_size", "dataset"):
        assert getattr(variant.spec, field) == getattr(base.spec, field)
    base_params, _ = fast.init(base, jax.random.PRNGKey(0))
    variant_params, _ = fast.init(variant, jax.random.PRNGKey(0))
    jax.tree.map(np.testing.assert_array_equal, base_params, variant_params)
