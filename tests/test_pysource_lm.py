"""What conformance cannot check on `pysource_lm`: the corpus's construction, the exactness of
its per-byte cross-entropy against scipy, and the model's causality and padding."""

from __future__ import annotations

import sys

import fast
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from optarena.workloads import data, pysource_lm, pysource_lm_glu
from optarena.workloads.datasets import python_source as source

TEXT = b"import os\n\ndef f(x):\n    return x + 1\n" * 7
"""A file longer than three windows whose length is not a multiple of the stride."""


def rejoin(tokens: np.ndarray, lengths: np.ndarray) -> bytes:
    """The text a file's consecutive windows cover (each window repeats its predecessor's last
    byte)."""
    pieces = [bytes(tokens[0, : lengths[0]])]
    pieces += [bytes(row[1:length]) for row, length in zip(tokens[1:], lengths[1:], strict=True)]
    return b"".join(pieces)


def test_windows_cover_a_file_and_predict_each_byte_once():
    tokens, lengths = source.windows(TEXT)
    assert tokens.shape == (len(lengths), source.WINDOW) and tokens.dtype == np.uint8
    assert rejoin(tokens, lengths) == TEXT
    assert int(np.sum(lengths - 1)) == len(TEXT) - 1  # targets: every byte but the first
    assert np.all(lengths[:-1] == source.WINDOW) and 2 <= lengths[-1] <= source.WINDOW
    for row, length in zip(tokens, lengths, strict=True):
        assert not row[length:].any(), "padding after a file's end must be zeros"


def test_windows_of_tiny_files():
    assert len(source.windows(b"")[1]) == 0 and len(source.windows(b"x")[1]) == 0
    tokens, lengths = source.windows(b"xy")
    assert lengths.tolist() == [2] and bytes(tokens[0, :2]) == b"xy"


def test_split_depends_on_the_name_only(tmp_path):
    names = [f"module_{i}.py" for i in range(200)]
    for folder, fill in (("a", b"x = 1\n"), ("b", b"y = 2\n" * 50)):
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / name).write_bytes(fill)
    assert [source.split_of(n) for n in names] == [source.split_of(n) for n in names]
    counts = {s: sum(source.split_of(n) == s for n in names) for s in data.SPLITS}
    assert counts["train"] > counts["validation"] > 0 and counts["test"] > 0
    files_a = source.corpus_files(tmp_path / "a")
    assert [p.name for p in files_a] == sorted(names)
    assert source.corpus_sha256(files_a) != source.corpus_sha256(
        source.corpus_files(tmp_path / "b")
    )


def test_corpus_selection(tmp_path):
    (tmp_path / "_private.py").write_bytes(b"a = 1\n")
    (tmp_path / "big.py").write_bytes(b"#" * source.MAX_FILE_BYTES)
    (tmp_path / "notes.txt").write_bytes(b"text\n")
    (tmp_path / "b.py").write_bytes(b"b = 1\n")
    (tmp_path / "a.py").write_bytes(b"a = 1\n")
    assert [p.name for p in source.corpus_files(tmp_path)] == ["a.py", "b.py"]


def test_splits_hold_whole_files_and_drop_repeated_held_out_windows(tmp_path):
    names = [f"m{i}.py" for i in range(60)]
    by_split = {s: [n for n in names if source.split_of(n) == s] for s in data.SPLITS}
    assert all(by_split.values())
    for name in names:
        body = TEXT if source.split_of(name) != "train" else name.encode() * 40 + b"\n"
        (tmp_path / name).write_bytes(body)
    splits = source.build_splits(source.corpus_files(tmp_path))
    train_tokens, train_lengths = splits["train"]
    expected = sum(len(source.windows((tmp_path / n).read_bytes())[1]) for n in by_split["train"])
    assert len(train_lengths) == expected
    # Every held-out file has the same text: validation keeps every 4th window of each of its
    # files, and test, whose windows all occur in validation, keeps none.
    kept = source.windows(TEXT)[0][:: source.HELD_OUT_STRIDE]
    assert len(splits["validation"][1]) == len(by_split["validation"]) * len(kept)
    assert len(splits["test"][1]) == 0
    assert not {r.tobytes() for r in train_tokens} & {r.tobytes() for r in kept}


def test_dataset_identity_follows_the_interpreter(data_dir):
    builder = data.prepare(source.OptarenaPythonSource, data_dir)
    release = f"{sys.version_info.major}_{sys.version_info.minor}_{sys.version_info.micro}"
    assert builder.builder_config.name == source.CONFIG_NAME == f"py{release}"
    assert pysource_lm.SPEC.dataset == f"optarena_python_source/py{release}"
    files = source.corpus_files(source.stdlib_dir())
    assert builder.info.metadata["corpus_sha256"] == source.corpus_sha256(files)
    assert builder.info.metadata["num_files"] == len(files)


def test_prepared_windows_are_real_source(data_dir):
    for split in data.SPLITS:
        arrays = pysource_lm.WORKLOAD.load_split(split, data_dir)
        lengths, tokens = arrays["length"], arrays["tokens"]
        assert np.all((lengths >= 2) & (lengths <= source.WINDOW))
        real = np.arange(source.WINDOW)[None, :] < lengths[:, None]
        assert not tokens[~real].any(), f"{split}: non-zero padding"
        assert tokens[real].all(), f"{split}: a NUL byte in source text"


def reference_cross_entropy(logits: np.ndarray, arrays: dict) -> float:
    """Mean next-byte cross-entropy over every real target of ``arrays``, with scipy."""
    log_probs = scipy.special.log_softmax(logits.astype(np.float64), axis=-1)
    total, count = 0.0, 0
    for row, length, lp in zip(arrays["tokens"], arrays["length"], log_probs, strict=True):
        targets = row[1:length].astype(int)
        total -= lp[np.arange(len(targets)), targets].sum()
        count += len(targets)
    return total / count


def workload_logits(params, tokens):
    """The base model's next-byte logits for each window's first ``CONTEXT`` bytes."""
    model = pysource_lm.LanguageModel()
    return model.apply({"params": params}, jnp.asarray(tokens)[:, :-1], train=False)


@pytest.fixture(scope="module")
def trained_a_little(data_dir):
    """Params after a few NAdamW steps (so logits are not uniform), the train and test splits."""
    import optax

    workload = pysource_lm.WORKLOAD
    params, state = fast.init(workload, jax.random.PRNGKey(0))
    train = workload.load_split("train", data_dir)
    opt = optax.nadamw(1e-2)
    opt_state = opt.init(params)
    grad = fast.fast_jit(jax.grad(lambda p, b: workload.loss(p, state, b, None, train=True)[0]))
    batches = data.train_batches(train, 32, seed=0)
    for _ in range(5):
        updates, opt_state = opt.update(grad(params, next(batches)), opt_state, params)
        params = optax.apply_updates(params, updates)
    return params, state, train, workload.load_split("test", data_dir)


def test_metric_matches_scipy_whatever_the_eval_batch_size(trained_a_little):
    params, state, _, test = trained_a_little
    workload = pysource_lm.WORKLOAD
    logits = np.asarray(workload_logits(params, test["tokens"]))
    expected = reference_cross_entropy(logits, test)
    sums_fn = fast.fast_jit(workload.eval_sums)
    for batch_size in (64, 307, 1000):
        parts = [sums_fn(params, state, b) for b in data.eval_batches(test, batch_size)]
        totals = {k: sum(float(p[k]) for p in parts) for k in parts[0]}
        assert totals["tokens"] == int(np.sum(test["length"] - 1))
        metrics = workload.metrics(totals)
        np.testing.assert_allclose(metrics["cross_entropy"], expected, rtol=1e-5)
        np.testing.assert_allclose(metrics["bits_per_byte"], expected / np.log(2), rtol=1e-5)
    assert 0.5 < expected < np.log(source.VOCAB_SIZE)


def test_padding_and_later_bytes_never_change_earlier_logits(trained_a_little):
    params, state, train, _ = trained_a_little
    short = int(np.argmin(train["length"]))
    length = int(train["length"][short])
    assert length < source.WINDOW, "the train split holds its files' padded last windows"
    row = np.array(train["tokens"][short : short + 1])
    noisy = row.copy()
    noisy[0, length:] = np.random.default_rng(0).integers(1, 256, source.WINDOW - length)
    a, b = workload_logits(params, row), workload_logits(params, noisy)
    assert a.shape == (1, source.CONTEXT, source.VOCAB_SIZE)
    np.testing.assert_array_equal(a[:, : length - 1], b[:, : length - 1])
    assert not np.allclose(a[:, length:], b[:, length:])
    batch = {"tokens": row, "length": train["length"][short : short + 1]}
    loss = pysource_lm.WORKLOAD.loss(params, state, batch, None, train=False)[0]
    noisy_loss = pysource_lm.WORKLOAD.loss(
        params, state, {**batch, "tokens": noisy}, None, train=False
    )[0]
    assert float(loss) == float(noisy_loss)


def test_head_is_tied_and_the_variant_gates_its_feed_forward():
    params, _ = jax.eval_shape(pysource_lm.WORKLOAD.init, jax.random.PRNGKey(0))
    glu_params, _ = jax.eval_shape(pysource_lm_glu.WORKLOAD.init, jax.random.PRNGKey(0))
    assert not any(key.startswith("Dense") for key in params), "the head reuses the embedding"
    assert params["Embed_0"]["embedding"].shape == (source.VOCAB_SIZE, 64)
    assert len(params["Block_0"]["FeedForward_0"]) == 2
    assert len(glu_params["Block_0"]["FeedForward_0"]) == 3
    assert pysource_lm_glu.SPEC.base == pysource_lm.SPEC.name
