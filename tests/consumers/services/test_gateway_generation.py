"""The configuration generation: every change the gateway enforces bumps it by exactly
one, in the transaction of the change (both commit or neither does); a change refused
by validation or permission bumps nothing; changes the gateway does not enforce (a
pending request, a rejection, a withdrawn request, an archived plan) bump nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from consumers import services
from consumers.models import ApiKey, ConsumerApp, Plan, Subscription
from gateway_sync.selectors import config_generation
from tests.consumers.services.scene import Stage


@dataclass(frozen=True)
class Ctx:
    stage: Stage
    owner: User
    member: User
    staff: User

    @property
    def provider(self) -> User:
        return self.stage.provider.admin

    def key(self, **fields: Any) -> ApiKey:
        return services.api_key_create(actor=self.member, app=self.stage.app, name="ci", **fields)[0]

    def approved(self) -> Subscription:
        return services.subscription_request(actor=self.member, app=self.stage.app, product=self.stage.product)

    def pending(self) -> Subscription:
        stage = self.stage
        return services.subscription_request(
            actor=self.member, app=stage.app, product=stage.product, plan=stage.premium
        )

    def suspended(self) -> Subscription:
        return services.subscription_suspend(actor=self.provider, subscription=self.approved(), note="Abuse.")


@dataclass(frozen=True)
class Change:
    name: str
    act: Callable[[Ctx, Any], object]
    arrange: Callable[[Ctx], Any] = lambda ctx: None

    def __str__(self) -> str:
        return self.name


def _expire_key(ctx: Ctx) -> ApiKey:
    key = ctx.key()
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    return key


def _expire_subscription(ctx: Ctx) -> Subscription:
    subscription = ctx.approved()
    Subscription.objects.filter(pk=subscription.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    return subscription


def _app_in_use(ctx: Ctx) -> ConsumerApp:
    ctx.key()
    ctx.approved()
    return ctx.stage.app


ENFORCING = [
    Change("key created", lambda ctx, _: ctx.key()),
    Change("key revoked", lambda ctx, key: services.api_key_revoke(actor=ctx.member, key=key), Ctx.key),
    Change("key rotated", lambda ctx, key: services.api_key_rotate(actor=ctx.member, key=key), Ctx.key),
    Change(
        "key quotas changed",
        lambda ctx, key: services.api_key_limits_update(actor=ctx.member, key=key, requests_per_minute=60),
        Ctx.key,
    ),
    Change("keys expired", lambda ctx, _: services.api_keys_expire(), _expire_key),
    Change("subscription approved at once", lambda ctx, _: ctx.approved()),
    Change(
        "subscription approved",
        lambda ctx, sub: services.subscription_approve(actor=ctx.provider, subscription=sub),
        Ctx.pending,
    ),
    Change(
        "subscription suspended",
        lambda ctx, sub: services.subscription_suspend(actor=ctx.provider, subscription=sub, note="Abuse."),
        Ctx.approved,
    ),
    Change(
        "subscription resumed",
        lambda ctx, sub: services.subscription_resume(actor=ctx.provider, subscription=sub),
        Ctx.suspended,
    ),
    Change(
        "subscription cancelled",
        lambda ctx, sub: services.subscription_cancel(actor=ctx.member, subscription=sub),
        Ctx.approved,
    ),
    Change(
        "suspended subscription cancelled",
        lambda ctx, sub: services.subscription_cancel(actor=ctx.member, subscription=sub),
        Ctx.suspended,
    ),
    Change("subscriptions expired", lambda ctx, _: services.subscriptions_expire(), _expire_subscription),
    Change(
        "plan created",
        lambda ctx, _: services.plan_create(actor=ctx.provider, product=ctx.stage.product, name="Team"),
    ),
    Change(
        "plan updated",
        lambda ctx, _: services.plan_update(actor=ctx.provider, plan=ctx.stage.premium, requests_per_day=9_000),
    ),
    Change("app deleted", lambda ctx, app: services.app_delete(actor=ctx.owner, app=app), _app_in_use),
]

NOT_ENFORCED = [
    Change("subscription requested, pending approval", lambda ctx, _: ctx.pending()),
    Change(
        "request rejected",
        lambda ctx, sub: services.subscription_reject(actor=ctx.provider, subscription=sub, note="No."),
        Ctx.pending,
    ),
    Change(
        "pending request withdrawn",
        lambda ctx, sub: services.subscription_cancel(actor=ctx.member, subscription=sub),
        Ctx.pending,
    ),
    Change("plan archived", lambda ctx, _: services.plan_archive(actor=ctx.provider, plan=ctx.stage.premium)),
    Change(
        "plan updated to what it was",
        lambda ctx, _: services.plan_update(actor=ctx.provider, plan=ctx.stage.premium, requests_per_minute=300),
    ),
    Change(
        "revoked key revoked again",
        lambda ctx, key: services.api_key_revoke(actor=ctx.member, key=key),
        lambda ctx: services.api_key_revoke(actor=ctx.member, key=ctx.key()),
    ),
    Change(
        "key quotas set to what they were",
        lambda ctx, key: services.api_key_limits_update(actor=ctx.member, key=key, requests_per_minute=60),
        lambda ctx: ctx.key(requests_per_minute=60),
    ),
    Change("nothing due to expire", lambda ctx, _: (services.api_keys_expire(), services.subscriptions_expire())),
    Change(
        "app created",
        lambda ctx, _: services.app_create(actor=ctx.member, organization=ctx.stage.acme, name="Another"),
    ),
]

REFUSED = [
    Change("key expiring in the past", lambda ctx, _: ctx.key(expires_at=timezone.now() - dt.timedelta(days=1))),
    Change(
        "key with a blank name", lambda ctx, _: services.api_key_create(actor=ctx.member, app=ctx.stage.app, name=" ")
    ),
    Change(
        "revoked key rotated",
        lambda ctx, key: services.api_key_rotate(actor=ctx.member, key=key),
        lambda ctx: services.api_key_revoke(actor=ctx.member, key=ctx.key()),
    ),
    Change(
        "key revoked by an outsider's organization owner",
        lambda ctx, key: services.api_key_revoke(actor=ctx.stage.provider.owner, key=key),
        Ctx.key,
    ),
    Change(
        "key with contradictory quotas",
        lambda ctx, _: ctx.key(requests_per_second=10, requests_per_minute=5),
    ),
    Change(
        "key quotas with a zero",
        lambda ctx, key: services.api_key_limits_update(actor=ctx.member, key=key, requests_per_day=0),
        Ctx.key,
    ),
    Change(
        "quotas of a revoked key",
        lambda ctx, key: services.api_key_limits_update(actor=ctx.member, key=key, requests_per_day=10),
        lambda ctx: services.api_key_revoke(actor=ctx.member, key=ctx.key()),
    ),
    Change(
        "key quotas changed by staff",
        lambda ctx, key: services.api_key_limits_update(actor=ctx.staff, key=key, requests_per_day=10),
        Ctx.key,
    ),
    Change("second subscription to a product", lambda ctx, _: ctx.approved(), Ctx.approved),
    Change(
        "private product subscribed",
        lambda ctx, _: services.subscription_request(
            actor=ctx.member, app=ctx.stage.app, product=ctx.stage.private_product
        ),
    ),
    Change(
        "approved subscription approved",
        lambda ctx, sub: services.subscription_approve(actor=ctx.provider, subscription=sub),
        Ctx.approved,
    ),
    Change(
        "suspension without a reason",
        lambda ctx, sub: services.subscription_suspend(actor=ctx.provider, subscription=sub, note=""),
        Ctx.approved,
    ),
    Change(
        "suspension by a consumer",
        lambda ctx, sub: services.subscription_suspend(actor=ctx.owner, subscription=sub, note="Mine."),
        Ctx.approved,
    ),
    Change(
        "plan with contradictory limits",
        lambda ctx, _: services.plan_create(
            actor=ctx.provider, product=ctx.stage.product, name="Bad", requests_per_second=5, requests_per_minute=4
        ),
    ),
    Change(
        "plan update with a zero limit",
        lambda ctx, _: services.plan_update(actor=ctx.provider, plan=ctx.stage.premium, tokens_per_day=0),
    ),
    Change(
        "app deleted by a member",
        lambda ctx, _: services.app_delete(actor=ctx.member, app=ctx.stage.app),
    ),
]


@pytest.fixture
def ctx(stage: Stage, owner: User, member: User, staff: User) -> Ctx:
    return Ctx(stage=stage, owner=owner, member=member, staff=staff)


def state() -> tuple[object, ...]:
    """What the changes above write, to tell that a rollback undid them."""
    return (
        sorted(
            ApiKey.objects.values_list(
                "pk", "revoked_at", "replaced_by_id", "expires_at", "expiry_published", *ApiKey.REQUEST_WINDOWS
            )
        ),
        sorted(Subscription.objects.values_list("pk", "status")),
        sorted(Plan.objects.values_list("pk", "name", "requests_per_day", "is_active")),
        sorted(ConsumerApp.objects.values_list("pk", flat=True)),
    )


class Rollback(Exception):
    pass


@pytest.mark.parametrize("change", ENFORCING, ids=str)
def test_an_enforced_change_bumps_the_generation_by_exactly_one(ctx: Ctx, change: Change) -> None:
    arranged = change.arrange(ctx)
    before = config_generation()

    change.act(ctx, arranged)

    assert config_generation() == before + 1


@pytest.mark.parametrize("change", ENFORCING, ids=str)
def test_the_bump_commits_or_rolls_back_with_its_change(ctx: Ctx, change: Change) -> None:
    arranged = change.arrange(ctx)
    before, unchanged = config_generation(), state()

    def change_then_roll_back() -> None:
        with transaction.atomic():
            change.act(ctx, arranged)
            assert config_generation() == before + 1
            assert state() != unchanged
            raise Rollback

    with pytest.raises(Rollback):
        change_then_roll_back()

    assert config_generation() == before
    assert state() == unchanged


@pytest.mark.parametrize("change", NOT_ENFORCED, ids=str)
def test_a_change_the_gateway_does_not_enforce_bumps_nothing(ctx: Ctx, change: Change) -> None:
    arranged = change.arrange(ctx)
    before = config_generation()

    change.act(ctx, arranged)

    assert config_generation() == before


@pytest.mark.parametrize("change", REFUSED, ids=str)
def test_a_refused_change_bumps_nothing(ctx: Ctx, change: Change) -> None:
    arranged = change.arrange(ctx)
    before, unchanged = config_generation(), state()

    with pytest.raises((ValidationError, PermissionDenied)):
        change.act(ctx, arranged)

    assert config_generation() == before
    assert state() == unchanged
