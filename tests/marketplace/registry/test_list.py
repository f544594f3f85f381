"""GET /v0.1/servers: what it lists, in which shape, and how it pages and filters."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from accounts.models import Organization, User
from marketplace import selectors
from marketplace.models import Product, ProductVersion
from tests.marketplace.factories import PublishedVersionFactory
from tests.marketplace.registry.conftest import NAMESPACE, OFFICIAL, PLATFORM, RegistryClient, mcp_server

pytestmark = pytest.mark.django_db
Status = ProductVersion.Status


def name(slug: str) -> str:
    return f"{NAMESPACE}/{slug}"


def test_a_published_server_is_listed_in_the_official_shape(
    registry: RegistryClient, organization: Organization
) -> None:
    mcp_server(organization, "demo-tools", tools=["search", "fetch"])

    body = registry.get("/v0.1/servers")

    assert body["metadata"] == {"count": 1}
    entry = body["servers"][0]
    server = entry["server"]
    assert server["$schema"] == "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
    assert server["name"] == "io.github.ai-open-platform/demo-tools"
    assert server["description"] == "Searches and fetches documents."
    assert server["title"] == "Demo-Tools"
    assert server["version"] == "1.0.0"
    assert server["websiteUrl"] == f"{settings.PORTAL_URL}/catalog/demo-tools/"
    assert "packages" not in server
    assert server["remotes"] == [
        {
            "type": "streamable-http",
            "url": f"{settings.GATEWAY_URL}/mcp/demo-tools",
            "headers": [
                {"name": "Authorization", "description": "Bearer <your app key>", "isRequired": True, "isSecret": True}
            ],
        }
    ]
    official = entry["_meta"][OFFICIAL]
    assert official["status"] == "active"
    assert official["isLatest"] is True
    version = ProductVersion.objects.get(product__slug="demo-tools")
    assert version.published_at is not None
    assert dt.datetime.fromisoformat(official["publishedAt"]) == version.published_at
    assert official["publishedAt"].endswith("Z")
    assert dt.datetime.fromisoformat(official["updatedAt"]) >= version.updated_at
    platform = entry["_meta"][PLATFORM]
    assert platform == {
        "productSlug": "demo-tools",
        "kind": "mcp_server",
        "upstreamTransport": "streamable_http",
        "toolsCount": 2,
        "tools": ["fetch", "search"],
        "provider": {"slug": "acme", "name": "Acme"},
        "catalogUrl": f"{settings.PORTAL_URL}/catalog/demo-tools/",
        "sunsetAt": None,
    }


def test_the_remote_points_at_the_default_gateway_address(registry: RegistryClient, organization: Organization) -> None:
    mcp_server(organization, "demo-tools")
    body = registry.get("/v0.1/servers")
    # config.settings' default; the test environment does not set GATEWAY_URL.
    assert body["servers"][0]["server"]["remotes"][0]["url"] == "http://127.0.0.1:8080/mcp/demo-tools"


def test_private_draft_and_non_mcp_products_never_appear(
    registry: RegistryClient, organization: Organization, member: User
) -> None:
    mcp_server(
        organization, "listed", [("1.0.0", Status.PUBLISHED), ("1.1.0", Status.DRAFT), ("1.2.0", Status.IN_REVIEW)]
    )
    mcp_server(organization, "private-server", visibility=Product.Visibility.PRIVATE)
    mcp_server(organization, "draft-only", [("1.0.0", Status.DRAFT)])
    mcp_server(organization, "in-review-only", [("1.0.0", Status.IN_REVIEW)])
    mcp_server(organization, "rest-api", kind=Product.Kind.REST_API, tools=[])
    mcp_server(organization, "agent", kind=Product.Kind.AGENT, tools=[])

    assert registry.names() == [(name("listed"), "1.0.0")]
    assert registry.names(include_deleted="true") == [(name("listed"), "1.0.0")]
    # Signed in as a member of the organization that owns them changes nothing: the
    # registry is the public catalog.
    registry.client.force_login(member)
    assert registry.names() == [(name("listed"), "1.0.0")]
    for slug in ("private-server", "draft-only", "rest-api"):
        registry.error(f"/v0.1/servers/{NAMESPACE}%2F{slug}/versions", 404)


def test_a_deprecated_version_shows_status_deprecated(registry: RegistryClient, organization: Organization) -> None:
    mcp_server(organization, "old-tools", [("1.0.0", Status.DEPRECATED)])

    entry = registry.get("/v0.1/servers")["servers"][0]

    official = entry["_meta"][OFFICIAL]
    version = ProductVersion.objects.get(product__slug="old-tools")
    assert official["status"] == "deprecated"
    assert official["isLatest"] is True  # still the one the catalog shows
    assert dt.datetime.fromisoformat(official["statusChangedAt"]) == version.deprecated_at
    assert "retired on" in official["statusMessage"]
    assert entry["_meta"][PLATFORM]["sunsetAt"] is not None


def test_retired_versions_appear_only_with_include_deleted(
    registry: RegistryClient, organization: Organization
) -> None:
    mcp_server(organization, "tools", [("1.0.0", Status.RETIRED), ("2.0.0", Status.PUBLISHED)])
    mcp_server(organization, "gone", [("1.0.0", Status.RETIRED)])

    assert registry.names() == [(name("tools"), "2.0.0")]
    assert registry.names(include_deleted="false") == [(name("tools"), "2.0.0")]

    body = registry.get("/v0.1/servers", include_deleted="true")
    listed = {(e["server"]["name"], e["server"]["version"]): e["_meta"][OFFICIAL] for e in body["servers"]}
    assert set(listed) == {(name("gone"), "1.0.0"), (name("tools"), "1.0.0"), (name("tools"), "2.0.0")}
    assert listed[name("tools"), "1.0.0"]["status"] == "deleted"
    assert listed[name("tools"), "1.0.0"]["isLatest"] is False
    assert listed[name("tools"), "2.0.0"] | {"isLatest": True} == listed[name("tools"), "2.0.0"]
    assert listed[name("gone"), "1.0.0"]["status"] == "deleted"
    assert listed[name("gone"), "1.0.0"]["isLatest"] is False


def test_a_sync_by_updated_since_learns_of_deletions_unless_told_otherwise(
    registry: RegistryClient, organization: Organization
) -> None:
    # As the official registry does: include_deleted defaults to true with updated_since.
    mcp_server(organization, "tools", [("1.0.0", Status.RETIRED), ("2.0.0", Status.PUBLISHED)])
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()

    assert registry.names(updated_since=since) == [(name("tools"), "1.0.0"), (name("tools"), "2.0.0")]
    assert registry.names(updated_since=since, include_deleted="false") == [(name("tools"), "2.0.0")]


def test_pages_follow_the_cursor_without_duplicates_or_gaps(
    registry: RegistryClient, organization: Organization
) -> None:
    for index in range(7):
        mcp_server(organization, f"server-{index}", [("1.0.0", Status.PUBLISHED), ("1.1.0", Status.PUBLISHED)])
    expected = sorted((name(f"server-{i}"), v) for i in range(7) for v in ("1.0.0", "1.1.0"))

    first = registry.get("/v0.1/servers", limit=5)
    assert first["metadata"]["count"] == 5
    assert first["metadata"]["nextCursor"]

    assert registry.names(limit=5) == expected
    assert registry.names(limit=1) == expected
    assert registry.names(limit=14) == expected
    last = registry.get("/v0.1/servers", limit=14)
    assert "nextCursor" not in last["metadata"]


def test_a_cursor_survives_servers_added_between_pages(registry: RegistryClient, organization: Organization) -> None:
    for slug in ("bravo", "charlie", "delta", "echo", "foxtrot"):
        mcp_server(organization, slug)
    first = registry.get("/v0.1/servers", limit=2)
    assert [e["server"]["name"] for e in first["servers"]] == [name("bravo"), name("charlie")]

    # New servers before, among and after the ones already seen; new versions of the
    # last one seen (sorts after the cursor) and of the first (sorts before it).
    mcp_server(organization, "alpha")
    mcp_server(organization, "charlie-two")
    mcp_server(organization, "zulu")
    PublishedVersionFactory(
        product=Product.objects.get(slug="charlie"), version="1.1.0", mcp_transport="streamable_http"
    )
    PublishedVersionFactory(product=Product.objects.get(slug="bravo"), version="1.1.0", mcp_transport="streamable_http")

    rest: list[tuple[str, str]] = []
    cursor = first["metadata"]["nextCursor"]
    while cursor:
        page = registry.get("/v0.1/servers", limit=2, cursor=cursor)
        rest += [(e["server"]["name"], e["server"]["version"]) for e in page["servers"]]
        cursor = page["metadata"].get("nextCursor")

    assert rest == [(name("charlie"), "1.1.0")] + [
        (name(s), "1.0.0") for s in ("charlie-two", "delta", "echo", "foxtrot", "zulu")
    ]


def test_limit_defaults_to_30_and_is_at_most_100(registry: RegistryClient, organization: Organization) -> None:
    mcp_server(organization, "many", [(f"1.0.{n}", Status.PUBLISHED) for n in range(31)], tools=["t"])

    assert registry.get("/v0.1/servers")["metadata"]["count"] == 30
    assert registry.get("/v0.1/servers", limit="")["metadata"]["count"] == 30
    assert registry.get("/v0.1/servers", limit=100)["metadata"]["count"] == 31
    assert registry.get("/v0.1/servers", limit=1)["metadata"]["count"] == 1
    for bad in ("0", "101", "-1", "ten", "1.5", "1e2"):
        body = registry.error("/v0.1/servers", 400, limit=bad)
        assert body["errors"] == [{"location": "query.limit", "message": body["detail"], "value": bad}]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("cursor", "not-a-cursor!"),
        ("cursor", base64.urlsafe_b64encode(b'{"slug": "x"}').decode()),
        ("cursor", base64.urlsafe_b64encode(b'["x", ""]').decode()),
        ("updated_since", "yesterday"),
        ("updated_since", "2025-01-01"),
        ("updated_since", "2025-01-01T00:00:00"),
        ("updated_since", "2025-13-01T00:00:00Z"),
        ("include_deleted", "maybe"),
        ("search", "x" * 201),
        ("search", "a\x00b"),
        ("version", "1.0.0\x00"),
        ("cursor", base64.urlsafe_b64encode(b'["a\\u0000", "1.0.0"]').decode()),
    ],
)
def test_bad_parameters_are_refused_with_a_problem_document(registry: RegistryClient, param: str, value: str) -> None:
    body = registry.error("/v0.1/servers", 400, **{param: value})
    assert body["errors"][0]["location"] == f"query.{param}"


def test_search_matches_a_substring_of_the_name_ignoring_case(
    registry: RegistryClient, organization: Organization
) -> None:
    mcp_server(organization, "weather-tools", name="Forecasts")
    mcp_server(organization, "github-issues")
    mcp_server(organization, "underscore-free")

    assert registry.names(search="WEATHER") == [(name("weather-tools"), "1.0.0")]
    assert registry.names(search="ai-open-platform/git") == [(name("github-issues"), "1.0.0")]
    assert registry.names(search="forecasts") == []  # the title is not the name
    assert len(registry.names(search="io.github.ai-open-platform/")) == 3
    assert registry.names(search="%") == []
    assert registry.names(search="_") == []


def test_updated_since_keeps_entries_changed_at_or_after_the_time(
    registry: RegistryClient, organization: Organization
) -> None:
    for slug in ("old", "new-version", "renamed"):
        mcp_server(organization, slug)
    long_ago = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    ProductVersion.objects.update(updated_at=long_ago)
    Product.objects.update(updated_at=long_ago)
    ProductVersion.objects.filter(product__slug="new-version").update(
        updated_at=dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    )
    Product.objects.filter(slug="renamed").update(updated_at=dt.datetime(2025, 7, 1, tzinfo=dt.UTC))

    assert registry.names(updated_since="2025-06-01T12:00:00Z") == [
        (name("new-version"), "1.0.0"),
        (name("renamed"), "1.0.0"),
    ]
    # The same moment with an offset, sent encoded and unencoded (+ reads as a space).
    assert registry.names(updated_since="2025-06-01T14:00:00.000000001+02:00") == [
        (name("new-version"), "1.0.0"),
        (name("renamed"), "1.0.0"),
    ]
    response = Client().get("/v0.1/servers?updated_since=2025-06-01T14:00:01+02:00")
    assert [e["server"]["name"] for e in response.json()["servers"]] == [name("renamed")]
    entry = registry.get("/v0.1/servers", updated_since="2025-06-15T00:00:00Z")["servers"][0]
    assert entry["_meta"][OFFICIAL]["updatedAt"] == "2025-07-01T00:00:00Z"
    assert registry.names(updated_since="2030-01-01T00:00:00Z") == []


def test_version_latest_lists_each_servers_latest_version(registry: RegistryClient, organization: Organization) -> None:
    mcp_server(
        organization, "one", [("1.0.0", Status.DEPRECATED), ("1.1.0", Status.PUBLISHED), ("2.0.0", Status.DRAFT)]
    )
    mcp_server(organization, "two", [("0.9.0", Status.PUBLISHED), ("1.0.0", Status.DEPRECATED)])
    mcp_server(organization, "three", [("1.0.0", Status.PUBLISHED), ("3.0.0", Status.RETIRED)])

    latest = registry.get("/v0.1/servers", version="latest", include_deleted="true")

    assert [(e["server"]["name"], e["server"]["version"]) for e in latest["servers"]] == [
        (name("one"), "1.1.0"),
        (name("three"), "1.0.0"),
        (name("two"), "1.0.0"),
    ]
    assert all(e["_meta"][OFFICIAL]["isLatest"] for e in latest["servers"])
    # "Latest" is what the catalog shows first.
    for product in Product.objects.all():
        shown = selectors.latest_live_version(product)
        assert shown is not None
        assert (name(product.slug), shown.version) in [
            (e["server"]["name"], e["server"]["version"]) for e in latest["servers"]
        ]


def test_version_filters_an_exact_version(registry: RegistryClient, organization: Organization) -> None:
    mcp_server(organization, "one", [("1.0.0", Status.PUBLISHED), ("1.1.0", Status.PUBLISHED)])
    mcp_server(organization, "two", [("1.0.0", Status.DEPRECATED)])
    mcp_server(organization, "three", [("1.1.0", Status.PUBLISHED)])

    assert registry.names(version="1.0.0") == [(name("one"), "1.0.0"), (name("two"), "1.0.0")]
    assert registry.names(version="9.9.9") == []


def test_the_list_costs_the_same_queries_for_many_servers(
    registry: RegistryClient, organization: Organization, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    for index in range(12):
        mcp_server(organization, f"server-{index}", tools=["a", "b", "c"])
    with django_assert_max_num_queries(3):
        body = registry.get("/v0.1/servers", limit=100)
    assert body["metadata"]["count"] == 12


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_only_get_is_allowed(method: str, organization: Organization) -> None:
    mcp_server(organization, "tools")
    for path in (
        "/v0.1/servers",
        f"/v0.1/servers/{NAMESPACE}%2Ftools/versions",
        f"/v0.1/servers/{NAMESPACE}%2Ftools/versions/1.0.0",
    ):
        response = getattr(Client(enforce_csrf_checks=True), method)(path)
        assert response.status_code == 405
        assert response["Allow"] == "GET, HEAD"
        assert response.json()["status"] == 405


def test_head_is_allowed(organization: Organization) -> None:
    mcp_server(organization, "tools")
    assert Client().head("/v0.1/servers").status_code == 200
    assert Client().head(f"/v0.1/servers/{NAMESPACE}%2Ftools/versions/latest").status_code == 200


def test_unknown_registry_paths_answer_a_json_404(registry: RegistryClient) -> None:
    registry.error("/v0.1/nothing-here", 404)
    registry.error("/v0.1/servers/", 404)
