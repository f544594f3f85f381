"""Subscriptions: requested by the consumer, approved at once or by the provider,
rejected (with a reason), suspended (with a reason), resumed, cancelled and expired.
Every transition is audited and emailed to the other side; a transition from the wrong
state is refused with a message that says what state it needs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts.models import AuditEvent, Role, User
from consumers import services
from consumers.models import Subscription
from gateway_sync.selectors import config_generation
from tests.consumers.services.scene import Stage, needs_role, published_product
from tests.factories import MembershipFactory

CONSUMER_ADMINS = ["admin@acme.test", "owner@acme.test"]
PROVIDER_ADMINS = ["admin@weather.test", "owner@weather.test"]
PREFIX = f"[{settings.PLATFORM_NAME}] "


def request_premium(stage: Stage, actor: User) -> Subscription:
    return services.subscription_request(actor=actor, app=stage.app, product=stage.product, plan=stage.premium)


def approved(stage: Stage, actor: User) -> Subscription:
    return services.subscription_request(actor=actor, app=stage.app, product=stage.product)


# --- Requesting --------------------------------------------------------------------------


def test_the_default_plan_approves_at_once_and_tells_the_consumer(
    stage: Stage, member: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        subscription = services.subscription_request(actor=member, app=stage.app, product=stage.product)

    assert (subscription.status, subscription.plan) == ("approved", stage.free)
    assert subscription.requested_by == member
    assert subscription.decided_at is not None
    assert [(m.to, m.subject) for m in mail.outbox] == [(CONSUMER_ADMINS, f"{PREFIX}Checkout can use Weather")]
    event = AuditEvent.objects.get(action="subscription.request")
    assert (event.actor, event.organization, event.target_id) == (member, stage.acme, str(subscription.pk))
    assert event.changes == {"product": "weather", "plan": "Free", "status": "approved"}


def test_a_plan_that_needs_approval_waits_and_tells_the_provider(
    stage: Stage, member: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        subscription = request_premium(stage, member)

    assert (subscription.status, subscription.decided_at) == ("pending", None)
    assert [m.to for m in mail.outbox] == [PROVIDER_ADMINS]
    assert mail.outbox[0].subject == f"{PREFIX}Checkout asks to subscribe to Weather"


def test_an_app_subscribes_to_a_product_once(stage: Stage, member: User) -> None:
    request_premium(stage, member)

    with pytest.raises(ValidationError) as caught:
        services.subscription_request(actor=member, app=stage.app, product=stage.product)

    assert caught.value.messages == ["Checkout is already subscribed to Weather; change or cancel that subscription."]
    assert Subscription.objects.count() == 1


def test_an_ended_subscription_does_not_stand_in_the_way_of_a_new_one(stage: Stage, member: User) -> None:
    first = approved(stage, member)
    services.subscription_cancel(actor=member, subscription=first)

    second = approved(stage, member)

    assert second.pk != first.pk
    assert second.status == "approved"


@pytest.mark.parametrize("which", ["private_product", "unpublished"])
def test_products_outside_the_catalog_cannot_be_subscribed(stage: Stage, member: User, which: str) -> None:
    product = getattr(stage, which)

    with pytest.raises(ValidationError) as caught:
        services.subscription_request(actor=member, app=stage.app, product=product)

    assert caught.value.message_dict == {"product": ["This product is not available for subscription."]}


def test_the_plan_must_be_one_of_the_products(stage: Stage, member: User) -> None:
    other = published_product(stage.provider.owner, stage.provider.organization, "tides")

    with pytest.raises(ValidationError) as caught:
        services.subscription_request(actor=member, app=stage.app, product=other, plan=stage.premium)

    assert caught.value.message_dict == {"plan": ["Choose one of Tides's plans."]}


def test_an_archived_plan_takes_no_new_subscriptions(stage: Stage, member: User) -> None:
    services.plan_archive(actor=stage.provider.admin, plan=stage.premium)

    with pytest.raises(ValidationError) as caught:
        request_premium(stage, member)

    assert caught.value.message_dict == {"plan": ["The Premium plan takes no new subscriptions."]}


def test_only_members_of_the_apps_organization_request(stage: Stage, outsider: User, staff: User) -> None:
    for user in (outsider, staff, stage.provider.owner):
        with pytest.raises(PermissionDenied, match=needs_role("member", "Acme")):
            approved(stage, user)


# --- The provider decides ----------------------------------------------------------------


Transition = Callable[..., Subscription]


def test_approving_a_pending_request_tells_the_consumer(
    stage: Stage, member: User, django_capture_on_commit_callbacks: Any
) -> None:
    pending = request_premium(stage, member)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        subscription = services.subscription_approve(actor=stage.provider.admin, subscription=pending, note=" Welcome ")

    assert (subscription.status, subscription.decided_by, subscription.decision_note) == (
        "approved",
        stage.provider.admin,
        "Welcome",
    )
    assert [m.to for m in mail.outbox] == [CONSUMER_ADMINS]
    event = AuditEvent.objects.get(action="subscription.approve")
    assert (event.actor, event.organization) == (stage.provider.admin, stage.acme)
    assert event.changes == {"product": "weather", "status": "approved", "note": "Welcome"}


def test_rejecting_needs_a_reason_which_is_emailed_to_the_consumer(
    stage: Stage, member: User, django_capture_on_commit_callbacks: Any
) -> None:
    pending = request_premium(stage, member)
    mail.outbox.clear()

    with pytest.raises(ValidationError) as caught:
        services.subscription_reject(actor=stage.provider.admin, subscription=pending, note="  ")
    assert caught.value.message_dict == {"note": ["Tell the consumer why: the reason is emailed to them."]}

    with django_capture_on_commit_callbacks(execute=True):
        subscription = services.subscription_reject(
            actor=stage.provider.admin, subscription=pending, note="We serve EU customers only."
        )

    assert (subscription.status, subscription.decision_note) == ("rejected", "We serve EU customers only.")
    assert [m.to for m in mail.outbox] == [CONSUMER_ADMINS]
    assert "We serve EU customers only." in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="subscription.reject").count() == 1


def test_suspending_needs_a_reason_and_resuming_restores_access(
    stage: Stage, member: User, django_capture_on_commit_callbacks: Any
) -> None:
    subscription = approved(stage, member)
    mail.outbox.clear()

    with pytest.raises(ValidationError) as caught:
        services.subscription_suspend(actor=stage.provider.owner, subscription=subscription, note="")
    assert caught.value.message_dict == {"note": ["Tell the consumer why: the reason is emailed to them."]}

    with django_capture_on_commit_callbacks(execute=True):
        suspended = services.subscription_suspend(
            actor=stage.provider.owner, subscription=subscription, note="Unpaid invoice."
        )
    assert suspended.status == "suspended"
    assert [m.to for m in mail.outbox] == [CONSUMER_ADMINS]
    assert mail.outbox[0].subject == f"{PREFIX}Checkout: Weather is suspended"

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        resumed = services.subscription_resume(actor=stage.provider.owner, subscription=suspended)
    assert resumed.status == "approved"
    assert [m.to for m in mail.outbox] == [CONSUMER_ADMINS]
    actions = list(AuditEvent.objects.filter(action__startswith="subscription.").values_list("action", flat=True))
    assert sorted(actions) == ["subscription.request", "subscription.resume", "subscription.suspend"]


def test_cancelling_tells_the_provider(stage: Stage, member: User, django_capture_on_commit_callbacks: Any) -> None:
    subscription = approved(stage, member)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        cancelled = services.subscription_cancel(actor=member, subscription=subscription)

    assert (cancelled.status, cancelled.decided_by) == ("cancelled", member)
    assert [m.to for m in mail.outbox] == [PROVIDER_ADMINS]
    assert mail.outbox[0].subject == f"{PREFIX}Checkout cancelled its Weather subscription"
    assert AuditEvent.objects.filter(action="subscription.cancel", actor=member).count() == 1


def test_a_pending_request_can_be_withdrawn(stage: Stage, member: User) -> None:
    cancelled = services.subscription_cancel(actor=member, subscription=request_premium(stage, member))

    assert cancelled.status == "cancelled"


@pytest.mark.parametrize(
    ("start", "transition", "message"),
    [
        ("approved", "approve", "This subscription is approved; this needs it pending approval."),
        ("approved", "reject", "This subscription is approved; this needs it pending approval."),
        ("approved", "resume", "This subscription is approved; this needs it suspended."),
        ("pending", "suspend", "This subscription is pending approval; this needs it approved."),
        ("pending", "resume", "This subscription is pending approval; this needs it suspended."),
        ("suspended", "approve", "This subscription is suspended; this needs it pending approval."),
        ("rejected", "approve", "This subscription is rejected; this needs it pending approval."),
        (
            "rejected",
            "cancel",
            "This subscription is rejected; this needs it pending approval or approved or suspended.",
        ),
        (
            "cancelled",
            "cancel",
            "This subscription is cancelled; this needs it pending approval or approved or suspended.",
        ),
        ("cancelled", "resume", "This subscription is cancelled; this needs it suspended."),
    ],
)
def test_a_transition_from_the_wrong_state_is_refused_and_changes_nothing(
    stage: Stage, member: User, start: str, transition: str, message: str
) -> None:
    provider = stage.provider.admin
    needs_approval = start in {"pending", "rejected"}
    subscription = request_premium(stage, member) if needs_approval else approved(stage, member)
    if start == "suspended":
        services.subscription_suspend(actor=provider, subscription=subscription, note="Abuse.")
    elif start == "rejected":
        services.subscription_reject(actor=provider, subscription=subscription, note="No.")
    elif start == "cancelled":
        services.subscription_cancel(actor=member, subscription=subscription)
    subscription.refresh_from_db()
    events, generation = AuditEvent.objects.count(), config_generation()

    if transition == "cancel":
        attempt = partial(services.subscription_cancel, actor=member, subscription=subscription)
    else:
        service: Transition = getattr(services, f"subscription_{transition}")
        attempt = partial(service, actor=provider, subscription=subscription, note="Because.")

    with pytest.raises(ValidationError) as caught:
        attempt()

    assert caught.value.messages == [message]
    subscription.refresh_from_db()
    assert subscription.status == start
    assert (AuditEvent.objects.count(), config_generation()) == (events, generation)


@pytest.mark.parametrize("transition", ["approve", "reject", "suspend", "resume"])
def test_only_the_providers_admins_and_owners_and_staff_decide(
    stage: Stage, member: User, admin_member: User, transition: str
) -> None:
    subscription = request_premium(stage, member)
    service: Transition = getattr(services, f"subscription_{transition}")

    for user in (member, admin_member, stage.provider.member):
        with pytest.raises(PermissionDenied, match=needs_role("admin", "Weather Co")):
            service(actor=user, subscription=subscription, note="Because.")


def test_staff_moderate_any_subscription(stage: Stage, member: User, staff: User) -> None:
    subscription = request_premium(stage, member)

    assert services.subscription_approve(actor=staff, subscription=subscription).status == "approved"
    assert services.subscription_suspend(actor=staff, subscription=subscription, note="Abuse.").status == "suspended"


# --- Expiry ------------------------------------------------------------------------------


def test_expiry_ends_approved_and_suspended_subscriptions_whose_time_has_come(
    stage: Stage, member: User, django_capture_on_commit_callbacks: Any
) -> None:
    due = approved(stage, member)
    suspended = services.subscription_request(
        actor=member,
        app=stage.app,
        product=published_product(stage.provider.owner, stage.provider.organization, "tides"),
    )
    services.subscription_suspend(actor=stage.provider.admin, subscription=suspended, note="Abuse.")
    not_yet = services.subscription_request(
        actor=member,
        app=stage.app,
        product=published_product(stage.provider.owner, stage.provider.organization, "winds"),
    )
    storms = published_product(stage.provider.owner, stage.provider.organization, "storms")
    pending = services.subscription_request(
        actor=member,
        app=stage.app,
        product=storms,
        plan=services.plan_create(actor=stage.provider.owner, product=storms, name="Gold", approval_required=True),
    )
    Subscription.objects.filter(pk__in=[due.pk, suspended.pk, pending.pk]).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    Subscription.objects.filter(pk=not_yet.pk).update(expires_at=timezone.now() + dt.timedelta(days=1))
    mail.outbox.clear()
    generation = config_generation()

    with django_capture_on_commit_callbacks(execute=True):
        assert services.subscriptions_expire() == 2

    statuses = dict(Subscription.objects.values_list("product__slug", "status"))
    assert statuses == {"weather": "expired", "tides": "expired", "winds": "approved", "storms": "pending"}
    assert config_generation() == generation + 1
    assert sorted(m.subject for m in mail.outbox) == [
        f"{PREFIX}Checkout: Tides subscription expired",
        f"{PREFIX}Checkout: Weather subscription expired",
    ]
    assert all(m.to == CONSUMER_ADMINS for m in mail.outbox)
    events = AuditEvent.objects.filter(action="subscription.expire")
    assert events.count() == 2
    assert all(e.actor is None and e.organization == stage.acme for e in events)

    assert services.subscriptions_expire() == 0
    assert config_generation() == generation + 1


# --- Found wrong ---------------------------------------------------------------------------


def test_cancelling_through_a_stale_copy_still_withdraws_the_subscription_from_the_gateway(
    stage: Stage, member: User
) -> None:
    pending = request_premium(stage, member)
    stale = Subscription.objects.get(pk=pending.pk)  # a page loaded before the provider approved
    services.subscription_approve(actor=stage.provider.admin, subscription=pending)
    generation = config_generation()

    cancelled = services.subscription_cancel(actor=member, subscription=stale)

    assert cancelled.status == "cancelled"
    assert config_generation() == generation + 1


def test_a_decision_note_longer_than_the_model_allows_is_refused(stage: Stage, member: User) -> None:
    pending = request_premium(stage, member)

    with pytest.raises(ValidationError):
        services.subscription_reject(actor=stage.provider.admin, subscription=pending, note="x" * 2_001)


def test_a_private_product_is_not_opened_to_another_organizations_app(stage: Stage, member: User) -> None:
    MembershipFactory(organization=stage.provider.organization, user=member, role=Role.MEMBER)

    with pytest.raises(ValidationError):
        services.subscription_request(actor=member, app=stage.app, product=stage.private_product)
