"""Keyword search: PostgreSQL full-text search, and the plain substring search that SQLite
uses (portable, so it runs here on PostgreSQL too)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.db.models import Q, QuerySet

from accounts.models import Membership, Role, User
from marketplace.models import Product, ProductVersion
from marketplace.search.query import keyword_search, plain_keyword_search
from tests.marketplace.search.conftest import Catalog

Search = Callable[[QuerySet[Product], str], QuerySet[Product]]


@pytest.fixture(params=["full_text", "plain"])
def search(request: pytest.FixtureRequest) -> Search:
    """Each behaviour both implementations share is tested on both."""
    return keyword_search if request.param == "full_text" else plain_keyword_search


def slugs(products: QuerySet[Product]) -> list[str]:
    return [product.slug for product in products]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("Paystream", ["paystream"], id="name"),
        pytest.param("refunds", ["paystream"], id="summary"),
        pytest.param("FINTECH", ["paystream"], id="tag"),
        pytest.param("developer", ["repo-tools"], id="category"),
        pytest.param("geocode", ["skycast"], id="tool-name"),
        pytest.param("get_forecast", ["skycast"], id="tool-name-as-typed"),
        pytest.param("pull request", ["repo-tools"], id="tool-title"),
        pytest.param("precipitation", ["skycast"], id="tool-description"),
        pytest.param("currencies", ["paystream"], id="description"),
        pytest.param("payments refunds", ["paystream"], id="every-word"),
    ],
)
def test_finds_products_by_each_field(
    search: Search, catalog: Catalog, public: QuerySet[Product], query: str, expected: list[str]
) -> None:
    assert slugs(search(public, query)) == expected


def test_every_word_must_match(search: Search, catalog: Catalog, public: QuerySet[Product]) -> None:
    assert slugs(search(public, "payments geocode")) == []


def test_a_name_match_ranks_above_a_description_match(
    search: Search, catalog: Catalog, public: QuerySet[Product]
) -> None:
    # Polyglot Translation has it in its name; Pixel Painter in its description.
    assert slugs(search(public, "translation")) == ["polyglot", "pixel-painter"]


def test_results_carry_a_rank(search: Search, catalog: Catalog, public: QuerySet[Product]) -> None:
    name_match, description_match = search(public, "translation")

    assert name_match.search_rank > description_match.search_rank  # type: ignore[attr-defined]


def test_tools_of_versions_that_are_not_live_are_not_searched(
    search: Search, catalog: Catalog, public: QuerySet[Product]
) -> None:
    assert slugs(search(public, "purge")) == []  # a tool of Skycast's draft 2.0.0

    catalog.skycast_v1.status = ProductVersion.Status.RETIRED
    catalog.skycast_v1.save()
    assert slugs(search(public, "geocode")) == []


def test_searches_only_the_queryset_it_is_given(search: Search, catalog: Catalog, public: QuerySet[Product]) -> None:
    assert slugs(search(Product.objects.all(), "storm")) == ["storm-watch"]
    assert slugs(search(public, "storm")) == []
    assert slugs(search(public.filter(kind=Product.Kind.AGENT), "translation")) == ["pixel-painter"]


def test_works_on_a_catalog_shaped_queryset(search: Search, catalog: Catalog, outsider: User) -> None:
    """Visibility through a join on memberships, made distinct: as the catalog builds it."""
    Membership.objects.create(organization=catalog.hidden.organization, user=outsider, role=Role.MEMBER)
    visible = (
        Product.objects.filter(Q(visibility=Product.Visibility.PUBLIC) | Q(organization__memberships__user=outsider))
        .select_related("organization")
        .prefetch_related("categories")
        .distinct()
    )

    assert slugs(search(visible, "storm")) == ["storm-watch"]
    assert slugs(search(visible, "translation")) == ["polyglot", "pixel-painter"]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("", id="empty"),
        pytest.param("   \t\n ", id="blank"),
        pytest.param("!!! ... ???", id="punctuation"),
        pytest.param("((( ) & | ! :*", id="tsquery-syntax"),
        pytest.param('"', id="lone-quote"),
        pytest.param("-", id="lone-minus"),
        pytest.param("_", id="underscore"),
        pytest.param("\x00", id="nul"),
    ],
)
def test_a_query_without_words_finds_nothing(
    search: Search, catalog: Catalog, public: QuerySet[Product], query: str
) -> None:
    assert slugs(search(public, query)) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("\x00Paystream\x07", ["paystream"], id="control-characters"),
        pytest.param("paystream; DROP TABLE marketplace_product; --", [], id="sql"),
        pytest.param("'paystream'", ["paystream"], id="quoted"),
        pytest.param("Paystream:*", ["paystream"], id="tsquery-operator"),
        pytest.param("payments " * 2000, ["paystream"], id="very-long"),
        pytest.param("zürich 東京 🙂", [], id="unicode"),
    ],
)
def test_odd_input_is_searched_safely(
    search: Search, catalog: Catalog, public: QuerySet[Product], query: str, expected: list[str]
) -> None:
    assert slugs(search(public, query)) == expected


# --- Full-text search only ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("translations", ["polyglot", "pixel-painter"], id="stemming"),
        pytest.param("Paystr", ["paystream"], id="prefix"),
        pytest.param("geoc", ["skycast"], id="prefix-of-a-tool-name"),
        pytest.param('"machine translation"', ["polyglot"], id="phrase"),
        pytest.param("translation -captions", ["polyglot"], id="exclusion"),
        pytest.param("refunds or geocode", ["paystream", "skycast"], id="or"),
        pytest.param("the", [], id="stop-word"),  # plain search finds it inside words
    ],
)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="full-text search is PostgreSQL's")
def test_full_text_search_reads_web_search_syntax_and_prefixes(
    catalog: Catalog, public: QuerySet[Product], query: str, expected: list[str]
) -> None:
    assert slugs(keyword_search(public, query)) == expected
