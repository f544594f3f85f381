"""The server.json of a product: limits the schema sets, icons, and the settings that
name servers and point at the gateway."""

from __future__ import annotations

import pytest
from django.urls import NoReverseMatch, reverse
from pytest_django.fixtures import SettingsWrapper

from accounts.models import Organization
from marketplace.models import Product
from tests.marketplace.registry.conftest import PLATFORM, RegistryClient, mcp_server

pytestmark = pytest.mark.django_db
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def test_a_long_summary_is_cut_to_the_schemas_100_characters(
    registry: RegistryClient, organization: Organization
) -> None:
    summary = "Finds documents. " * 11  # 187 characters
    mcp_server(organization, "verbose", summary=summary.strip(), name="N" * 100)

    server = registry.get("/v0.1/servers")["servers"][0]["server"]

    assert len(server["description"]) == 100
    assert server["description"].endswith("…")
    assert summary.startswith(server["description"][:-1])
    assert server["title"] == "N" * 100


def test_line_breaks_in_a_summary_become_spaces(registry: RegistryClient, organization: Organization) -> None:
    mcp_server(organization, "lines", summary="Two\nlines.")
    assert registry.get("/v0.1/servers")["servers"][0]["server"]["description"] == "Two lines."


def test_no_icon_is_listed_while_the_portal_is_served_over_http(
    registry: RegistryClient, organization: Organization, settings: SettingsWrapper
) -> None:
    settings.PORTAL_URL = "http://portal.example.com"
    product = mcp_server(organization, "pictured")
    Product.objects.filter(pk=product.pk).update(icon=PNG, icon_content_type="image/png")

    assert "icons" not in registry.get("/v0.1/servers")["servers"][0]["server"]


def test_the_icon_is_the_portals_https_icon_url(
    registry: RegistryClient, organization: Organization, settings: SettingsWrapper
) -> None:
    try:
        icon_path = reverse("api-product-icon", args=["pictured"])
    except NoReverseMatch:
        pytest.fail("The provider API (api-product-icon) is not mounted: the registry then lists no icons.")
    settings.PORTAL_URL = "https://portal.example.com"
    product = mcp_server(organization, "pictured")
    Product.objects.filter(pk=product.pk).update(icon=PNG, icon_content_type="image/png")
    mcp_server(organization, "plain")

    servers = {e["server"]["name"]: e["server"] for e in registry.get("/v0.1/servers")["servers"]}

    assert servers["io.github.ai-open-platform/pictured"]["icons"] == [
        {"src": f"https://portal.example.com{icon_path}", "mimeType": "image/png"}
    ]
    assert "icons" not in servers["io.github.ai-open-platform/plain"]
    assert servers["io.github.ai-open-platform/plain"]["websiteUrl"] == "https://portal.example.com/catalog/plain/"


def test_the_namespace_setting_names_the_servers(
    registry: RegistryClient, organization: Organization, settings: SettingsWrapper
) -> None:
    settings.REGISTRY_NAMESPACE = "com.example.mcp"
    mcp_server(organization, "tools")

    body = registry.client.get("/v0.1/servers").json()

    assert body["servers"][0]["server"]["name"] == "com.example.mcp/tools"
    assert set(body["servers"][0]["_meta"]) == {"io.modelcontextprotocol.registry/official", "com.example.mcp/platform"}
    assert registry.client.get("/v0.1/servers/com.example.mcp%2Ftools/versions/latest").status_code == 200
    assert registry.client.get(f"/v0.1/servers/{PLATFORM.split('/')[0]}%2Ftools/versions").status_code == 404
    assert registry.client.get("/v0.1/servers", {"search": "example.mcp/"}).json()["metadata"]["count"] == 1


def test_the_gateway_setting_is_where_remotes_point(
    registry: RegistryClient, organization: Organization, settings: SettingsWrapper
) -> None:
    settings.GATEWAY_URL = "https://gateway.example.com"
    mcp_server(organization, "tools")

    remote = registry.get("/v0.1/servers")["servers"][0]["server"]["remotes"][0]

    assert remote["url"] == "https://gateway.example.com/mcp/tools"


def test_a_rest_to_mcp_server_is_listed_as_streamable_http_through_the_gateway(
    registry: RegistryClient, organization: Organization
) -> None:
    product = mcp_server(organization, "mapped")
    product.versions.update(mcp_transport="rest_to_mcp", upstream_url="https://rest.example.com")

    entry = registry.get("/v0.1/servers")["servers"][0]

    assert entry["server"]["remotes"][0]["type"] == "streamable-http"
    assert entry["server"]["remotes"][0]["url"].endswith("/mcp/mapped")
    assert entry["_meta"][PLATFORM]["upstreamTransport"] == "rest_to_mcp"
    assert "rest.example.com" not in str(entry)  # never the provider's upstream
