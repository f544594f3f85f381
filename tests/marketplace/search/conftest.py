"""A small catalog to search, and the real embedding model (the ``semantic`` extra, which
``make install`` installs: these tests fail, not skip, without it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Organization
from marketplace.models import Category, McpTool, Product, ProductVersion
from marketplace.search.embeddings import Embedder, get_embedder
from marketplace.search.index import reindex_all


@dataclass
class CountingEmbedder:
    """Wraps an embedder and records every text it was asked to embed."""

    inner: Embedder
    texts: list[str] = field(default_factory=list)

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    def embed(self, texts: list[str]) -> list[bytes]:
        self.texts.extend(texts)
        return self.inner.embed(texts)


@dataclass
class Catalog:
    skycast: Product  # weather MCP server
    paystream: Product  # payments REST API
    polyglot: Product  # translation model API
    painter: Product  # image-generation agent
    repo_tools: Product  # code-hosting MCP server
    hidden: Product  # private product of another organization
    skycast_v1: ProductVersion
    get_forecast: McpTool
    geocode_city: McpTool


@pytest.fixture(scope="session")
def real_embedder() -> Embedder:
    embedder = get_embedder()
    assert embedder is not None, "The 'semantic' extra is not installed: see docs/search.md."
    return embedder


@pytest.fixture
def counting_embedder(real_embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(real_embedder)


def _product(organization: Organization, **fields: object) -> Product:
    return Product.objects.create(organization=organization, **fields)


def _live_version(product: Product, version: str = "1.0.0", **fields: object) -> ProductVersion:
    fields.setdefault("status", ProductVersion.Status.PUBLISHED)
    fields.setdefault("published_at", timezone.now())
    return ProductVersion.objects.create(product=product, version=version, **fields)


def _tool(version: ProductVersion, name: str, title: str, description: str) -> McpTool:
    return McpTool.objects.create(
        version=version, name=name, title=title, description=description, input_schema={"type": "object"}
    )


@pytest.fixture
def catalog(organization: Organization) -> Catalog:
    """Five public products with a live version each, and one private product of another
    organization. Skycast's name and summary share no word with "is it going to rain
    tomorrow"; its draft 2.0.0 has a tool that must not be found."""
    devtools = Category.objects.get(slug="developer-tools")  # seeded by a migration
    finance = Category.objects.get(slug="finance")

    skycast = _product(
        organization,
        kind=Product.Kind.MCP_SERVER,
        slug="skycast",
        name="Skycast",
        summary="Hourly outlooks for any place on Earth, for your agents.",
        tags=["mcp", "geo"],
    )
    skycast_v1 = _live_version(skycast, mcp_transport=ProductVersion.McpTransport.STREAMABLE_HTTP)
    get_forecast = _tool(
        skycast_v1,
        "get_forecast",
        "Get forecast",
        "Returns the hourly weather forecast for a location: temperature, precipitation probability, wind.",
    )
    geocode_city = _tool(skycast_v1, "geocode_city", "Geocode city", "Turns a city name into coordinates.")
    draft = ProductVersion.objects.create(product=skycast, version="2.0.0", status=ProductVersion.Status.DRAFT)
    _tool(draft, "purge_cache", "Purge cache", "Empties the server's cache.")

    paystream = _product(
        organization,
        kind=Product.Kind.REST_API,
        slug="paystream",
        name="Paystream",
        summary="Accept online payments, issue refunds and manage subscriptions.",
        description="Paystream takes card payments in 40 currencies, with 3-D Secure and payouts to bank accounts.",
        tags=["billing", "fintech"],
    )
    paystream.categories.add(finance)
    _live_version(paystream)

    polyglot = _product(
        organization,
        kind=Product.Kind.MODEL_API,
        slug="polyglot",
        name="Polyglot Translation",
        summary="Neural machine translation between 100 languages.",
    )
    _live_version(polyglot)

    painter = _product(
        organization,
        kind=Product.Kind.AGENT,
        slug="pixel-painter",
        name="Pixel Painter",
        summary="An agent that draws illustrations from text prompts.",
        description="Generates images in many styles. Captions come with an optional translation.",
    )
    _live_version(painter)

    repo_tools = _product(
        organization,
        kind=Product.Kind.MCP_SERVER,
        slug="repo-tools",
        name="Repo Tools",
        summary="Work with code repositories from your agents.",
    )
    repo_tools.categories.add(devtools)
    repo_v1 = _live_version(repo_tools, mcp_transport=ProductVersion.McpTransport.STREAMABLE_HTTP)
    _tool(repo_v1, "list_issues", "List issues", "Lists the open issues of a repository.")
    _tool(repo_v1, "create_pull_request", "Create pull request", "Opens a pull request from a branch.")

    other = Organization.objects.create(name="WeatherCo", slug="weatherco")
    hidden = _product(
        other,
        kind=Product.Kind.MCP_SERVER,
        slug="storm-watch",
        name="Storm Watch",
        summary="Weather forecasts and rain radar.",
        visibility=Product.Visibility.PRIVATE,
    )
    hidden_v1 = _live_version(hidden)
    _tool(hidden_v1, "rain_radar", "Rain radar", "Will it rain tomorrow? Precipitation radar and forecast.")

    return Catalog(
        skycast=skycast,
        paystream=paystream,
        polyglot=polyglot,
        painter=painter,
        repo_tools=repo_tools,
        hidden=hidden,
        skycast_v1=skycast_v1,
        get_forecast=get_forecast,
        geocode_city=geocode_city,
    )


@pytest.fixture
def indexed(catalog: Catalog, real_embedder: Embedder) -> Catalog:
    reindex_all(embedder=real_embedder)
    return catalog


@pytest.fixture
def public(db: None) -> QuerySet[Product]:
    """The products everyone may see: what a catalog view passes to the searches."""
    return Product.objects.filter(visibility=Product.Visibility.PUBLIC)
