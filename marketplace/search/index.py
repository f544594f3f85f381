"""Keeping the stored embeddings (SearchEmbedding rows) in step with the catalog.

A product has one embedding of its own text, and one per MCP tool of its latest live
version. Each row remembers the sha256 of the text it was computed from, so reindexing
embeds only what changed. Call :func:`index_product` after a product's text or live version
changes (its callers do so on commit, from a task); ``manage.py search_reindex`` runs
:func:`reindex_all` for a new model or a missed update.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from marketplace.models import McpTool, Product, ProductVersion, SearchEmbedding
from marketplace.search.embeddings import Embedder, get_embedder

# The model reads 256 tokens at most; the first ~1000 characters are what it sees anyway.
DESCRIPTION_CHARS = 1000

_WHITESPACE = re.compile(r"\s+")
_CAMEL_CASE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORDS = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class IndexResult:
    """What a (re)index did. ``embedded``: texts the model computed; ``reused``: new rows
    whose text another row of the product already had (a tool carried over to a new
    version); ``unchanged``: rows left as they were; ``deleted``: stale rows removed."""

    embedded: int = 0
    reused: int = 0
    unchanged: int = 0
    deleted: int = 0

    def __add__(self, other: IndexResult) -> IndexResult:
        return IndexResult(
            self.embedded + other.embedded,
            self.reused + other.reused,
            self.unchanged + other.unchanged,
            self.deleted + other.deleted,
        )


def _clean(text: str, limit: int | None = None) -> str:
    text = _WHITESPACE.sub(" ", text).strip()
    return text[:limit].rstrip() if limit is not None else text


def latest_live_version(product: Product) -> ProductVersion | None:
    """The live (published or deprecated) version published last: the one whose tools
    the catalog shows. None if no version is live."""
    return (
        product.versions.filter(status__in=ProductVersion.LIVE_STATUSES)
        .order_by(F("published_at").desc(nulls_last=True), "-created_at", "-pk")
        .first()
    )


def product_text(product: Product) -> str:
    """The text a product is embedded from: name, summary, tags, categories, and the
    start of its description."""
    tags = [str(tag) for tag in product.tags] if isinstance(product.tags, list) else []
    categories = [category.name for category in product.categories.all()]
    parts = [f"{product.name}. {product.summary}"]
    if tags:
        parts.append(f"Tags: {', '.join(tags)}.")
    if categories:
        parts.append(f"Categories: {', '.join(categories)}.")
    if product.description:
        parts.append(_clean(product.description, DESCRIPTION_CHARS))
    return _clean("\n".join(parts))


def tool_text(tool: McpTool) -> str:
    """The text a tool is embedded from: its name as words (``get_forecast`` and
    ``getForecast`` read "get forecast"), its title and its description."""
    words = _CAMEL_CASE_BOUNDARY.sub(" ", re.sub(r"[_-]+", " ", tool.name)).strip()
    parts = [f"{words}."]
    # A title that only repeats the name would weigh the name twice.
    if tool.title and _WORDS.findall(tool.title.lower()) != _WORDS.findall(words.lower()):
        parts.append(f"{tool.title}.")
    if tool.description:
        parts.append(_clean(tool.description, DESCRIPTION_CHARS))
    return _clean(" ".join(parts))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def index_product(product: Product, *, embedder: Embedder | None = None) -> IndexResult | None:
    """(Re)compute the product's stored embeddings. Returns None, and changes nothing,
    when semantic search is off (see :func:`~marketplace.search.embeddings.get_embedder`).

    1. Build the texts: the product's, and one per tool of its latest live version.
    2. Embed those whose sha256 differs from the stored row's (or that have no row),
       outside any transaction: the model takes a while and holds no lock. A text that
       another row of the product already has reuses that row's vector.
    3. Under a lock on the product row: delete the rows of tools that are no longer in
       the latest live version (and of other models), then write the new vectors.
    """
    embedder = embedder or get_embedder()
    if embedder is None:
        return None
    model_name = embedder.model_name

    version = latest_live_version(product)
    tools = list(version.tools.all()) if version is not None else []
    texts: dict[int | None, str] = {None: product_text(product)}  # key: tool id, None for the product
    texts.update((tool.pk, tool_text(tool)) for tool in tools)
    hashes = {key: _sha256(text) for key, text in texts.items()}

    def stored() -> dict[int | None, SearchEmbedding]:
        rows = SearchEmbedding.objects.filter(product=product, model_name=model_name)
        return {row.tool_id: row for row in rows}

    existing = stored()
    changed = [
        key
        for key, digest in hashes.items()
        if key not in existing or existing[key].text_sha256 != digest or existing[key].dimensions != embedder.dimensions
    ]
    # A new version's tools are new rows, but most have the same texts as the old ones.
    known = {row.text_sha256: bytes(row.vector) for row in existing.values() if row.dimensions == embedder.dimensions}
    vectors = {key: known[hashes[key]] for key in changed if hashes[key] in known}
    to_embed = [key for key in changed if key not in vectors]
    vectors.update(zip(to_embed, embedder.embed([texts[key] for key in to_embed]), strict=True))

    with transaction.atomic():
        if not Product.objects.select_for_update().filter(pk=product.pk).exists():
            return IndexResult()  # deleted meanwhile: its rows went with it
        stale = ~Q(model_name=model_name) | (Q(tool__isnull=False) & ~Q(tool_id__in=[tool.pk for tool in tools]))
        deleted, _ = SearchEmbedding.objects.filter(product=product).filter(stale).delete()

        # Another indexer may have written rows since we looked: update those, create the rest.
        existing = stored()
        now = timezone.now()
        created: list[SearchEmbedding] = []
        updated: list[SearchEmbedding] = []
        for key, vector in vectors.items():
            row = existing.get(key)
            if row is None:
                created.append(
                    SearchEmbedding(
                        product=product,
                        tool_id=key,
                        model_name=model_name,
                        dimensions=embedder.dimensions,
                        vector=vector,
                        text_sha256=hashes[key],
                    )
                )
            else:
                row.vector = vector
                row.text_sha256 = hashes[key]
                row.dimensions = embedder.dimensions
                row.updated_at = now  # bulk_update() does not apply auto_now
                updated.append(row)
        SearchEmbedding.objects.bulk_create(created)
        SearchEmbedding.objects.bulk_update(updated, ["vector", "text_sha256", "dimensions", "updated_at"])
    return IndexResult(
        embedded=len(to_embed),
        reused=len(vectors) - len(to_embed),
        unchanged=len(texts) - len(vectors),
        deleted=deleted,
    )


def reindex_all(*, embedder: Embedder | None = None) -> IndexResult | None:
    """:func:`index_product` for every product, visible or not (queries filter by
    visibility). None when semantic search is off."""
    embedder = embedder or get_embedder()
    if embedder is None:
        return None
    total = IndexResult()
    products = Product.objects.prefetch_related("categories").order_by("pk")
    for product in products.iterator(chunk_size=200):
        total += index_product(product, embedder=embedder) or IndexResult()
    return total
