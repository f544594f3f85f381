"""Plans: every product gets a free default plan when it is created; providers' admins
add plans whose limits are positive and consistent (a longer window never allows less
than a shorter one) and whose allowed models and tools are the product's own; a plan is
archived rather than deleted, except the default plan, which stays."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import AuditEvent, User
from consumers import services
from consumers.models import Plan, Subscription
from gateway_sync.selectors import config_generation
from marketplace.models import Product
from tests.consumers.services.scene import Stage, default_plan, needs_role, published_product
from tests.marketplace.factories import McpToolFactory, ModelOfferingFactory, ProductVersionFactory

LIMITS = [
    "requests_per_second",
    "requests_per_minute",
    "requests_per_day",
    "requests_per_month",
    "tokens_per_minute",
    "tokens_per_day",
    "tokens_per_month",
]


def create(stage: Stage, **fields: Any) -> Plan:
    return services.plan_create(actor=stage.provider.admin, product=stage.product, **{"name": "Team", **fields})


def test_every_new_product_gets_a_free_default_plan_that_approves_at_once(stage: Stage) -> None:
    product = published_product(stage.provider.owner, stage.provider.organization, "tides", publish=False)

    plan = default_plan(product)

    assert (plan.name, plan.price_label, plan.is_default, plan.is_active, plan.approval_required) == (
        "Free",
        "Free",
        True,
        True,
        False,
    )
    assert all(getattr(plan, limit) is None for limit in LIMITS)
    assert plan.monthly_budget_usd is None
    assert services.plan_ensure_default(product=product) == plan
    assert Plan.objects.filter(product=product).count() == 1


def test_a_plan_with_consistent_limits_is_created_and_audited(stage: Stage) -> None:
    plan = create(
        stage,
        price_label=" $9/month ",
        requests_per_second=5,
        requests_per_minute=5,
        requests_per_day=10_000,
        tokens_per_minute=1_000,
        tokens_per_month=1_000_000,
        monthly_budget_usd=Decimal("25.50"),
    )

    assert (plan.product, plan.is_default, plan.is_active) == (stage.product, False, True)
    event = AuditEvent.objects.get(action="plan.create", target_id=str(plan.pk))
    assert (event.actor, event.organization) == (stage.provider.admin, stage.provider.organization)
    assert event.changes["requests_per_day"] == 10_000
    assert event.changes["monthly_budget_usd"] == "25.50"


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("value", [0, -1])
def test_a_limit_of_zero_or_less_is_refused_naming_the_field(stage: Stage, limit: str, value: int) -> None:
    with pytest.raises(ValidationError) as caught:
        create(stage, **{limit: value})

    assert list(caught.value.message_dict) == [limit]
    assert "Ensure this value is greater than or equal to 1." in caught.value.message_dict[limit]


def test_a_negative_budget_is_refused(stage: Stage) -> None:
    with pytest.raises(ValidationError) as caught:
        create(stage, monthly_budget_usd=Decimal("-0.01"))

    assert caught.value.message_dict == {"monthly_budget_usd": ["Ensure this value is greater than or equal to 0."]}


@pytest.mark.parametrize(
    ("limits", "field", "message"),
    [
        (
            {"requests_per_second": 10, "requests_per_minute": 5},
            "requests_per_minute",
            "The requests per minute limit (5) is below the requests per second limit (10).",
        ),
        (
            {"requests_per_minute": 100, "requests_per_day": 99},
            "requests_per_day",
            "The requests per day limit (99) is below the requests per minute limit (100).",
        ),
        (
            {"requests_per_day": 1_000, "requests_per_month": 999},
            "requests_per_month",
            "The requests per month limit (999) is below the requests per day limit (1000).",
        ),
        (
            {"requests_per_second": 10, "requests_per_day": 5},
            "requests_per_day",
            "The requests per day limit (5) is below the requests per second limit (10).",
        ),
        (
            {"tokens_per_minute": 1_000, "tokens_per_day": 999},
            "tokens_per_day",
            "The tokens per day limit (999) is below the tokens per minute limit (1000).",
        ),
        (
            {"tokens_per_day": 50_000, "tokens_per_month": 10},
            "tokens_per_month",
            "The tokens per month limit (10) is below the tokens per day limit (50000).",
        ),
    ],
)
def test_a_longer_window_cannot_allow_less_than_a_shorter_one(
    stage: Stage, limits: dict[str, int], field: str, message: str
) -> None:
    generation = config_generation()

    with pytest.raises(ValidationError) as caught:
        create(stage, **limits)

    assert caught.value.message_dict == {field: [message]}
    assert not Plan.objects.filter(name="Team").exists()
    assert config_generation() == generation


def test_a_change_that_contradicts_the_other_limits_is_refused(stage: Stage) -> None:
    with pytest.raises(ValidationError) as caught:
        services.plan_update(actor=stage.provider.admin, plan=stage.premium, requests_per_minute=9)

    assert caught.value.message_dict == {
        "requests_per_minute": ["The requests per minute limit (9) is below the requests per second limit (10)."]
    }
    stage.premium.refresh_from_db()
    assert stage.premium.requests_per_minute == 300


def test_unknown_fields_are_refused(stage: Stage) -> None:
    with pytest.raises(ValidationError) as caught:
        create(stage, is_default=True, requests_per_hour=5)

    assert caught.value.messages == ["Unknown plan fields: is_default, requests_per_hour."]
    with pytest.raises(ValidationError) as caught:
        services.plan_update(actor=stage.provider.admin, plan=stage.premium, is_active=False)
    assert caught.value.messages == ["Unknown plan fields: is_active."]


def test_a_plan_name_is_unique_per_product(stage: Stage) -> None:
    with pytest.raises(ValidationError) as caught:
        create(stage, name="Premium")

    assert caught.value.message_dict == {"name": ["Weather already has a plan named 'Premium'."]}


def test_allowed_models_must_be_models_of_the_product(stage: Stage) -> None:
    llm = published_product(stage.provider.owner, stage.provider.organization, "llm", kind=Product.Kind.MODEL_API)
    ModelOfferingFactory(version=llm.versions.get(), public_name="chat-small")
    ModelOfferingFactory(version=ProductVersionFactory(product=llm, version="2.0.0"), public_name="chat-large")

    plan = services.plan_create(
        actor=stage.provider.admin, product=llm, name="Small", allowed_models=[" chat-small ", "chat-small", ""]
    )
    assert plan.allowed_models == ["chat-small"]

    with pytest.raises(ValidationError) as caught:
        services.plan_create(actor=stage.provider.admin, product=llm, name="Other", allowed_models=["gpt-9", "chat"])
    assert caught.value.message_dict == {"allowed_models": ["Llm has no model chat, gpt-9."]}

    with pytest.raises(ValidationError) as caught:
        create(stage, allowed_models=["chat-small"])
    assert caught.value.message_dict == {"allowed_models": ["Only model APIs have models to allow."]}


def test_a_plan_for_one_version_allows_only_that_versions_models(stage: Stage) -> None:
    llm = published_product(stage.provider.owner, stage.provider.organization, "llm", kind=Product.Kind.MODEL_API)
    v1 = llm.versions.get()
    ModelOfferingFactory(version=v1, public_name="chat-small")
    ModelOfferingFactory(version=ProductVersionFactory(product=llm, version="2.0.0"), public_name="chat-large")

    with pytest.raises(ValidationError) as caught:
        services.plan_create(
            actor=stage.provider.admin, product=llm, name="V1", version=v1, allowed_models=["chat-large"]
        )

    assert caught.value.message_dict == {"allowed_models": ["Llm has no model chat-large."]}


def test_allowed_tools_must_be_tools_of_the_product(stage: Stage) -> None:
    mcp = published_product(stage.provider.owner, stage.provider.organization, "mcp", kind=Product.Kind.MCP_SERVER)
    McpToolFactory(version=mcp.versions.get(), name="get_forecast")

    plan = services.plan_create(actor=stage.provider.admin, product=mcp, name="Read", allowed_tools=["get_forecast"])
    assert plan.allowed_tools == ["get_forecast"]

    with pytest.raises(ValidationError) as caught:
        services.plan_create(actor=stage.provider.admin, product=mcp, name="Bad", allowed_tools=["delete_all"])
    assert caught.value.message_dict == {"allowed_tools": ["Mcp has no tool delete_all."]}

    with pytest.raises(ValidationError) as caught:
        create(stage, allowed_tools=["get_forecast"])
    assert caught.value.message_dict == {"allowed_tools": ["Only MCP servers have tools to allow."]}


def test_the_version_must_be_the_products(stage: Stage) -> None:
    other = published_product(stage.provider.owner, stage.provider.organization, "tides")

    with pytest.raises(ValidationError) as caught:
        create(stage, version=other.versions.get())

    assert caught.value.message_dict == {"version": ["The version must belong to the plan's product."]}


def test_updating_audits_what_changed_and_a_no_op_records_nothing(stage: Stage) -> None:
    services.plan_update(actor=stage.provider.admin, plan=stage.premium, requests_per_minute=600, name=" Pro ")

    event = AuditEvent.objects.get(action="plan.update")
    assert event.changes == {"name": ["Premium", "Pro"], "requests_per_minute": [300, 600]}

    generation = config_generation()
    services.plan_update(actor=stage.provider.admin, plan=stage.premium, requests_per_minute=600)
    assert AuditEvent.objects.filter(action="plan.update").count() == 1
    assert config_generation() == generation


def test_an_archived_plan_keeps_its_subscribers(stage: Stage, member: User) -> None:
    subscription = services.subscription_request(actor=member, app=stage.app, product=stage.product, plan=stage.premium)

    plan = services.plan_archive(actor=stage.provider.admin, plan=stage.premium)

    assert plan.is_active is False
    subscription.refresh_from_db()
    assert (subscription.plan, subscription.status) == (stage.premium, Subscription.Status.PENDING)
    assert AuditEvent.objects.filter(action="plan.archive").count() == 1


def test_the_default_plan_cannot_be_archived(stage: Stage) -> None:
    with pytest.raises(ValidationError) as caught:
        services.plan_archive(actor=stage.provider.owner, plan=stage.free)

    assert caught.value.messages == ["The default plan cannot be archived; make another plan the default first."]
    stage.free.refresh_from_db()
    assert stage.free.is_active


def test_only_the_providers_admins_and_owners_manage_plans(
    stage: Stage, owner: User, member: User, staff: User
) -> None:
    for user in (stage.provider.member, owner, member, staff):
        with pytest.raises(PermissionDenied, match=needs_role("admin", "Weather Co")):
            services.plan_create(actor=user, product=stage.product, name="Team")
        with pytest.raises(PermissionDenied, match=needs_role("admin", "Weather Co")):
            services.plan_update(actor=user, plan=stage.premium, name="Mine")
        with pytest.raises(PermissionDenied, match=needs_role("admin", "Weather Co")):
            services.plan_archive(actor=user, plan=stage.premium)
