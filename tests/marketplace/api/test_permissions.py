"""The provider API's role matrix. Members create and edit drafts and submit them; only
admins and owners deprecate, retire and delete products; outsiders get 404 for everything
(they must not learn that a product exists); staff may read any product but change only
where they are members; anonymous users must sign in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Organization
from tests.marketplace.api.helpers import Api, product_url, version_url
from tests.marketplace.factories import (
    ModelOfferingFactory,
    ProductFactory,
    ProductVersionFactory,
    PublishedVersionFactory,
)


@dataclass(frozen=True)
class Action:
    name: str
    method: str
    path: str
    data: dict[str, Any] | None = None
    # Who may: the lowest role (member < admin < owner), or None for reads anyone of
    # the organization (and staff) may do.
    needs: str | None = "member"

    def send(self, api: Api) -> Any:
        data = self.data
        if data is not None and data.get("sunset_at") == "FUTURE":
            data = {"sunset_at": (timezone.now() + dt.timedelta(days=30)).isoformat()}
        if self.method in {"get", "delete"}:
            return getattr(api, self.method)(self.path)
        return getattr(api, self.method)(self.path, data)

    def __str__(self) -> str:
        return self.name


ACTIONS = [
    Action("read product", "get", product_url("weather"), needs=None),
    Action("list versions", "get", product_url("weather", "versions/"), needs=None),
    Action("read version", "get", version_url("weather", "1.0.0"), needs=None),
    Action("read icon of unpublished product", "get", product_url("unpublished", "icon/"), needs=None),
    Action("edit product", "patch", product_url("weather"), {"summary": "Changed."}),
    Action("create version", "post", product_url("weather", "versions/"), {"version": "2.0.0"}),
    Action("edit draft", "patch", version_url("weather", "1.1.0"), {"changelog": "Changed."}),
    Action("set models", "put", version_url("weather", "1.1.0", "models/"), {"models": [{"public_name": "m"}]}),
    Action("submit draft", "post", version_url("weather", "1.1.0", "submit/"), {}),
    Action("delete draft", "delete", version_url("weather", "1.1.0")),
    Action("deprecate", "post", version_url("weather", "1.0.0", "deprecate/"), {"sunset_at": "FUTURE"}, "admin"),
    Action("retire", "post", version_url("weather", "1.0.0", "retire/"), {}, "admin"),
    Action("delete product", "delete", product_url("unpublished"), needs="admin"),
]
RANK = {"member": 1, "admin": 2, "owner": 3}


@pytest.fixture
def products(organization: Organization) -> None:
    """Model API "weather" with a published 1.0.0 and a complete draft 1.1.0, and a product
    "unpublished" (with an icon) that never had a version."""
    product = ProductFactory(organization=organization, slug="weather", kind="model_api")
    ModelOfferingFactory(version=PublishedVersionFactory(product=product, version="1.0.0"))
    ModelOfferingFactory(
        version=ProductVersionFactory(product=product, version="1.1.0", upstream_url="http://127.0.0.1:9")
    )
    ProductFactory(
        organization=organization, slug="unpublished", icon=b"\x89PNG\r\n\x1a\n", icon_content_type="image/png"
    )


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_organization_roles(products: None, action: Action, role: str, request: pytest.FixtureRequest) -> None:
    api: Api = request.getfixturevalue(f"{role}_api" if role != "admin" else "admin_api")

    response = action.send(api)

    if action.needs is None or RANK[role] >= RANK[action.needs]:
        assert response.status_code in {200, 201, 204}, response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["detail"] == f"This needs the {action.needs} role in Acme."


@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_outsiders_get_404_for_everything(products: None, outsider_api: Api, action: Action) -> None:
    response = action.send(outsider_api)

    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_staff_read_any_product_but_change_only_where_they_are_members(
    products: None, staff_api: Api, action: Action
) -> None:
    response = action.send(staff_api)

    if action.needs is None:
        assert response.status_code == 200, response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["detail"] == f"This needs the {action.needs} role in Acme."


@pytest.mark.parametrize("action", [a for a in ACTIONS if a.name != "read icon of unpublished product"], ids=str)
def test_anonymous_users_must_sign_in(products: None, anonymous_api: Api, action: Action) -> None:
    response = action.send(anonymous_api)

    assert response.status_code == 401, response.content
    assert response.json()["code"] == "not_authenticated"


def test_anonymous_users_do_not_see_the_icon_of_an_unpublished_product(products: None, anonymous_api: Api) -> None:
    assert anonymous_api.get(product_url("unpublished", "icon/")).status_code == 404
