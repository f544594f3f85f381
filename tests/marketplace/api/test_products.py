"""Products through the API: registered by any member of the organization, listed per
organization, edited, and deleted by admins while never published; every change audited."""

from __future__ import annotations

from typing import Any

from accounts.models import AuditEvent, Organization, User
from marketplace.models import Product
from tests.marketplace.api.helpers import (
    Api,
    assert_problem,
    create_product,
    create_version,
    ok,
    product_url,
    version_url,
)
from tests.marketplace.factories import ProductFactory, PublishedVersionFactory


def test_a_member_registers_a_product_for_their_organization(member_api: Api, member: User) -> None:
    body = create_product(
        member_api,
        "weather",
        "rest_api",
        description="# Weather\nForecasts.",
        categories=["data", "search"],
        tags=["Weather", "forecast", "weather"],
        visibility="private",
    )

    assert body["organization"] == "acme"
    assert (body["kind"], body["slug"], body["name"], body["visibility"]) == (
        "rest_api",
        "weather",
        "Weather",
        "private",
    )
    assert body["categories"] == ["data", "search"]
    assert body["tags"] == ["weather", "forecast"]
    assert body["icon_url"] is None
    assert body["versions"] == []
    product = Product.objects.get(slug="weather")
    assert product.created_by == member
    event = AuditEvent.objects.get(action="product.create")
    assert (event.actor, event.target_id, event.organization.slug) == (member, str(product.pk), "acme")


def test_products_are_listed_for_the_users_organizations_only(
    owner_api: Api, organization: Organization, outsider: User
) -> None:
    ProductFactory(organization=organization, slug="ours", name="Ours")
    ProductFactory(organization=outsider.memberships.get().organization, slug="theirs", name="Theirs")

    assert [p["slug"] for p in ok(owner_api.get("/api/v1/products/"))["results"]] == ["ours"]
    assert [p["slug"] for p in ok(owner_api.get("/api/v1/products/", {"organization": "acme"}))["results"]] == ["ours"]
    assert_problem(owner_api.get("/api/v1/products/", {"organization": "other"}), 404)


def test_staff_see_every_product(staff_api: Api, organization: Organization) -> None:
    ProductFactory(organization=organization, slug="ours")

    assert [p["slug"] for p in ok(staff_api.get("/api/v1/products/"))["results"]] == ["ours"]


def test_a_product_cannot_be_registered_for_an_organization_one_is_not_a_member_of(
    outsider_api: Api, organization: Organization
) -> None:
    body = {"organization": "acme", "kind": "rest_api", "slug": "intruder", "name": "X", "summary": "X"}

    assert_problem(outsider_api.post("/api/v1/products/", body), 404)
    assert not Product.objects.exists()


def test_a_duplicate_slug_is_refused_across_organizations(member_api: Api, outsider: User) -> None:
    ProductFactory(organization=outsider.memberships.get().organization, slug="weather")
    body = {"organization": "acme", "kind": "rest_api", "slug": "weather", "name": "Weather", "summary": "Forecasts."}

    problem = assert_problem(member_api.post("/api/v1/products/", body), 400, errors=True)

    assert problem["errors"] == {"slug": ["Product with this Slug already exists."]}


def test_bad_product_fields_are_refused_by_field(member_api: Api) -> None:
    body = {
        "organization": "acme",
        "kind": "teapot",
        "slug": "Not A Slug",
        "name": "X",
        "summary": "X",
        "categories": ["nonsense"],
    }

    problem = assert_problem(member_api.post("/api/v1/products/", body), 400, errors=True)
    assert set(problem["errors"]) == {"kind", "slug"}

    body.update(kind="rest_api", slug="fine")
    problem = assert_problem(member_api.post("/api/v1/products/", body), 400, errors=True)
    assert problem["errors"] == {"categories": ["Unknown categories: nonsense."]}
    assert not Product.objects.exists()


def test_a_member_edits_the_catalog_data_and_the_change_is_audited(member_api: Api, organization: Organization) -> None:
    ProductFactory(organization=organization, slug="weather", name="Weather")

    body = ok(
        member_api.patch(product_url("weather"), {"name": "Weather Pro", "tags": ["rain"], "categories": ["data"]})
    )

    assert (body["name"], body["tags"], body["categories"], body["slug"]) == (
        "Weather Pro",
        ["rain"],
        ["data"],
        "weather",
    )
    event = AuditEvent.objects.get(action="product.update")
    assert event.changes == {"name": "Weather Pro", "tags": ["rain"], "categories": ["data"]}


def test_only_an_admin_deletes_a_product_and_only_while_it_was_never_published(
    member_api: Api, admin_api: Api, organization: Organization
) -> None:
    ProductFactory(organization=organization, slug="draft-only")
    PublishedVersionFactory(product__organization=organization, product__slug="live")

    problem = assert_problem(member_api.delete(product_url("draft-only")), 403)
    assert problem["detail"] == "This needs the admin role in Acme."
    assert admin_api.delete(product_url("draft-only")).status_code == 204
    assert not Product.objects.filter(slug="draft-only").exists()
    assert AuditEvent.objects.filter(action="product.delete", target_repr__isnull=False).count() == 1

    problem = assert_problem(admin_api.delete(product_url("live")), 400, errors=True)
    assert problem["errors"] == {
        "non_field_errors": ["A product with published versions cannot be deleted; retire its versions instead."]
    }


def test_the_product_output_never_carries_icon_bytes(member_api: Api, organization: Organization) -> None:
    ProductFactory(
        organization=organization, slug="weather", icon=b"\x89PNG\r\n\x1a\nxx", icon_content_type="image/png"
    )

    body = ok(member_api.get(product_url("weather")))

    assert body["icon_url"] == "/api/v1/products/weather/icon/"
    assert "icon" not in body
    assert "icon_content_type" not in body


def test_a_product_stays_editable_after_its_creator_leaves(member_api: Api, owner_api: Api, member: User) -> None:
    create_product(member_api, "weather", "model_api")
    create_version(member_api, "weather", "1.0.0")
    member.delete()

    ok(owner_api.patch(product_url("weather"), {"summary": "Still ours."}))
    ok(owner_api.patch(version_url("weather", "1.0.0"), {"changelog": "Still ours."}))


def test_listing_products_takes_a_constant_number_of_queries(
    member_api: Api, organization: Organization, django_assert_max_num_queries: Any
) -> None:
    for n in range(10):
        PublishedVersionFactory(product__organization=organization, product__slug=f"product-{n}")

    with django_assert_max_num_queries(8):
        body = ok(member_api.get("/api/v1/products/"))

    assert body["count"] == 10
    assert all(len(product["versions"]) == 1 for product in body["results"])
