"""The catalog API, open to anonymous users: products with a live version, the private
ones only to their organization's members; filtered, searched by keyword or meaning,
paginated; and one product's page with its latest live version in full."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from accounts.models import Organization, User
from marketplace.models import Category, ProductVersion
from marketplace.search.index import index_product
from tests.marketplace.api.helpers import Api, assert_problem, ok
from tests.marketplace.factories import (
    ApiOperationFactory,
    McpToolFactory,
    ModelOfferingFactory,
    ProductFactory,
    ProductVersionFactory,
    PublishedVersionFactory,
)

FORECAST_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture
def catalog(organization: Organization, outsider: User) -> None:
    """Public and private products of Acme, a product of Other, and some that are not in
    the catalog: a draft, one in review, a retired one."""
    other = outsider.memberships.get().organization
    data = Category.objects.get(slug="data")

    weather = PublishedVersionFactory(
        product__organization=organization, product__slug="weather", product__name="Weather", product__kind="mcp_server"
    )
    weather.product.categories.set([data])
    McpToolFactory(
        version=weather,
        name="get_forecast",
        title="Weather forecast",
        description="Get the weather forecast for a city.",
        input_schema=FORECAST_SCHEMA,
        output_schema={"type": "object"},
        request_template={"method": "GET", "url": "http://internal/forecast"},
    )
    PublishedVersionFactory(
        product__organization=organization, product__slug="llm", product__name="Acme LLM", product__kind="model_api"
    )
    PublishedVersionFactory(
        product__organization=organization,
        product__slug="internal",
        product__name="Internal tools",
        product__visibility="private",
    )
    PublishedVersionFactory(
        product__organization=other, product__slug="maps", product__name="Maps", product__summary="Maps and routes."
    )
    ProductVersionFactory(product__organization=organization, product__slug="draft-only")
    ProductVersionFactory(product__organization=organization, product__slug="in-review", status="in_review")
    ProductVersionFactory(product__organization=organization, product__slug="retired", status="retired")


def slugs(body: dict[str, Any]) -> list[str]:
    return [p["slug"] for p in body["results"]]


def test_anonymous_users_see_public_products_with_a_live_version(catalog: None, anonymous_api: Api) -> None:
    body = ok(anonymous_api.get("/api/v1/catalog/"))

    assert body["count"] == 3
    assert slugs(body) == ["llm", "maps", "weather"]
    weather = body["results"][2]
    assert weather["provider"] == {"slug": "acme", "name": "Acme"}
    assert weather["categories"] == [{"slug": "data", "name": "Data and analytics"}]
    assert (weather["kind"], weather["score"], weather["matched_tool"]) == ("mcp_server", None, None)


def test_private_products_are_listed_only_for_their_organizations_members(
    catalog: None, member_api: Api, outsider_api: Api, anonymous_api: Api
) -> None:
    assert slugs(ok(member_api.get("/api/v1/catalog/"))) == ["llm", "internal", "maps", "weather"]
    assert slugs(ok(outsider_api.get("/api/v1/catalog/"))) == ["llm", "maps", "weather"]
    assert ok(member_api.get("/api/v1/catalog/internal/"))["visibility"] == "private"
    assert_problem(outsider_api.get("/api/v1/catalog/internal/"), 404)
    assert_problem(anonymous_api.get("/api/v1/catalog/internal/"), 404)
    for hidden in ("draft-only", "in-review", "retired"):
        assert_problem(member_api.get(f"/api/v1/catalog/{hidden}/"), 404)


def test_the_catalog_filters_by_kind_category_and_provider(catalog: None, anonymous_api: Api) -> None:
    assert slugs(ok(anonymous_api.get("/api/v1/catalog/", {"kind": "model_api"}))) == ["llm"]
    assert slugs(ok(anonymous_api.get("/api/v1/catalog/", {"category": "data"}))) == ["weather"]
    assert slugs(ok(anonymous_api.get("/api/v1/catalog/", {"provider": "other"}))) == ["maps"]
    problem = assert_problem(
        anonymous_api.get("/api/v1/catalog/", {"kind": "teapot", "mode": "psychic"}), 400, errors=True
    )
    assert set(problem["errors"]) == {"kind", "mode"}


def test_the_catalog_is_paginated(catalog: None, anonymous_api: Api) -> None:
    body = ok(anonymous_api.get("/api/v1/catalog/", {"limit": 2, "offset": 1}))

    assert (body["count"], slugs(body)) == (3, ["maps", "weather"])
    assert body["previous"] is not None


def test_a_keyword_search_ranks_matches_and_reports_their_score(catalog: None, anonymous_api: Api) -> None:
    body = ok(anonymous_api.get("/api/v1/catalog/", {"q": "forecast"}))

    assert slugs(body) == ["weather"]
    assert body["results"][0]["score"] > 0
    assert slugs(ok(anonymous_api.get("/api/v1/catalog/", {"q": "routes"}))) == ["maps"]
    assert slugs(ok(anonymous_api.get("/api/v1/catalog/", {"q": "internal"}))) == []


def test_a_semantic_search_reports_the_matching_tool(catalog: None, anonymous_api: Api, member_api: Api) -> None:
    for version in ProductVersion.objects.filter(status="published").select_related("product"):
        index_product(version.product)

    body = ok(anonymous_api.get("/api/v1/catalog/", {"q": "city weather forecast", "mode": "semantic"}))

    assert slugs(body)[0] == "weather"
    top = body["results"][0]
    assert top["matched_tool"] == "get_forecast"
    assert 0 < top["score"] <= 1
    # The private product is indexed too, but the search stays within what the user may see.
    assert "internal" not in slugs(
        ok(anonymous_api.get("/api/v1/catalog/", {"q": "internal tools", "mode": "semantic"}))
    )
    assert "internal" in slugs(ok(member_api.get("/api/v1/catalog/", {"q": "internal tools", "mode": "semantic"})))


def test_the_product_page_shows_the_latest_live_version_in_full(organization: Organization, anonymous_api: Api) -> None:
    product = ProductFactory(organization=organization, slug="llm", kind="model_api", description="# LLM")
    old = PublishedVersionFactory(product=product, version="1.0.0", upstream_url="http://127.0.0.1:9/secret-path")
    latest = PublishedVersionFactory(product=product, version="1.1.0", changelog="Cheaper.")
    ProductVersionFactory(product=product, version="2.0.0", status="draft")
    ModelOfferingFactory(version=old, public_name="old-model")
    ModelOfferingFactory(
        version=latest,
        public_name="acme-chat",
        upstream_name="llama-internal",
        context_window=32_000,
        input_price_per_mtok=Decimal("0.5"),
        output_price_per_mtok=Decimal("1.5"),
        capabilities=["chat", "streaming"],
    )
    ApiOperationFactory(version=latest, method="POST", path="/v1/chat/completions")

    body = ok(anonymous_api.get("/api/v1/catalog/llm/"))

    assert (body["slug"], body["description"]) == ("llm", "# LLM")
    assert [v["version"] for v in body["versions"]] == ["1.1.0", "1.0.0"]
    version = body["latest_version"]
    assert (version["version"], version["changelog"]) == ("1.1.0", "Cheaper.")
    assert version["models"] == [
        {
            "public_name": "acme-chat",
            "context_window": 32_000,
            "input_price_per_mtok": "0.500000",
            "output_price_per_mtok": "1.500000",
            "capabilities": ["chat", "streaming"],
        }
    ]
    assert [(o["method"], o["path"]) for o in version["operations"]] == [("POST", "/v1/chat/completions")]
    text = str(body)
    for private in ("llama-internal", "secret-path", "upstream", "spec"):
        assert private not in text


def test_the_product_page_shows_tools_with_their_schemas_but_not_their_upstream_calls(
    catalog: None, anonymous_api: Api
) -> None:
    body = ok(anonymous_api.get("/api/v1/catalog/weather/"))

    assert body["latest_version"]["tools"] == [
        {
            "name": "get_forecast",
            "title": "Weather forecast",
            "description": "Get the weather forecast for a city.",
            "input_schema": FORECAST_SCHEMA,
            "output_schema": {"type": "object"},
            "annotations": {},
        }
    ]
    assert "internal/forecast" not in str(body)


def test_listing_the_catalog_takes_a_constant_number_of_queries(
    catalog: None, anonymous_api: Api, django_assert_max_num_queries: Any, organization: Organization
) -> None:
    for n in range(10):
        PublishedVersionFactory(product__organization=organization, product__slug=f"extra-{n}")

    with django_assert_max_num_queries(4):
        body = ok(anonymous_api.get("/api/v1/catalog/"))

    assert body["count"] == 13
