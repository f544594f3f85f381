"""GET /v0.1/servers/{name}/versions and /v0.1/servers/{name}/versions/{version}."""

from __future__ import annotations

import pytest

from accounts.models import Organization
from marketplace.models import Product, ProductVersion
from tests.marketplace.registry.conftest import NAMESPACE, OFFICIAL, RegistryClient, mcp_server

pytestmark = pytest.mark.django_db
Status = ProductVersion.Status
ENCODED = f"{NAMESPACE}%2Ftools"


@pytest.fixture
def tools(organization: Organization) -> Product:
    return mcp_server(
        organization,
        "tools",
        [
            ("0.9.0", Status.RETIRED),
            ("1.0.0", Status.DEPRECATED),
            ("1.1.0+build.7", Status.PUBLISHED),
            ("2.0.0-rc.1", Status.DRAFT),
        ],
    )


def test_versions_lists_a_servers_versions_newest_first(registry: RegistryClient, tools: Product) -> None:
    body = registry.get(f"/v0.1/servers/{ENCODED}/versions")

    assert [e["server"]["version"] for e in body["servers"]] == ["1.1.0+build.7", "1.0.0"]
    assert [e["_meta"][OFFICIAL]["status"] for e in body["servers"]] == ["active", "deprecated"]
    assert [e["_meta"][OFFICIAL]["isLatest"] for e in body["servers"]] == [True, False]
    assert body["metadata"] == {"count": 2}


def test_versions_include_retired_ones_only_when_asked(registry: RegistryClient, tools: Product) -> None:
    body = registry.get(f"/v0.1/servers/{ENCODED}/versions", include_deleted="true")

    assert [(e["server"]["version"], e["_meta"][OFFICIAL]["status"]) for e in body["servers"]] == [
        ("1.1.0+build.7", "active"),
        ("1.0.0", "deprecated"),
        ("0.9.0", "deleted"),
    ]


def test_the_name_may_also_arrive_with_a_plain_slash(registry: RegistryClient, tools: Product) -> None:
    encoded = registry.get(f"/v0.1/servers/{ENCODED}/versions")
    plain = registry.get(f"/v0.1/servers/{NAMESPACE}/tools/versions")
    assert plain == encoded


def test_one_version_by_its_number(registry: RegistryClient, tools: Product) -> None:
    entry = registry.get(f"/v0.1/servers/{ENCODED}/versions/1.0.0")

    assert entry["server"]["name"] == f"{NAMESPACE}/tools"
    assert entry["server"]["version"] == "1.0.0"
    assert entry["_meta"][OFFICIAL]["status"] == "deprecated"
    assert entry["_meta"][OFFICIAL]["isLatest"] is False


def test_a_version_with_build_metadata_arrives_url_encoded(registry: RegistryClient, tools: Product) -> None:
    entry = registry.get(f"/v0.1/servers/{ENCODED}/versions/1.1.0%2Bbuild.7")
    assert entry["server"]["version"] == "1.1.0+build.7"


def test_latest_is_the_version_the_catalog_shows(registry: RegistryClient, tools: Product) -> None:
    entry = registry.get(f"/v0.1/servers/{ENCODED}/versions/latest")

    assert entry["server"]["version"] == "1.1.0+build.7"
    assert entry["_meta"][OFFICIAL]["isLatest"] is True


def test_a_retired_version_is_found_only_with_include_deleted(registry: RegistryClient, tools: Product) -> None:
    registry.error(f"/v0.1/servers/{ENCODED}/versions/0.9.0", 404)

    entry = registry.get(f"/v0.1/servers/{ENCODED}/versions/0.9.0", include_deleted="true")

    assert entry["_meta"][OFFICIAL]["status"] == "deleted"
    assert entry["_meta"][OFFICIAL]["isLatest"] is False


def test_a_server_whose_versions_are_all_retired_is_gone_unless_asked(
    registry: RegistryClient, organization: Organization
) -> None:
    mcp_server(organization, "gone", [("1.0.0", Status.RETIRED)])

    registry.error(f"/v0.1/servers/{NAMESPACE}%2Fgone/versions", 404)
    registry.error(f"/v0.1/servers/{NAMESPACE}%2Fgone/versions/latest", 404)
    body = registry.get(f"/v0.1/servers/{NAMESPACE}%2Fgone/versions", include_deleted="true")
    assert [e["_meta"][OFFICIAL]["status"] for e in body["servers"]] == ["deleted"]
    registry.error(f"/v0.1/servers/{NAMESPACE}%2Fgone/versions/latest", 404, include_deleted="true")


@pytest.mark.parametrize(
    "path",
    [
        f"/v0.1/servers/{NAMESPACE}%2Fnope/versions",
        f"/v0.1/servers/{NAMESPACE}%2Fnope/versions/1.0.0",
        f"/v0.1/servers/{NAMESPACE}%2Fnope/versions/latest",
        "/v0.1/servers/com.example%2Ftools/versions",
        "/v0.1/servers/tools/versions",
        f"/v0.1/servers/{NAMESPACE}%2Ftools%2Fextra/versions",
        f"/v0.1/servers/{ENCODED}/versions/9.9.9",
        f"/v0.1/servers/{ENCODED}/versions/2.0.0-rc.1",  # a draft
        f"/v0.1/servers/{ENCODED}%00/versions",
        f"/v0.1/servers/{ENCODED}/versions/1.0.0%00",
    ],
)
def test_unknown_servers_and_versions_are_json_404s(registry: RegistryClient, tools: Product, path: str) -> None:
    body = registry.error(path, 404)
    assert body["code"] == "not_found"


def test_the_404_says_whether_the_server_or_the_version_is_unknown(registry: RegistryClient, tools: Product) -> None:
    assert "No server named" in registry.error(f"/v0.1/servers/{NAMESPACE}%2Fnope/versions/1.0.0", 404)["detail"]
    assert "has no version" in registry.error(f"/v0.1/servers/{ENCODED}/versions/9.9.9", 404)["detail"]


def test_a_bad_include_deleted_is_a_400(registry: RegistryClient, tools: Product) -> None:
    registry.error(f"/v0.1/servers/{ENCODED}/versions", 400, include_deleted="yes please")
    registry.error(f"/v0.1/servers/{ENCODED}/versions/1.0.0", 400, include_deleted="2")
