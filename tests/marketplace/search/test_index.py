"""Indexing: what texts are embedded, that unchanged texts are not embedded again, and
that embeddings of tools no longer live go away. Also ``manage.py search_reindex``."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from pytest_django.fixtures import SettingsWrapper

from marketplace.models import McpTool, Product, ProductVersion, SearchEmbedding
from marketplace.search.embeddings import Embedder
from marketplace.search.index import IndexResult, index_product, product_text, reindex_all, tool_text
from tests.marketplace.search.conftest import Catalog, CountingEmbedder


def stored(product: Product) -> dict[str | None, SearchEmbedding]:
    """The product's embeddings, keyed by tool name (None: the product's own)."""
    rows = SearchEmbedding.objects.filter(product=product).select_related("tool")
    return {row.tool.name if row.tool else None: row for row in rows}


# --- Texts -------------------------------------------------------------------------------


def test_product_text_has_name_summary_tags_categories_and_the_start_of_the_description(catalog: Catalog) -> None:
    catalog.paystream.description = "Cards. " + "x" * 5000

    text = product_text(catalog.paystream)

    assert text.startswith(
        "Paystream. Accept online payments, issue refunds and manage subscriptions. "
        "Tags: billing, fintech. Categories: Finance and payments. Cards. xxx"
    )
    assert len(text) < 1200


@pytest.mark.parametrize(
    ("name", "title", "expected"),
    [
        ("get_forecast", "Hourly forecast", "get forecast. Hourly forecast. Returns it."),
        ("get_forecast", "Get forecast", "get forecast. Returns it."),  # the title only repeats the name
        ("getForecast", "", "get Forecast. Returns it."),
        ("list-open_issues", "", "list open issues. Returns it."),
    ],
)
def test_tool_text_reads_the_name_as_words(name: str, title: str, expected: str) -> None:
    assert tool_text(McpTool(name=name, title=title, description="Returns\n  it.")) == expected


# --- Indexing ----------------------------------------------------------------------------


def test_indexes_the_product_and_the_tools_of_its_latest_live_version(
    catalog: Catalog, counting_embedder: CountingEmbedder, real_embedder: Embedder
) -> None:
    result = index_product(catalog.skycast, embedder=counting_embedder)

    assert result == IndexResult(embedded=3)
    rows = stored(catalog.skycast)
    assert set(rows) == {None, "get_forecast", "geocode_city"}  # not the draft's purge_cache
    assert counting_embedder.texts == [product_text(catalog.skycast), *map(tool_text, catalog.skycast_v1.tools.all())]

    row = rows["get_forecast"]
    assert (row.model_name, row.dimensions) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    vector = np.frombuffer(bytes(row.vector), dtype="<f4")
    expected = np.frombuffer(real_embedder.embed([tool_text(catalog.get_forecast)])[0], dtype="<f4")
    assert np.allclose(vector, expected, atol=1e-5)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_reindexing_skips_unchanged_texts(catalog: Catalog, counting_embedder: CountingEmbedder) -> None:
    index_product(catalog.skycast, embedder=counting_embedder)
    before = {key: (row.pk, row.updated_at) for key, row in stored(catalog.skycast).items()}
    counting_embedder.texts.clear()

    result = index_product(catalog.skycast, embedder=counting_embedder)

    assert result == IndexResult(unchanged=3)
    assert counting_embedder.texts == []
    assert {key: (row.pk, row.updated_at) for key, row in stored(catalog.skycast).items()} == before


def test_reindexing_embeds_only_the_texts_that_changed(catalog: Catalog, counting_embedder: CountingEmbedder) -> None:
    index_product(catalog.skycast, embedder=counting_embedder)
    old_vector = bytes(stored(catalog.skycast)[None].vector)
    counting_embedder.texts.clear()
    catalog.skycast.summary = "Weather forecasts for your agents."
    catalog.skycast.save()

    result = index_product(catalog.skycast, embedder=counting_embedder)

    assert result == IndexResult(embedded=1, unchanged=2)
    assert counting_embedder.texts == [product_text(catalog.skycast)]
    assert bytes(stored(catalog.skycast)[None].vector) != old_vector


def test_a_new_version_replaces_the_old_versions_tool_embeddings(
    catalog: Catalog, counting_embedder: CountingEmbedder
) -> None:
    index_product(catalog.skycast, embedder=counting_embedder)
    counting_embedder.texts.clear()
    v1_1 = ProductVersion.objects.create(
        product=catalog.skycast, version="1.1.0", status=ProductVersion.Status.PUBLISHED, published_at=timezone.now()
    )
    for tool in (catalog.get_forecast, catalog.geocode_city):
        if tool.name == "get_forecast":  # carried over unchanged; geocode_city is dropped
            McpTool.objects.create(version=v1_1, name=tool.name, title=tool.title, description=tool.description)
    air = McpTool.objects.create(version=v1_1, name="get_air_quality", description="Air quality index and pollen.")
    ProductVersion.objects.filter(pk=catalog.skycast_v1.pk).update(status=ProductVersion.Status.DEPRECATED)

    result = index_product(catalog.skycast, embedder=counting_embedder)

    assert result == IndexResult(embedded=1, reused=1, unchanged=1, deleted=2)
    assert counting_embedder.texts == [tool_text(air)]
    rows = stored(catalog.skycast)
    assert set(rows) == {None, "get_forecast", "get_air_quality"}
    assert {row.tool.version for row in rows.values() if row.tool} == {v1_1}


def test_retiring_the_last_live_version_deletes_its_tool_embeddings(
    catalog: Catalog, counting_embedder: CountingEmbedder
) -> None:
    index_product(catalog.skycast, embedder=counting_embedder)
    ProductVersion.objects.filter(pk=catalog.skycast_v1.pk).update(status=ProductVersion.Status.RETIRED)

    result = index_product(catalog.skycast, embedder=counting_embedder)

    assert result == IndexResult(unchanged=1, deleted=2)
    assert set(stored(catalog.skycast)) == {None}


def test_embeddings_of_another_model_are_deleted(catalog: Catalog, counting_embedder: CountingEmbedder) -> None:
    SearchEmbedding.objects.create(
        product=catalog.paystream, model_name="old-model", dimensions=2, vector=b"\0" * 8, text_sha256="0" * 64
    )

    result = index_product(catalog.paystream, embedder=counting_embedder)

    assert result == IndexResult(embedded=1, deleted=1)
    assert list(SearchEmbedding.objects.filter(product=catalog.paystream).values_list("model_name", flat=True)) == [
        counting_embedder.model_name
    ]


def test_reindex_all_indexes_every_product_visible_or_not(
    catalog: Catalog, counting_embedder: CountingEmbedder
) -> None:
    first = reindex_all(embedder=counting_embedder)
    second = reindex_all(embedder=counting_embedder)

    # 6 products; tools: Skycast 2, Repo Tools 2, Storm Watch 1.
    assert first == IndexResult(embedded=11)
    assert second == IndexResult(unchanged=11)
    assert len(counting_embedder.texts) == 11
    assert SearchEmbedding.objects.filter(product=catalog.hidden).count() == 2


def test_with_semantic_search_off_indexing_does_nothing(catalog: Catalog, settings: SettingsWrapper) -> None:
    settings.SEMANTIC_SEARCH_ENABLED = False

    assert index_product(catalog.skycast) is None
    assert reindex_all() is None
    assert not SearchEmbedding.objects.exists()


# --- manage.py search_reindex ----------------------------------------------------------


def test_command_reindexes_everything(catalog: Catalog, real_embedder: Embedder) -> None:
    out = StringIO()

    call_command("search_reindex", stdout=out)
    call_command("search_reindex", stdout=out)

    assert out.getvalue().splitlines() == [
        "sentence-transformers/all-MiniLM-L6-v2: 11 texts embedded, 0 reused, 0 unchanged, 0 stale embeddings deleted.",
        "sentence-transformers/all-MiniLM-L6-v2: 0 texts embedded, 0 reused, 11 unchanged, 0 stale embeddings deleted.",
    ]


def test_command_reindexes_the_products_named(catalog: Catalog, real_embedder: Embedder) -> None:
    out = StringIO()

    call_command("search_reindex", "--product", "skycast", "--product", "paystream", stdout=out)

    assert "4 texts embedded" in out.getvalue()
    assert set(SearchEmbedding.objects.values_list("product__slug", flat=True)) == {"skycast", "paystream"}


def test_command_refuses_an_unknown_product(catalog: Catalog, real_embedder: Embedder) -> None:
    with pytest.raises(CommandError, match="No such product: nope"):
        call_command("search_reindex", "--product", "nope", "--product", "skycast")


def test_command_says_when_semantic_search_is_off(catalog: Catalog, settings: SettingsWrapper) -> None:
    settings.SEMANTIC_SEARCH_ENABLED = False

    with pytest.raises(CommandError, match="Semantic search is off"):
        call_command("search_reindex")
