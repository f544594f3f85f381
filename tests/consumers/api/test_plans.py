"""Plans through the API: anyone reads the active plans of a product in the catalog; the
provider's members also see archived plans and the plans of unpublished products; the
provider's admins create, edit and archive plans, with refusals naming the field and
saying exactly what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import User
from consumers import services
from consumers.models import Plan
from gateway_sync.selectors import config_generation
from marketplace.models import Product
from tests.consumers.api.urls import plan_url, plans_url
from tests.consumers.services.scene import Stage, published_product
from tests.marketplace.api.helpers import Api, assert_problem, ok
from tests.marketplace.factories import ModelOfferingFactory, ProductVersionFactory

PLAN_FIELDS = {
    "id",
    "product",
    "version",
    "name",
    "price_label",
    "description",
    "requests_per_second",
    "requests_per_minute",
    "requests_per_day",
    "requests_per_month",
    "tokens_per_minute",
    "tokens_per_day",
    "tokens_per_month",
    "monthly_budget_usd",
    "allowed_models",
    "allowed_tools",
    "approval_required",
    "is_default",
    "is_active",
    "created_at",
    "updated_at",
}
LIMITS = [
    "requests_per_second",
    "requests_per_minute",
    "requests_per_day",
    "requests_per_month",
    "tokens_per_minute",
    "tokens_per_day",
    "tokens_per_month",
]


def names(response: Any) -> list[str]:
    return [plan["name"] for plan in ok(response)["results"]]


# --- Reading -----------------------------------------------------------------------------


def test_anyone_reads_the_active_plans_of_a_product_in_the_catalog(stage: Stage, anonymous_api: Api) -> None:
    services.plan_create(actor=stage.provider.admin, product=stage.product, name="Archived")
    services.plan_archive(actor=stage.provider.admin, plan=Plan.objects.get(name="Archived"))

    listed = ok(anonymous_api.get(plans_url("weather")))

    assert [p["name"] for p in listed["results"]] == ["Free", "Premium"]
    free, premium = listed["results"]
    assert set(free) == PLAN_FIELDS
    assert (free["is_default"], free["approval_required"], free["requests_per_second"]) == (True, False, None)
    assert (premium["price_label"], premium["approval_required"], premium["requests_per_minute"]) == (
        "$49/month",
        True,
        300,
    )
    assert ok(anonymous_api.get(plan_url(stage.premium.pk)))["name"] == "Premium"


def test_the_providers_members_also_see_archived_plans(stage: Stage) -> None:
    services.plan_archive(actor=stage.provider.admin, plan=stage.premium)
    provider_member = Api(stage.provider.member)

    assert names(provider_member.get(plans_url("weather"))) == ["Free", "Premium"]
    assert names(Api().get(plans_url("weather"))) == ["Free"]
    assert ok(provider_member.get(plan_url(stage.premium.pk)))["is_active"] is False
    assert assert_problem(Api().get(plan_url(stage.premium.pk)), 404)["code"] == "not_found"


@pytest.mark.parametrize("slug", ["internal", "draft-only", "no-such-product"])
def test_the_plans_of_a_product_outside_ones_catalog_are_a_404(stage: Stage, member_api: Api, slug: str) -> None:
    assert assert_problem(member_api.get(plans_url(slug)), 404)["code"] == "not_found"
    assert assert_problem(Api().get(plans_url(slug)), 404)["code"] == "not_found"
    if slug != "no-such-product":
        assert names(Api(stage.provider.member).get(plans_url(slug))) == ["Free"]


def test_the_plan_of_a_private_product_is_a_404_to_others(stage: Stage, member_api: Api) -> None:
    plan = Plan.objects.get(product=stage.private_product)

    assert assert_problem(member_api.get(plan_url(plan.pk)), 404)["code"] == "not_found"
    assert ok(Api(stage.provider.member).get(plan_url(plan.pk)))["product"] == "internal"


# --- Creating and editing ----------------------------------------------------------------


def test_an_admin_creates_a_plan(stage: Stage, provider_api: Api) -> None:
    generation = config_generation()

    body = ok(
        provider_api.post(
            plans_url("weather"),
            {
                "name": "Team",
                "price_label": "$9/month",
                "requests_per_second": 5,
                "requests_per_minute": 100,
                "tokens_per_month": 5_000_000_000,
                "monthly_budget_usd": "120.50",
                "approval_required": True,
                "version": "1.0.0",
            },
        ),
        201,
    )

    assert (body["product"], body["name"], body["version"], body["monthly_budget_usd"]) == (
        "weather",
        "Team",
        "1.0.0",
        "120.50",
    )
    assert (body["requests_per_minute"], body["tokens_per_month"], body["is_default"]) == (100, 5_000_000_000, False)
    assert Plan.objects.get(pk=body["id"]).version == stage.product.versions.get()
    assert config_generation() == generation + 1


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("value", [0, -5])
def test_a_limit_of_zero_or_less_is_a_400_naming_the_field(
    stage: Stage, provider_api: Api, limit: str, value: int
) -> None:
    generation = config_generation()

    response = provider_api.post(plans_url("weather"), {"name": "Team", limit: value})

    body = assert_problem(response, 400, errors=True)
    assert body["errors"] == {limit: ["Ensure this value is greater than or equal to 1."]}
    assert config_generation() == generation


def test_a_negative_budget_is_a_400(stage: Stage, provider_api: Api) -> None:
    response = provider_api.post(plans_url("weather"), {"name": "Team", "monthly_budget_usd": "-1"})

    assert assert_problem(response, 400, errors=True)["errors"] == {
        "monthly_budget_usd": ["Ensure this value is greater than or equal to 0."]
    }


def test_a_limit_beyond_the_column_is_a_400_not_a_500(stage: Stage, provider_api: Api) -> None:
    response = provider_api.post(plans_url("weather"), {"name": "Team", "requests_per_day": 2**31})

    assert assert_problem(response, 400, errors=True)["errors"] == {
        "requests_per_day": ["Ensure this value is less than or equal to 2147483647."]
    }


@pytest.mark.parametrize(
    ("limits", "field", "message"),
    [
        (
            {"requests_per_second": 10, "requests_per_minute": 5},
            "requests_per_minute",
            "The requests per minute limit (5) is below the requests per second limit (10).",
        ),
        (
            {"requests_per_minute": 600, "requests_per_month": 500},
            "requests_per_month",
            "The requests per month limit (500) is below the requests per minute limit (600).",
        ),
        (
            {"tokens_per_minute": 10_000, "tokens_per_day": 9_999},
            "tokens_per_day",
            "The tokens per day limit (9999) is below the tokens per minute limit (10000).",
        ),
    ],
)
def test_contradictory_limits_are_a_400_with_the_precise_message(
    stage: Stage, provider_api: Api, limits: dict[str, int], field: str, message: str
) -> None:
    generation = config_generation()

    response = provider_api.post(plans_url("weather"), {"name": "Team", **limits})

    assert assert_problem(response, 400, errors=True)["errors"] == {field: [message]}
    assert not Plan.objects.filter(name="Team").exists()
    assert config_generation() == generation


def test_allowed_models_and_tools_must_be_the_products(stage: Stage, provider_api: Api) -> None:
    llm = published_product(stage.provider.owner, stage.provider.organization, "llm", kind=Product.Kind.MODEL_API)
    ModelOfferingFactory(version=llm.versions.get(), public_name="chat-small")

    unknown_model = provider_api.post(plans_url("llm"), {"name": "Big", "allowed_models": ["chat-huge"]})
    tools_of_a_model_api = provider_api.post(plans_url("llm"), {"name": "Tools", "allowed_tools": ["search"]})
    good = provider_api.post(plans_url("llm"), {"name": "Small", "allowed_models": ["chat-small"]})

    assert assert_problem(unknown_model, 400, errors=True)["errors"] == {
        "allowed_models": ["Llm has no model chat-huge."]
    }
    assert assert_problem(tools_of_a_model_api, 400, errors=True)["errors"] == {
        "allowed_tools": ["Only MCP servers have tools to allow."]
    }
    assert ok(good, 201)["allowed_models"] == ["chat-small"]


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"name": "Team", "is_default": True}, {"is_default": ["Unknown field."]}),
        (
            {"name": "Team", "requests_per_hour": 5, "id": 3},
            {"id": ["Unknown field."], "requests_per_hour": ["Unknown field."]},
        ),
        ({"name": "Team", "version": "9.9.9"}, {"version": ["Weather has no version 9.9.9."]}),
        ({"name": "Premium"}, {"name": ["Weather already has a plan named 'Premium'."]}),
        (
            {"name": "Team", "allowed_models": "chat"},
            {"allowed_models": ['Expected a list of items but got type "str".']},
        ),
        ({}, {"name": ["This field is required."]}),
    ],
)
def test_an_invalid_plan_is_a_400_naming_the_field(
    stage: Stage, provider_api: Api, data: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    response = provider_api.post(plans_url("weather"), data)

    assert assert_problem(response, 400, errors=True)["errors"] == errors
    assert not Plan.objects.filter(name="Team").exists()


def test_an_admin_edits_a_plan_and_null_clears_a_limit(stage: Stage, provider_api: Api) -> None:
    generation = config_generation()

    body = ok(provider_api.patch(plan_url(stage.premium.pk), {"requests_per_second": None, "description": "Fast."}))

    assert (body["requests_per_second"], body["requests_per_minute"], body["description"]) == (None, 300, "Fast.")
    assert config_generation() == generation + 1


def test_an_edit_that_contradicts_the_other_limits_is_refused(stage: Stage, provider_api: Api) -> None:
    generation = config_generation()

    response = provider_api.patch(plan_url(stage.premium.pk), {"requests_per_minute": 9})

    assert assert_problem(response, 400, errors=True)["errors"] == {
        "requests_per_minute": ["The requests per minute limit (9) is below the requests per second limit (10)."]
    }
    stage.premium.refresh_from_db()
    assert stage.premium.requests_per_minute == 300
    assert config_generation() == generation


def test_a_plan_can_be_tied_to_a_version_and_untied(stage: Stage, provider_api: Api) -> None:
    ProductVersionFactory(product=stage.product, version="2.0.0")

    tied = ok(provider_api.patch(plan_url(stage.premium.pk), {"version": "2.0.0"}))
    untied = ok(provider_api.patch(plan_url(stage.premium.pk), {"version": None}))

    assert (tied["version"], untied["version"]) == ("2.0.0", None)


# --- Archiving ---------------------------------------------------------------------------


def test_an_archived_plan_takes_no_new_subscriptions_but_bumps_nothing(
    stage: Stage, provider_api: Api, member: User
) -> None:
    generation = config_generation()

    body = ok(provider_api.post(plan_url(stage.premium.pk, "archive/")))

    assert body["is_active"] is False
    assert config_generation() == generation


def test_the_default_plan_cannot_be_archived(stage: Stage, provider_api: Api) -> None:
    response = provider_api.post(plan_url(stage.free.pk, "archive/"))

    assert assert_problem(response, 400, errors=True)["errors"] == {
        "non_field_errors": ["The default plan cannot be archived; make another plan the default first."]
    }
    stage.free.refresh_from_db()
    assert stage.free.is_active


def test_a_new_product_comes_with_its_default_plan(stage: Stage, organization: Any, member_api: Api) -> None:
    body = ok(
        member_api.post(
            "/api/v1/products/",
            {"organization": "acme", "kind": "rest_api", "slug": "acme-api", "name": "Acme API", "summary": "S."},
        ),
        201,
    )

    assert names(member_api.get(plans_url(body["slug"]))) == ["Free"]
    assert Plan.objects.get(product__slug="acme-api").is_default
