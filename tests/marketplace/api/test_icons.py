"""Product icons: uploaded as PNG or JPEG by members, served with headers that keep a
browser from treating the bytes as anything else, visible to anyone once the product is
in the catalog and only to members before."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from accounts.models import AuditEvent, Organization
from marketplace.models import Product
from tests.marketplace.api.helpers import Api, assert_problem, ok, product_url
from tests.marketplace.factories import ProductFactory, PublishedVersionFactory

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def put_multipart(api: Api, slug: str, fields: dict[str, Any]) -> Any:
    return api.client.put(
        product_url(slug, "icon/"), data=encode_multipart(BOUNDARY, fields), content_type=MULTIPART_CONTENT
    )


def upload(api: Api, slug: str, content: bytes, name: str = "icon.png") -> Any:
    return put_multipart(api, slug, {"icon": SimpleUploadedFile(name, content)})


def test_a_member_uploads_an_icon_and_it_is_served_with_safe_headers(
    member_api: Api, anonymous_api: Api, organization: Organization
) -> None:
    PublishedVersionFactory(product__organization=organization, product__slug="weather")

    body = ok(upload(member_api, "weather", PNG))

    assert body["icon_url"] == "/api/v1/products/weather/icon/"
    response = anonymous_api.get(body["icon_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'"
    assert response.content == PNG
    assert AuditEvent.objects.get(action="product.set_icon").changes == {"icon": "image/png"}


def test_a_client_that_accepts_only_images_gets_the_icon(member_api: Api, organization: Organization) -> None:
    ProductFactory(organization=organization, slug="weather", icon=JPEG, icon_content_type="image/jpeg")

    response = member_api.get(product_url("weather", "icon/"), HTTP_ACCEPT="image/jpeg")

    assert (response.status_code, response["Content-Type"]) == (200, "image/jpeg")


def test_an_icon_that_is_not_png_or_jpeg_or_too_large_is_refused(member_api: Api, organization: Organization) -> None:
    ProductFactory(organization=organization, slug="weather")

    svg = assert_problem(upload(member_api, "weather", b"<svg onload='alert(1)'/>", "icon.svg"), 400, errors=True)
    assert svg["errors"] == {"icon": ["Upload a PNG or JPEG image."]}
    large = assert_problem(upload(member_api, "weather", PNG + b"\x00" * 70_000), 400, errors=True)
    assert large["errors"] == {"icon": ["The icon is larger than 64 KiB."]}
    missing = assert_problem(put_multipart(member_api, "weather", {}), 400, errors=True)
    assert set(missing["errors"]) == {"icon"}
    assert Product.objects.get().icon is None


def test_deleting_the_icon_clears_it(member_api: Api, organization: Organization) -> None:
    ProductFactory(organization=organization, slug="weather", icon=PNG, icon_content_type="image/png")

    body = ok(member_api.delete(product_url("weather", "icon/")))

    assert body["icon_url"] is None
    assert_problem(member_api.get(product_url("weather", "icon/")), 404)


def test_the_icon_of_a_product_not_in_the_catalog_is_for_its_members_only(
    member_api: Api, outsider_api: Api, anonymous_api: Api, organization: Organization
) -> None:
    ProductFactory(organization=organization, slug="secret", icon=PNG, icon_content_type="image/png")
    PublishedVersionFactory(
        product__organization=organization,
        product__slug="private",
        product__visibility="private",
        product__icon=PNG,
        product__icon_content_type="image/png",
    )

    for slug in ("secret", "private"):
        assert member_api.get(product_url(slug, "icon/")).status_code == 200
        assert_problem(outsider_api.get(product_url(slug, "icon/")), 404)
        assert_problem(anonymous_api.get(product_url(slug, "icon/")), 404)


def test_outsiders_and_anonymous_users_cannot_change_an_icon(
    outsider_api: Api, anonymous_api: Api, organization: Organization
) -> None:
    PublishedVersionFactory(product__organization=organization, product__slug="weather")

    assert_problem(upload(outsider_api, "weather", PNG), 404)
    assert upload(anonymous_api, "weather", PNG).status_code in {401, 403}
    assert_problem(outsider_api.delete(product_url("weather", "icon/")), 404)
