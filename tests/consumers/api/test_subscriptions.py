"""Subscriptions through the API, from both sides: the consumer subscribes an app
(approved at once, or pending the provider's approval) and cancels; the provider lists
what it may decide on and approves, rejects, suspends and resumes. Refusals are problem
documents that say why; every decision is emailed to the other side and audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from accounts.models import AuditEvent, User
from consumers import services
from consumers.models import Subscription
from gateway_sync.selectors import config_generation
from tests.consumers.api.urls import PROVIDER_SUBSCRIPTIONS, app_url, subscription_url
from tests.consumers.services.scene import Stage, published_product
from tests.marketplace.api.helpers import Api, assert_problem, ok

CONSUMER_ADMINS = ["admin@acme.test", "owner@acme.test"]
PROVIDER_ADMINS = ["admin@weather.test", "owner@weather.test"]
SUBSCRIPTION_FIELDS = {
    "id",
    "app",
    "product",
    "plan",
    "status",
    "requested_at",
    "decided_at",
    "decision_note",
    "expires_at",
    "updated_at",
}


def subscribe(api: Api, stage: Stage, **data: Any) -> Any:
    return api.post(app_url(stage.app.pk, "subscriptions/"), {"product": "weather", **data})


@pytest.fixture
def pending(stage: Stage, member_api: Api) -> dict[str, Any]:
    return ok(subscribe(member_api, stage, plan=stage.premium.pk), 201)  # type: ignore[no-any-return]


@pytest.fixture
def approved(stage: Stage, member_api: Api) -> dict[str, Any]:
    return ok(subscribe(member_api, stage), 201)  # type: ignore[no-any-return]


# --- Consumer side -----------------------------------------------------------------------


def test_subscribing_under_the_default_plan_is_approved_at_once(
    stage: Stage, member_api: Api, django_capture_on_commit_callbacks: Any
) -> None:
    generation = config_generation()

    with django_capture_on_commit_callbacks(execute=True):
        body = ok(subscribe(member_api, stage), 201)

    assert set(body) == SUBSCRIPTION_FIELDS
    assert body["status"] == "approved"
    assert body["app"] == {"id": stage.app.pk, "name": "Checkout", "organization": "acme"}
    assert body["product"] == {"slug": "weather", "name": "Weather", "kind": "rest_api", "organization": "weatherco"}
    assert body["plan"] == {"id": stage.free.pk, "name": "Free", "price_label": "Free"}
    assert [m.to for m in mail.outbox] == [CONSUMER_ADMINS]
    assert config_generation() == generation + 1


def test_a_plan_that_needs_approval_leaves_the_request_pending_and_tells_the_provider(
    stage: Stage, member_api: Api, django_capture_on_commit_callbacks: Any
) -> None:
    generation = config_generation()

    with django_capture_on_commit_callbacks(execute=True):
        body = ok(subscribe(member_api, stage, plan=stage.premium.pk), 201)

    assert (body["status"], body["decided_at"], body["plan"]["name"]) == ("pending", None, "Premium")
    assert [m.to for m in mail.outbox] == [PROVIDER_ADMINS]
    assert config_generation() == generation


def test_subscribing_twice_is_refused_with_a_clear_message(stage: Stage, member_api: Api, pending: Any) -> None:
    body = assert_problem(subscribe(member_api, stage), 400, errors=True)

    assert body["errors"] == {
        "non_field_errors": ["Checkout is already subscribed to Weather; change or cancel that subscription."]
    }


@pytest.mark.parametrize("slug", ["internal", "draft-only", "no-such-product"])
def test_products_outside_the_catalog_all_get_the_same_answer(stage: Stage, member_api: Api, slug: str) -> None:
    body = assert_problem(subscribe(member_api, stage, product=slug), 400, errors=True)

    assert body["errors"] == {"product": ["This product is not available for subscription."]}
    assert not Subscription.objects.exists()


def test_the_plan_must_be_an_active_plan_of_the_product(stage: Stage, member_api: Api) -> None:
    tides = published_product(stage.provider.owner, stage.provider.organization, "tides")
    services.plan_archive(actor=stage.provider.admin, plan=stage.premium)

    other_products = subscribe(member_api, stage, product="tides", plan=stage.premium.pk)
    archived = subscribe(member_api, stage, plan=stage.premium.pk)
    unknown = subscribe(member_api, stage, plan=999_999)

    assert assert_problem(other_products, 400, errors=True)["errors"] == {"plan": ["Choose one of Tides's plans."]}
    assert assert_problem(archived, 400, errors=True)["errors"] == {
        "plan": ["The Premium plan takes no new subscriptions."]
    }
    assert assert_problem(unknown, 400, errors=True)["errors"] == {"plan": ["No such plan."]}
    assert not Subscription.objects.filter(product=tides).exists()


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"product": ""}, {"product": ["This field may not be blank."]}),
        ({"plan": "premium"}, {"plan": ["A valid integer is required."]}),
        ({"plan_id": 1}, {"plan_id": ["Unknown field."]}),
    ],
)
def test_an_invalid_request_is_a_400_naming_the_field(
    stage: Stage, member_api: Api, data: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    assert assert_problem(subscribe(member_api, stage, **data), 400, errors=True)["errors"] == errors


def test_the_app_lists_its_subscriptions_newest_first(stage: Stage, member_api: Api, approved: Any) -> None:
    published_product(stage.provider.owner, stage.provider.organization, "tides")
    ok(subscribe(member_api, stage, product="tides"), 201)

    listed = ok(member_api.get(app_url(stage.app.pk, "subscriptions/")))

    assert [s["product"]["slug"] for s in listed["results"]] == ["tides", "weather"]


def test_the_consumer_cancels_and_the_provider_is_told(
    stage: Stage, member: User, member_api: Api, approved: Any, django_capture_on_commit_callbacks: Any
) -> None:
    mail.outbox.clear()
    generation = config_generation()

    with django_capture_on_commit_callbacks(execute=True):
        body = ok(member_api.post(subscription_url(approved["id"], "cancel/")))

    assert body["status"] == "cancelled"
    assert [m.to for m in mail.outbox] == [PROVIDER_ADMINS]
    assert AuditEvent.objects.filter(action="subscription.cancel", actor=member).count() == 1
    assert config_generation() == generation + 1

    again = assert_problem(member_api.post(subscription_url(approved["id"], "cancel/")), 400, errors=True)
    assert again["errors"] == {
        "non_field_errors": ["This subscription is cancelled; this needs it pending approval or approved or suspended."]
    }


# --- Provider side -----------------------------------------------------------------------


def test_the_provider_lists_what_it_may_decide_on_filtered_by_status(
    stage: Stage, pending: Any, provider_api: Api, member_api: Api
) -> None:
    published_product(stage.provider.owner, stage.provider.organization, "tides")
    tides = ok(subscribe(member_api, stage, product="tides"), 201)

    everything = ok(provider_api.get(PROVIDER_SUBSCRIPTIONS))
    waiting = ok(provider_api.get(PROVIDER_SUBSCRIPTIONS, {"status": "pending"}))
    consumers_view = ok(member_api.get(PROVIDER_SUBSCRIPTIONS))

    assert [s["id"] for s in everything["results"]] == [tides["id"], pending["id"]]
    assert [s["id"] for s in waiting["results"]] == [pending["id"]]
    assert consumers_view["results"] == []


def test_a_provider_member_without_the_admin_role_lists_nothing(stage: Stage, pending: Any) -> None:
    assert ok(Api(stage.provider.member).get(PROVIDER_SUBSCRIPTIONS))["results"] == []


def test_an_unknown_status_filter_is_a_400(stage: Stage, provider_api: Api) -> None:
    body = assert_problem(provider_api.get(PROVIDER_SUBSCRIPTIONS, {"status": "open"}), 400, errors=True)

    assert body["errors"] == {"status": ['"open" is not a valid choice.']}


def test_both_sides_read_a_subscription_and_nobody_else_does(
    stage: Stage, pending: Any, member_api: Api, provider_api: Api, outsider_api: Api
) -> None:
    for api in (member_api, provider_api, Api(stage.provider.member)):
        assert ok(api.get(subscription_url(pending["id"])))["id"] == pending["id"]

    assert assert_problem(outsider_api.get(subscription_url(pending["id"])), 404)["code"] == "not_found"


def test_the_provider_approves_and_the_consumer_is_told(
    stage: Stage, pending: Any, provider_api: Api, django_capture_on_commit_callbacks: Any
) -> None:
    mail.outbox.clear()
    generation = config_generation()

    with django_capture_on_commit_callbacks(execute=True):
        body = ok(provider_api.post(subscription_url(pending["id"], "approve/"), {"note": "Welcome aboard."}))

    assert (body["status"], body["decision_note"]) == ("approved", "Welcome aboard.")
    assert body["decided_at"] is not None
    assert [m.to for m in mail.outbox] == [CONSUMER_ADMINS]
    event = AuditEvent.objects.get(action="subscription.approve")
    assert (event.actor, event.target_id) == (stage.provider.admin, str(pending["id"]))
    assert config_generation() == generation + 1


def test_rejecting_needs_a_reason_which_is_emailed_to_the_consumer(
    stage: Stage, pending: Any, provider_api: Api, django_capture_on_commit_callbacks: Any
) -> None:
    url = subscription_url(pending["id"], "reject/")
    mail.outbox.clear()
    generation = config_generation()

    missing = assert_problem(provider_api.post(url, {}), 400, errors=True)
    blank = assert_problem(provider_api.post(url, {"note": "  "}), 400, errors=True)
    with django_capture_on_commit_callbacks(execute=True):
        body = ok(provider_api.post(url, {"note": "EU customers only."}))

    assert missing["errors"] == {"note": ["This field is required."]}
    assert blank["errors"] == {"note": ["Tell the consumer why: the reason is emailed to them."]}
    assert (body["status"], body["decision_note"]) == ("rejected", "EU customers only.")
    assert [m.to for m in mail.outbox] == [CONSUMER_ADMINS]
    assert "EU customers only." in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="subscription.reject").count() == 1
    assert config_generation() == generation


def test_suspending_needs_a_reason_and_resuming_restores_access(
    stage: Stage, approved: Any, provider_api: Api, django_capture_on_commit_callbacks: Any
) -> None:
    mail.outbox.clear()
    generation = config_generation()

    missing = assert_problem(provider_api.post(subscription_url(approved["id"], "suspend/"), {}), 400, errors=True)
    with django_capture_on_commit_callbacks(execute=True):
        suspended = ok(provider_api.post(subscription_url(approved["id"], "suspend/"), {"note": "Unpaid invoice."}))
        resumed = ok(provider_api.post(subscription_url(approved["id"], "resume/")))

    assert missing["errors"] == {"note": ["This field is required."]}
    assert (suspended["status"], suspended["decision_note"]) == ("suspended", "Unpaid invoice.")
    assert (resumed["status"], resumed["decision_note"]) == ("approved", "")
    assert [m.to for m in mail.outbox] == [CONSUMER_ADMINS, CONSUMER_ADMINS]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"subscription.suspend", "subscription.resume"} <= actions
    assert config_generation() == generation + 2


@pytest.mark.parametrize(
    ("transition", "data", "message"),
    [
        ("approve", {}, "This subscription is approved; this needs it pending approval."),
        ("reject", {"note": "No."}, "This subscription is approved; this needs it pending approval."),
        ("resume", {}, "This subscription is approved; this needs it suspended."),
    ],
)
def test_a_decision_in_the_wrong_state_is_a_clear_400(
    stage: Stage, approved: Any, provider_api: Api, transition: str, data: dict[str, str], message: str
) -> None:
    response = provider_api.post(subscription_url(approved["id"], f"{transition}/"), data)

    assert assert_problem(response, 400, errors=True)["errors"] == {"non_field_errors": [message]}


def test_suspending_a_pending_request_is_a_clear_400(stage: Stage, pending: Any, provider_api: Api) -> None:
    response = provider_api.post(subscription_url(pending["id"], "suspend/"), {"note": "Abuse."})

    assert assert_problem(response, 400, errors=True)["errors"] == {
        "non_field_errors": ["This subscription is pending approval; this needs it approved."]
    }


def test_a_note_past_two_thousand_characters_is_refused(stage: Stage, pending: Any, provider_api: Api) -> None:
    response = provider_api.post(subscription_url(pending["id"], "reject/"), {"note": "x" * 2_001})

    assert assert_problem(response, 400, errors=True)["errors"] == {
        "note": ["Ensure this field has no more than 2000 characters."]
    }
    assert Subscription.objects.get(pk=pending["id"]).status == "pending"
