"""A product's plans on the provider pages: listed for every member, created, edited and
archived by admins and owners, with precise errors for bad limits and allowed names."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import AuditEvent, Organization, User
from consumers import services
from consumers.models import Plan
from marketplace.models import Product
from tests.conftest import client_for
from tests.consumers.pages.helpers import text
from tests.marketplace.factories import McpToolFactory, ProductFactory, PublishedVersionFactory

pytestmark = pytest.mark.django_db

FIELDS = {
    "name": "Pro",
    "price_label": "$49 / month",
    "description": "For production traffic.",
    "requests_per_second": "10",
    "requests_per_minute": "600",
    "requests_per_day": "100000",
    "requests_per_month": "",
    "tokens_per_minute": "50000",
    "tokens_per_day": "",
    "tokens_per_month": "",
    "monthly_budget_usd": "250.00",
    "allowed_models": ["chat-small"],
    "approval_required": "on",
    "version": "",
}


def _url(product: Product, rest: str = "") -> str:
    return f"/provider/products/{product.slug}/plans/{rest}"


@pytest.fixture
def mcp_product(owner: User, organization: Organization) -> Product:
    product = ProductFactory(organization=organization, kind=Product.Kind.MCP_SERVER, slug="acme-tools")
    version = PublishedVersionFactory(product=product)
    McpToolFactory(version=version, name="search")
    McpToolFactory(version=version, name="fetch")
    services.plan_ensure_default(product=product)
    return product


def test_anonymous_visitors_are_sent_to_sign_in(acme_product):
    response = Client().get(_url(acme_product))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("persona", "status", "form"),
    [("owner", 200, True), ("admin_member", 200, True), ("member", 200, False), ("outsider", 404, False),
     ("staff", 200, False)],
)  # fmt: skip
def test_who_sees_the_plans_and_who_gets_the_form(request, acme_product, persona, status, form):
    response = client_for(request.getfixturevalue(persona)).get(_url(acme_product))
    assert response.status_code == status
    if status == 200:
        page = text(response)
        assert "Free" in page
        assert ('id="plan-form"' in page) == form
        assert ("Read-only" in page) == (not form)


def test_the_product_page_links_to_its_plans(owner, acme_product):
    assert f'href="{_url(acme_product)}"' in text(client_for(owner).get(f"/provider/products/{acme_product.slug}/"))


def test_the_plan_form_offers_the_products_models(owner, acme_product):
    page = text(client_for(owner).get(_url(acme_product)))
    assert 'value="chat-small"' in page
    assert 'value="chat-large"' in page
    assert 'name="allowed_tools"' not in page


def test_creating_a_plan_with_every_field(owner, acme_product):
    response = client_for(owner).post(_url(acme_product), FIELDS, follow=True)
    assert response.redirect_chain == [(_url(acme_product), 302)]
    assert "Created the Pro plan." in text(response)
    plan = Plan.objects.get(product=acme_product, name="Pro")
    assert (plan.requests_per_second, plan.requests_per_minute, plan.requests_per_day) == (10, 600, 100_000)
    assert plan.requests_per_month is None
    assert plan.tokens_per_minute == 50_000
    assert plan.monthly_budget_usd == Decimal("250.00")
    assert plan.allowed_models == ["chat-small"]
    assert plan.approval_required
    assert plan.version is None
    assert AuditEvent.objects.filter(action="plan.create", target_id=str(plan.pk)).exists()
    assert "600 requests/minute" in text(response)


@pytest.mark.parametrize(
    ("persona", "status"), [("admin_member", 302), ("member", 403), ("outsider", 404), ("staff", 403)]
)
def test_who_creates_plans(request, acme_product, persona, status):
    response = client_for(request.getfixturevalue(persona)).post(_url(acme_product), FIELDS)
    assert response.status_code == status
    assert Plan.objects.filter(product=acme_product, name="Pro").exists() == (status == 302)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"requests_per_minute": "-5"}, "requests_per_minute", "Ensure this value is greater than or equal to 1."),
        ({"monthly_budget_usd": "-1"}, "monthly_budget_usd", "Ensure this value is greater than or equal to 0."),
        (
            {"requests_per_day": "100"},
            "requests_per_day",
            "The requests per day limit (100) is below the requests per minute limit (600).",
        ),
        (
            {"tokens_per_minute": "5000", "tokens_per_month": "10"},
            "tokens_per_month",
            "The tokens per month limit (10) is below the tokens per minute limit (5000).",
        ),
        ({"allowed_models": ["gpt-9"]}, "allowed_models", "Acme Llm has no model gpt-9."),
        ({"name": "Free"}, "name", "Acme Llm already has a plan named 'Free'."),
        ({"name": ""}, "name", "This field is required."),
    ],
)
def test_bad_plans_get_a_precise_error_and_nothing_is_saved(owner, acme_product, changes, field, message):
    before = list(Plan.objects.values())
    response = client_for(owner).post(_url(acme_product), {**FIELDS, **changes})
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert list(Plan.objects.values()) == before


def test_allowed_tools_must_be_the_products_tools(owner, mcp_product):
    client = client_for(owner)
    page = text(client.get(_url(mcp_product)))
    assert 'value="search"' in page
    assert 'name="allowed_models"' not in page
    data = {**FIELDS, "allowed_models": [], "allowed_tools": ["search", "rm_rf"]}
    response = client.post(_url(mcp_product), data)
    assert response.status_code == 400
    assert response.context["form"].errors["allowed_tools"] == [f"{mcp_product.name} has no tool rm_rf."]
    assert not Plan.objects.filter(product=mcp_product, name="Pro").exists()
    response = client.post(_url(mcp_product), {**data, "allowed_tools": ["search"]})
    assert response.status_code == 302
    assert Plan.objects.get(product=mcp_product, name="Pro").allowed_tools == ["search"]


def test_editing_a_plan(owner, acme_product):
    plan = services.plan_create(actor=owner, product=acme_product, name="Pro", requests_per_minute=60)
    client = client_for(owner)
    page = text(client.get(_url(acme_product, f"{plan.pk}/")))
    assert 'value="60"' in page
    response = client.post(_url(acme_product, f"{plan.pk}/"), {**FIELDS, "name": "Pro+", "requests_per_minute": "120"})
    assert response.status_code == 302
    plan.refresh_from_db()
    assert (plan.name, plan.requests_per_minute, plan.approval_required) == ("Pro+", 120, True)
    event = AuditEvent.objects.get(action="plan.update", target_id=str(plan.pk))
    assert event.changes["requests_per_minute"] == [60, 120]


def test_a_bad_edit_changes_nothing(owner, acme_product):
    plan = services.plan_create(actor=owner, product=acme_product, name="Pro", requests_per_minute=60)
    response = client_for(owner).post(
        _url(acme_product, f"{plan.pk}/"), {**FIELDS, "requests_per_second": "100", "requests_per_minute": "60"}
    )
    assert response.status_code == 400
    page = text(response)
    assert "The requests per minute limit (60) is below the requests per second limit (100)." in page
    assert "<h1>The Pro plan of Acme Llm</h1>" in page
    plan.refresh_from_db()
    assert (plan.requests_per_second, plan.name, plan.approval_required) == (None, "Pro", False)


@pytest.mark.parametrize(("persona", "status"), [("member", 403), ("outsider", 404), ("staff", 403)])
def test_who_edits_plans(request, owner, acme_product, persona, status):
    plan = services.plan_create(actor=owner, product=acme_product, name="Pro")
    client = client_for(request.getfixturevalue(persona))
    assert client.get(_url(acme_product, f"{plan.pk}/")).status_code == status
    assert client.post(_url(acme_product, f"{plan.pk}/"), {**FIELDS, "name": "Hacked"}).status_code == status
    plan.refresh_from_db()
    assert plan.name == "Pro"


def test_a_plan_of_another_product_is_not_found(owner, acme_product, mcp_product):
    plan = Plan.objects.get(product=mcp_product)
    assert client_for(owner).get(_url(acme_product, f"{plan.pk}/")).status_code == 404


def test_archiving_a_plan(owner, acme_product):
    plan = services.plan_create(actor=owner, product=acme_product, name="Pro")
    response = client_for(owner).post(_url(acme_product, f"{plan.pk}/archive/"), follow=True)
    assert "Archived the Pro plan" in text(response)
    plan.refresh_from_db()
    assert not plan.is_active
    assert "archived" in text(response)
    assert AuditEvent.objects.filter(action="plan.archive", target_id=str(plan.pk)).exists()


def test_the_default_plan_cannot_be_archived(owner, acme_product):
    plan = Plan.objects.get(product=acme_product, is_default=True)
    response = client_for(owner).post(_url(acme_product, f"{plan.pk}/archive/"))
    assert response.status_code == 400
    assert "The default plan cannot be archived; make another plan the default first." in text(response)
    plan.refresh_from_db()
    assert plan.is_active


@pytest.mark.parametrize(("persona", "status"), [("member", 403), ("outsider", 404), ("staff", 403)])
def test_who_archives_plans(request, owner, acme_product, persona, status):
    plan = services.plan_create(actor=owner, product=acme_product, name="Pro")
    response = client_for(request.getfixturevalue(persona)).post(_url(acme_product, f"{plan.pk}/archive/"))
    assert response.status_code == status
    plan.refresh_from_db()
    assert plan.is_active
