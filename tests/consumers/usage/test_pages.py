"""The usage tables: on the consumer's app page and on the provider's /provider/usage/,
who sees what (owner, member, outsider, staff), and the aggregates they show."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from accounts.models import User
from consumers.models import ConsumerApp
from consumers.selectors_usage import RECENT_EVENTS, app_usage, provider_usage
from consumers.usage import usage_ingest
from marketplace.models import Product
from tests.conftest import client_for
from tests.consumers.pages.helpers import text
from tests.consumers.usage.conftest import make_event

pytestmark = pytest.mark.django_db
HOUR = 3600.0
DAY = 24 * HOUR


@pytest.fixture
def traffic(app: ConsumerApp, acme_product: Product, vendor_product: Product) -> None:
    """Acme's app: 3 calls to acme-llm in the last hour (one an error), one to vendor-llm two
    days ago, one to acme-llm 40 days ago; another app's call to acme-llm an hour ago."""
    now = time.time()
    acme = {"app_id": app.pk, "product_id": acme_product.pk, "product_slug": "acme-llm"}
    vendor = {"app_id": app.pk, "product_id": vendor_product.pk, "product_slug": "vendor-llm"}
    usage_ingest(
        events=[
            make_event(**acme, at=now - 60, prompt_tokens=10, completion_tokens=5, cost_microusd=1_000),
            make_event(**acme, at=now - 120, prompt_tokens=20, completion_tokens=None, cost_microusd=None),
            make_event(
                **acme,
                at=now - 180,
                status=502,
                is_error=True,
                prompt_tokens=None,
                completion_tokens=None,
                cost_microusd=None,
            ),
            make_event(**vendor, at=now - 2 * DAY, prompt_tokens=100, completion_tokens=50, cost_microusd=2_500),
            make_event(**acme, at=now - 40 * DAY, prompt_tokens=1_000, cost_microusd=9_000),
            make_event(
                **{**acme, "app_id": app.pk + 1000},
                at=now - HOUR,
                prompt_tokens=7,
                completion_tokens=0,
                cost_microusd=300,
            ),
        ]
    )


def _rows(window: object) -> dict[str, tuple[int, int, int, int]]:
    return {r.product_slug: (r.requests, r.errors, r.tokens, r.cost_microusd) for r in window.rows}  # type: ignore[attr-defined]


def test_app_usage_sums_requests_errors_tokens_and_cost_per_product_and_window(
    owner: User, app: ConsumerApp, traffic: None
) -> None:
    day, month = app_usage(owner, app).windows
    assert _rows(day) == {"acme-llm": (3, 1, 35, 1_000)}
    assert _rows(month) == {"acme-llm": (3, 1, 35, 1_000), "vendor-llm": (1, 0, 150, 2_500)}
    assert (month.total.requests, month.total.errors, month.total.tokens, month.total.cost_microusd) == (
        4,
        1,
        185,
        3_500,
    )
    assert str(month.total.cost_usd) == "0.0035"


def test_provider_usage_counts_every_app_calling_the_providers_products(
    owner: User, app: ConsumerApp, traffic: None
) -> None:
    day, month = provider_usage(owner).windows
    assert _rows(day) == {"acme-llm": (4, 1, 42, 1_300)}
    assert _rows(month) == _rows(day), "vendor-llm is not Acme's product"


def test_the_latest_requests_are_listed_newest_first_and_capped(owner: User, app: ConsumerApp) -> None:
    now = time.time()
    usage_ingest(events=[make_event(app_id=app.pk, at=now - i) for i in range(RECENT_EVENTS + 5)])
    recent = app_usage(owner, app).recent
    assert len(recent) == RECENT_EVENTS
    assert [e.at for e in recent] == sorted((e.at for e in recent), reverse=True)


@pytest.mark.parametrize(("persona", "status"), [("owner", 200), ("member", 200), ("outsider", 404), ("staff", 200)])
def test_the_app_page_shows_usage_to_the_apps_organization_and_staff(
    request: pytest.FixtureRequest, persona: str, status: int, app: ConsumerApp, traffic: None
) -> None:
    response = client_for(request.getfixturevalue(persona)).get(f"/consumer/apps/{app.pk}/")
    assert response.status_code == status
    if status == 200:
        page = text(response)
        assert 'id="usage"' in page
        assert "vendor-llm" in page
        assert "acme-llm" in page
        assert "$0.0035" in page


@pytest.mark.parametrize(
    ("persona", "sees_acme"), [("owner", True), ("member", True), ("outsider", False), ("staff", True)]
)
def test_the_provider_usage_page_shows_each_provider_its_own_products(
    request: pytest.FixtureRequest, persona: str, sees_acme: bool, traffic: None
) -> None:
    client = client_for(request.getfixturevalue(persona))
    response = client.get("/provider/usage/")
    assert response.status_code == 200
    assert ("acme-llm" in text(response)) is sees_acme
    filtered = client.get("/provider/usage/?product=acme-llm")
    assert filtered.status_code == (200 if sees_acme else 404)
    if sees_acme:
        month = filtered.context["summary"].windows[1]
        assert [row.product_slug for row in month.rows] == ["acme-llm"]


def test_staff_see_every_products_usage(staff: User, traffic: None) -> None:
    page = text(client_for(staff).get("/provider/usage/"))
    assert "acme-llm" in page
    assert "vendor-llm" in page


def test_anonymous_visitors_are_sent_to_sign_in() -> None:
    response = Client().get("/provider/usage/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/")
