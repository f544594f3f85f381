"""Searching the catalog: by keyword, by meaning, or both.

Every function searches within the queryset it is given: the caller decides which
products the user may see (public, or their organization's) and passes those. Pass an
unsliced queryset; it may carry its own filters, ``select_related`` and annotations.

- :func:`keyword_search` is always available. On PostgreSQL it is full-text search with
  weights and ranking; elsewhere (SQLite, the embedded default) every word must appear in
  some field, and matches in the name count most.
- :func:`semantic_search` compares the query's embedding with the stored ones (see
  :mod:`marketplace.search.index`). When semantic search is off (the optional model is not
  installed, or ``SEMANTIC_SEARCH_ENABLED = False``) it returns no hits, never an error.
- :func:`hybrid_search` merges both rankings, and is keyword search alone when semantic
  search is off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.postgres.aggregates import StringAgg
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import connections
from django.db.models import (
    Case,
    Exists,
    Expression,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, Concat

from marketplace.models import Category, McpTool, Product, ProductVersion, SearchEmbedding
from marketplace.search.embeddings import Embedder, get_embedder

try:
    import numpy as np
except ImportError:  # the optional "semantic" extra is not installed: semantic search is off
    np = None  # type: ignore[assignment]

# Longer queries are cut: nobody types more, and it bounds the work a request can cause.
MAX_QUERY_CHARS = 200
MAX_TERMS = 12
# The text-search configuration: English stemming, so "forecasts" finds "forecast".
TEXT_SEARCH_CONFIG = "english"
# Cosine similarity below which a semantic hit is noise. For all-MiniLM-L6-v2, unrelated
# short texts score about -0.1 to 0.15 and paraphrases 0.35 and up.
MIN_SEMANTIC_SCORE = 0.25
# Reciprocal rank fusion: each list contributes 1 / (RRF_K + rank). 60 is the usual
# constant (Cormack et al., 2009); it keeps one list's top hit from drowning the other.
RRF_K = 60
HYBRID_CANDIDATES = 50

_WORD = re.compile(r"[^\W_]+")  # letters and digits: "get_forecast" is "get", "forecast"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")  # PostgreSQL refuses NUL in text
_WEBSEARCH_OPERATOR = re.compile(r'"|(?:^|\s)-|\bor\b', re.IGNORECASE)


def clean_query(query: str) -> str:
    """The query as searched: control characters gone, whitespace collapsed, cut to
    MAX_QUERY_CHARS."""
    return " ".join(_CONTROL.sub(" ", query).split())[:MAX_QUERY_CHARS]


def query_terms(query: str) -> list[str]:
    """The query's words (letters and digits), at most MAX_TERMS. No terms: nothing to
    search for, and every search function returns nothing."""
    return _WORD.findall(clean_query(query))[:MAX_TERMS]


def _live_tools() -> QuerySet[McpTool]:
    """The tools of the product's live versions (for use in a subquery on Product)."""
    return McpTool.objects.filter(version__product=OuterRef("pk"), version__status__in=ProductVersion.LIVE_STATUSES)


# --- Keyword search --------------------------------------------------------------------


def keyword_search(products: QuerySet[Product], query: str) -> QuerySet[Product]:
    """The products matching the query's words, best first, annotated with
    ``search_rank`` (higher is better; its scale depends on the database).

    Searched, from the most weighty: name; summary and tags; category names and the names
    and titles of the tools of live versions; the description and the tools' descriptions.
    A query with no letter or digit in it matches nothing.
    """
    if not query_terms(query):
        return products.none()
    if connections[products.db].vendor == "postgresql":
        return _postgres_keyword_search(products, query)
    return plain_keyword_search(products, query)


def _postgres_keyword_search(products: QuerySet[Product], query: str) -> QuerySet[Product]:
    """Full-text search.

    The query is read as web-search syntax ("quoted phrases", -exclusions, or), so no
    input is a syntax error. Unless it uses that syntax, every word may also match as a
    prefix ("weat" finds "weather"): a tsquery ``weat:* & ...``, which costs nothing more
    than the scan the search does anyway.

    The vector is computed per row at query time: fine for a catalog of thousands. Past
    that, store it in a generated tsvector column with a GIN index (a migration).
    """
    text = clean_query(query)

    def tools_text(field: Concat | str) -> Subquery:
        aggregated = StringAgg(field, delimiter=" ")
        return Subquery(_live_tools().values("version__product").annotate(text=aggregated).values("text")[:1])

    category_words = Subquery(
        Category.objects.filter(products=OuterRef("pk"))
        .values("products")
        .annotate(words=StringAgg("name", delimiter=" "))
        .values("words")[:1]
    )
    config = TEXT_SEARCH_CONFIG
    vector = (
        SearchVector("name", weight="A", config=config)
        + SearchVector("summary", Cast("tags", TextField()), weight="B", config=config)
        + SearchVector(tools_text(Concat("name", Value(" "), "title")), category_words, weight="C", config=config)
        + SearchVector("description", tools_text("description"), weight="D", config=config)
    )
    search = SearchQuery(text, search_type="websearch", config=config)
    if not _WEBSEARCH_OPERATOR.search(text):
        # Terms are letters and digits only, so they are safe in raw tsquery syntax.
        prefixes = " & ".join(f"{term}:*" if len(term) > 1 else term for term in query_terms(text))
        search = search | SearchQuery(prefixes, search_type="raw", config=config)
    return (
        products.alias(search_vector=vector)  # not selected: only matched and ranked
        .filter(search_vector=search)
        .annotate(search_rank=SearchRank(F("search_vector"), search))
        .order_by("-search_rank", "name", "pk")
    )


def plain_keyword_search(products: QuerySet[Product], query: str) -> QuerySet[Product]:
    """Substring search for databases without full-text search (SQLite): every word must
    appear, case-insensitively, in some field. ``search_rank`` adds up, per word, where it
    matched best: name 8, summary 4, tags, categories or tool names 2, descriptions 1.

    Portable, so it also runs (and is tested) on PostgreSQL."""
    terms = query_terms(query)
    if not terms:
        return products.none()
    rank: Expression = Value(0)
    for term in terms:
        in_name = Q(name__icontains=term)
        in_summary = Q(summary__icontains=term)
        in_labels = (
            Q(tags__icontains=term)
            | Exists(_live_tools().filter(Q(name__icontains=term) | Q(title__icontains=term)))
            | Exists(Category.objects.filter(products=OuterRef("pk"), name__icontains=term))
        )
        in_description = Q(description__icontains=term) | Exists(_live_tools().filter(description__icontains=term))
        products = products.filter(in_name | in_summary | in_labels | in_description)
        rank = rank + Case(
            When(in_name, then=Value(8)),
            When(in_summary, then=Value(4)),
            When(in_labels, then=Value(2)),
            default=Value(1),
            output_field=IntegerField(),
        )
    return products.annotate(search_rank=rank).order_by("-search_rank", "name", "pk")


# --- Semantic search -------------------------------------------------------------------


@dataclass(frozen=True)
class SemanticHit:
    """A product whose meaning is close to the query's. ``score`` is the cosine
    similarity of the closest text (the product's own or one of its tools');
    ``matched_tool`` is its closest tool, when that one is close enough to count."""

    product: Product
    score: float
    matched_tool: McpTool | None


def semantic_search(
    products: QuerySet[Product],
    query: str,
    *,
    limit: int = 20,
    min_score: float = MIN_SEMANTIC_SCORE,
    embedder: Embedder | None = None,
) -> list[SemanticHit]:
    """The products closest in meaning to the query, best first, at most ``limit``.

    A product scores the best of its own text's and its tools' cosine similarity to the
    query; hits under ``min_score`` are dropped. Products that were never indexed are not
    found. When semantic search is off, the result is empty: callers show keyword results.

    The search is brute force: one query loads the vectors of the given products
    (1.5 kB each) and numpy scores them all, a few milliseconds for ten thousand.
    Planned, when a catalog outgrows that: keep the matrix in process memory, reloaded
    when the table's row count or latest ``updated_at`` changes; past a few hundred
    thousand vectors, pgvector with an HNSW index on PostgreSQL.
    """
    text = clean_query(query)
    if not query_terms(text):
        return []
    embedder = embedder or get_embedder()
    if embedder is None or np is None:
        return []
    query_vector = np.frombuffer(embedder.embed([text])[0], dtype="<f4")

    rows = list(
        SearchEmbedding.objects.filter(
            model_name=embedder.model_name,
            dimensions=embedder.dimensions,
            product__in=products.values("pk"),
        )
        # A tool row outlives its version's retirement until the product is reindexed.
        .filter(Q(tool=None) | Q(tool__version__status__in=ProductVersion.LIVE_STATUSES))
        .values_list("product_id", "tool_id", "vector")
    )
    if not rows:
        return []
    matrix = np.frombuffer(b"".join(bytes(vector) for _, _, vector in rows), dtype="<f4")
    scores = matrix.reshape(len(rows), embedder.dimensions) @ query_vector

    own_score: dict[int, float] = {}
    best_tool: dict[int, tuple[float, int]] = {}
    for (product_id, tool_id, _), score in zip(rows, scores.tolist(), strict=True):
        if tool_id is None:
            own_score[product_id] = score
        elif product_id not in best_tool or score > best_tool[product_id][0]:
            best_tool[product_id] = (score, tool_id)

    ranked: list[tuple[float, int, int | None]] = []  # (score, product id, matched tool id)
    for product_id in own_score.keys() | best_tool.keys():
        tool_score, tool_id = best_tool.get(product_id, (-1.0, 0))
        score = max(own_score.get(product_id, -1.0), tool_score)
        if score >= min_score:
            ranked.append((score, product_id, tool_id if tool_score >= min_score else None))
    ranked.sort(key=lambda hit: (-hit[0], hit[1]))
    ranked = ranked[:limit]

    found = products.filter(pk__in=[product_id for _, product_id, _ in ranked]).in_bulk()
    tools = McpTool.objects.in_bulk([tool_id for _, _, tool_id in ranked if tool_id is not None])
    return [
        SemanticHit(found[product_id], score, tools.get(tool_id) if tool_id is not None else None)
        for score, product_id, tool_id in ranked
        if product_id in found
    ]


# --- Both ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchHit:
    """A product found by keyword, by meaning, or both. ``keyword_rank`` and
    ``semantic_rank`` are its 1-based places in each list (None: not in it)."""

    product: Product
    score: float
    matched_tool: McpTool | None
    keyword_rank: int | None
    semantic_rank: int | None


def hybrid_search(
    products: QuerySet[Product],
    query: str,
    *,
    limit: int = 20,
    embedder: Embedder | None = None,
) -> list[SearchHit]:
    """Keyword and semantic results merged by reciprocal rank fusion: a product scores
    the sum of 1 / (RRF_K + its rank) over the lists it is in. Products found both ways
    come first; either list alone still counts. When semantic search is off this is
    keyword search, in the same order."""
    keyword_hits = list(keyword_search(products, query)[:HYBRID_CANDIDATES])
    semantic_hits = semantic_search(products, query, limit=HYBRID_CANDIDATES, embedder=embedder)

    hits: dict[int, SearchHit] = {}
    for rank, product in enumerate(keyword_hits, start=1):
        hits[product.pk] = SearchHit(product, 1 / (RRF_K + rank), None, rank, None)
    for rank, semantic in enumerate(semantic_hits, start=1):
        previous = hits.get(semantic.product.pk)
        hits[semantic.product.pk] = SearchHit(
            previous.product if previous else semantic.product,
            (previous.score if previous else 0.0) + 1 / (RRF_K + rank),
            semantic.matched_tool,
            previous.keyword_rank if previous else None,
            rank,
        )
    merged = sorted(hits.values(), key=lambda hit: (-hit.score, hit.keyword_rank or HYBRID_CANDIDATES + 1))
    return merged[:limit]
