"""Importing servers from a registry document: the registry_import service."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from pytest_django.fixtures import SettingsWrapper

from accounts.models import Organization, User
from marketplace.models import Product, ProductVersion
from marketplace.registry.importer import registry_import
from tests.marketplace.factories import ProductFactory
from tests.marketplace.registry.conftest import LOOPBACK_URL, OFFICIAL, PUBLIC_URL, server

pytestmark = pytest.mark.django_db


def test_a_list_response_creates_draft_mcp_products_with_the_remote_url(
    organization: Organization, member: User
) -> None:
    document = {
        "servers": [
            {
                "server": server("com.example/weather", title="Weather", websiteUrl="https://example.com/weather"),
                "_meta": {OFFICIAL: {"status": "active", "isLatest": True}},
            },
            {"server": server("io.github.someone/Docs_Search", "2.1.0", url=PUBLIC_URL, kind="sse")},
        ],
        "metadata": {"count": 2},
    }

    result = registry_import(actor=member, organization=organization, document=document)

    assert result.errors == []
    assert result.skipped == []
    assert [(c.index, c.name, c.product_slug, c.version) for c in result.created] == [
        (0, "com.example/weather", "weather", "1.0.0"),
        (1, "io.github.someone/Docs_Search", "docs-search", "2.1.0"),
    ]
    weather = Product.objects.get(slug="weather")
    assert (weather.organization, weather.kind, weather.name) == (organization, Product.Kind.MCP_SERVER, "Weather")
    assert weather.summary == "The com.example/weather server."
    assert "com.example/weather" in weather.description
    assert "https://example.com/weather" in weather.description
    version = weather.versions.get()
    assert (version.status, version.upstream_url, version.mcp_transport) == (
        ProductVersion.Status.DRAFT,
        LOOPBACK_URL,
        ProductVersion.McpTransport.STREAMABLE_HTTP,
    )
    assert not version.tools.exists()  # discovery is the provider's next step
    docs = Product.objects.get(slug="docs-search").versions.get()
    assert (docs.upstream_url, docs.mcp_transport) == (PUBLIC_URL, ProductVersion.McpTransport.SSE)
    assert Client().get("/v0.1/servers").json()["servers"] == []  # drafts are not listed


@pytest.mark.parametrize(
    "document",
    [
        server("com.example/weather"),
        {"server": server("com.example/weather"), "_meta": {}},
        json.dumps(server("com.example/weather")),
        [server("com.example/weather")],
    ],
    ids=["server.json", "entry", "json-text", "bare-list"],
)
def test_every_document_shape_is_accepted(organization: Organization, member: User, document: Any) -> None:
    result = registry_import(actor=member, organization=organization, document=document)
    assert [c.product_slug for c in result.created] == ["weather"]


def test_invalid_entries_get_precise_errors_and_create_nothing(organization: Organization, member: User) -> None:
    document = {
        "servers": [
            {"server": server("com.example/good")},
            {"server": server("com.example/long", description="d" * 101, remotes=[{"type": "sse", "url": "ftp://x"}])},
            {"server": {"name": "no namespace", "version": "1.0.0"}},
            "not an object",
        ]
    }

    result = registry_import(actor=member, organization=organization, document=document)

    assert [c.name for c in result.created] == ["com.example/good"]
    assert [(e.index, e.name, e.errors) for e in result.errors] == [
        (
            1,
            "com.example/long",
            [
                "servers[1].server.description: is 101 characters long; at most 100 are allowed",
                'servers[1].server.remotes[0].url: "ftp://x" does not match ^https?://[^\\s]+$',
            ],
        ),
        (
            2,
            "no namespace",
            [
                "servers[2].server: 'description' is required",
                'servers[2].server.name: "no namespace" does not match ^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$',
            ],
        ),
        (3, "", ["servers[3]: must be of type object, not str"]),
    ]
    assert list(Product.objects.values_list("slug", flat=True)) == ["good"]


def test_an_entry_the_services_refuse_leaves_nothing_behind(organization: Organization, member: User) -> None:
    document = [server("com.example/calendar", version="2025.01"), server("com.example/tagged", version="v1.2.3")]

    result = registry_import(actor=member, organization=organization, document=document)

    # The product was created before the version was refused: it is rolled back with it.
    assert [(e.index, e.errors) for e in result.errors] == [
        (0, ["[0].version: Use a semantic version such as 1.0.0 or 2.1.0-beta.1."])
    ]
    assert [(c.product_slug, c.version) for c in result.created] == [("tagged", "1.2.3")]
    assert not Product.objects.filter(slug="calendar").exists()


def test_servers_that_only_run_from_packages_are_skipped(organization: Organization, member: User) -> None:
    stdio = server(
        "io.github.someone/files",
        url="",
        packages=[
            {"registryType": "npm", "identifier": "@someone/files", "version": "1.0.0", "transport": {"type": "stdio"}}
        ],
    )
    bare = server("io.github.someone/nothing", url="")

    result = registry_import(actor=member, organization=organization, document={"servers": [stdio, bare]})

    assert result.created == []
    assert [(s.index, s.name) for s in result.skipped] == [
        (0, "io.github.someone/files"),
        (1, "io.github.someone/nothing"),
    ]
    assert "package (npm)" in result.skipped[0].reason
    assert "no streamable-http or sse remote" in result.skipped[1].reason
    assert not Product.objects.exists()


def test_templated_urls_and_our_own_gateway_are_skipped(
    organization: Organization, member: User, settings: SettingsWrapper
) -> None:
    templated = server("com.example/tenant", url="https://{tenant}.example.com/mcp")
    ours = server("io.github.ai-open-platform/demo", url=f"{settings.GATEWAY_URL}/mcp/demo")

    result = registry_import(actor=member, organization=organization, document=[templated, ours])

    assert result.created == []
    assert "template" in result.skipped[0].reason
    assert "own gateway" in result.skipped[1].reason


def test_the_streamable_http_remote_is_preferred_over_sse(organization: Organization, member: User) -> None:
    both = server("com.example/both", url="")
    both["remotes"] = [{"type": "sse", "url": PUBLIC_URL}, {"type": "streamable-http", "url": LOOPBACK_URL}]

    result = registry_import(actor=member, organization=organization, document=both)

    assert (result.created[0].upstream_url, result.created[0].transport) == (LOOPBACK_URL, "streamable_http")


def test_a_server_listed_in_several_versions_is_imported_once_at_its_latest(
    organization: Organization, member: User
) -> None:
    document = {
        "servers": [
            {
                "server": server("com.example/weather", "1.0.0", url=f"{LOOPBACK_URL}/1"),
                "_meta": {OFFICIAL: {"isLatest": False}},
            },
            {
                "server": server("com.example/weather", "1.2.0", url=f"{LOOPBACK_URL}/2"),
                "_meta": {OFFICIAL: {"isLatest": True}},
            },
            {
                "server": server("com.example/weather", "1.10.0", url=f"{LOOPBACK_URL}/3"),
                "_meta": {OFFICIAL: {"isLatest": False}},
            },
            {"server": server("com.example/maps", "1.0.0")},
            {"server": server("com.example/maps", "1.0.0")},
        ]
    }

    result = registry_import(actor=member, organization=organization, document=document)

    assert [(c.name, c.version, c.upstream_url) for c in result.created] == [
        ("com.example/weather", "1.2.0", f"{LOOPBACK_URL}/2"),
        ("com.example/maps", "1.0.0", LOOPBACK_URL),
    ]
    assert [s.index for s in result.skipped] == [0, 2, 4]
    assert "servers[1].server is the latest version" in result.skipped[0].reason
    assert "servers[1].server is the latest version" in result.skipped[1].reason
    assert "same server and version" in result.skipped[2].reason
    assert Product.objects.count() == 2


def test_without_is_latest_the_highest_semantic_version_wins(organization: Organization, member: User) -> None:
    document = [
        server("com.example/a", "1.10.0"),
        server("com.example/a", "1.9.0"),
        server("com.example/a", "2.0.0-rc.1"),
    ]
    result = registry_import(actor=member, organization=organization, document=document)
    assert [c.version for c in result.created] == ["1.10.0"]


def test_a_taken_slug_gets_a_suffix(organization: Organization, member: User) -> None:
    ProductFactory(slug="weather")  # another organization's product: slugs are global
    document = [server("com.a/weather", url=f"{LOOPBACK_URL}/a"), server("com.b/weather", url=f"{LOOPBACK_URL}/b")]

    result = registry_import(actor=member, organization=organization, document=document)

    assert [c.product_slug for c in result.created] == ["weather-2", "weather-3"]


def test_importing_the_same_servers_again_skips_them(organization: Organization, member: User) -> None:
    document = [server("com.example/weather")]
    registry_import(actor=member, organization=organization, document=document)

    again = registry_import(actor=member, organization=organization, document=document)

    assert again.created == []
    assert "product weather already has this URL" in again.skipped[0].reason
    assert Product.objects.count() == 1


def test_an_outsider_cannot_import_into_another_organization(organization: Organization, outsider: User) -> None:
    with pytest.raises(PermissionDenied):
        registry_import(actor=outsider, organization=organization, document=server("com.example/weather"))
    assert not Product.objects.exists()


@pytest.mark.parametrize(
    "url",
    ["http://10.1.2.3/mcp", "http://169.254.169.254/latest/meta-data", "http://[::1]:9/mcp"],
)
def test_an_upstream_on_a_private_address_is_refused(
    organization: Organization, member: User, settings: SettingsWrapper, url: str
) -> None:
    settings.SSRF_ALLOW_LOOPBACK = False

    result = registry_import(
        actor=member, organization=organization, document={"server": server("com.example/x", url=url)}
    )

    assert result.created == []
    [error] = result.errors
    assert len(error.errors) == 1
    assert error.errors[0].startswith("server.remotes[0].url: ")
    assert "which the platform does not call" in error.errors[0]
    assert not Product.objects.exists()


def test_loopback_is_refused_when_the_settings_do_not_allow_it(
    organization: Organization, member: User, settings: SettingsWrapper
) -> None:
    settings.SSRF_ALLOW_LOOPBACK = False
    result = registry_import(actor=member, organization=organization, document=server("com.example/x"))
    assert "a loopback address" in result.errors[0].errors[0]
    assert not Product.objects.exists()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"servers": "nope"}, "servers must be a list"),
        ({"servers": []}, "lists no servers"),
        ([server(f"com.example/s{n}") for n in range(101)], "At most 100 servers"),
        (42, "Give a server.json"),
    ],
)
def test_a_document_of_no_accepted_shape_imports_nothing(
    organization: Organization, member: User, document: Any, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        registry_import(actor=member, organization=organization, document=document)
    assert message in str(raised.value.message_dict["document"])
    assert not Product.objects.exists()


def test_a_refused_field_is_named_by_its_place_in_the_document(organization: Organization, member: User) -> None:
    long_url = "https://93.184.215.14/" + "a" * 600

    result = registry_import(
        actor=member, organization=organization, document={"servers": [server("com.example/x", url=long_url)]}
    )

    assert result.errors[0].errors == [
        "servers[0].remotes[0].url: Ensure this value has at most 500 characters (it has 622)."
    ]
    assert not Product.objects.exists()


def test_a_nul_character_anywhere_is_an_error_not_a_crash(organization: Organization, member: User) -> None:
    # PostgreSQL text cannot hold NUL; the services do not refuse it (see test_service_gaps.py).
    document = {"servers": [{"server": server("com.example/nul", description="a\x00b", title="T\x00")}]}

    result = registry_import(actor=member, organization=organization, document=json.dumps(document))

    assert result.created == []
    assert result.errors[0].errors == [
        "servers[0].server.description: contains a NUL character",
        "servers[0].server.title: contains a NUL character",
    ]
    assert not Product.objects.exists()
