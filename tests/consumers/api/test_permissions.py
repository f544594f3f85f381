"""The consumers API's role matrix, on every endpoint.

Acme's members read its apps, keys and subscriptions; members create and change apps,
keys and subscriptions; only admins and owners delete apps, decide on subscriptions to
Acme's products and manage their plans. Outsiders get 404 for everything of Acme's (list
endpoints show them only their own); anyone may read the plans of a product in the
catalog. Staff may read anything, moderate subscriptions and cancel them, and change
nothing else where they are not members. Anonymous users must sign in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import resolve

from accounts.models import Organization, User
from consumers import services
from consumers.api.urls import urlpatterns
from consumers.models import ApiKey, ConsumerApp, Plan, Subscription
from marketplace.models import Product
from tests.consumers.api.urls import (
    PROVIDER_SUBSCRIPTIONS,
    app_url,
    apps_url,
    key_url,
    plan_url,
    plans_url,
    subscription_url,
)
from tests.consumers.services.scene import Stage, published_product
from tests.marketplace.api.helpers import Api, assert_problem

RANK = {"member": 1, "admin": 2, "owner": 3}
SUCCESS = {200, 201, 204}


@dataclass(frozen=True)
class World:
    """Acme consumes (its app Checkout has a key and an approved subscription to Weather
    Co's "weather") and provides ("acme-api", with a Pro plan that needs approval, an
    archived Legacy plan, and the unpublished "acme-draft"); Weather Co's app Radar
    subscribes to acme-api."""

    stage: Stage
    owner: User
    app: ConsumerApp
    key: ApiKey
    consumer_subscription: Subscription
    product: Product
    pro: Plan
    legacy: Plan
    radar: ConsumerApp

    def radar_subscription(self, status: str) -> Subscription:
        """A new subscription of Radar to acme-api in ``status`` (ending the last one)."""
        for open_one in self.radar.subscriptions.filter(status__in=Subscription.OPEN_STATUSES):
            services.subscription_cancel(actor=self.stage.provider.owner, subscription=open_one)
        subscription = services.subscription_request(
            actor=self.stage.provider.owner, app=self.radar, product=self.product, plan=self.pro
        )
        if status in {"approved", "suspended"}:
            services.subscription_approve(actor=self.owner, subscription=subscription)
        if status == "suspended":
            services.subscription_suspend(actor=self.owner, subscription=subscription, note="Abuse.")
        return subscription


@pytest.fixture
def world(stage: Stage, organization: Organization, owner: User, member: User) -> World:
    product = published_product(owner, organization, "acme-api")
    published_product(owner, organization, "acme-draft", publish=False)
    pro = services.plan_create(actor=owner, product=product, name="Pro", approval_required=True)
    legacy = services.plan_create(actor=owner, product=product, name="Legacy")
    services.plan_archive(actor=owner, plan=legacy)
    key, _plaintext = services.api_key_create(actor=owner, app=stage.app, name="ci")
    return World(
        stage=stage,
        owner=owner,
        app=stage.app,
        key=key,
        consumer_subscription=services.subscription_request(actor=owner, app=stage.app, product=stage.product),
        product=product,
        pro=pro,
        legacy=legacy,
        radar=services.app_create(actor=stage.provider.owner, organization=stage.provider.organization, name="Radar"),
    )


@dataclass(frozen=True)
class Action:
    name: str
    method: str
    # Arranges what the action needs and returns its URL.
    target: Callable[[World], str]
    data: dict[str, Any] | None = None
    # The lowest Acme role that may (member < admin < owner); None: any member may read.
    needs: str | None = "member"
    # Whether staff, who belong to no organization here, may.
    staff_may: bool | None = None
    # Outsiders (and, for reads open to anyone, anonymous users) get a 2xx.
    outsider_ok: bool = False
    anonymous: int = 401

    def send(self, api: Api, world: World) -> Any:
        path = self.target(world)
        if self.method in {"get", "delete"}:
            return getattr(api, self.method)(path)
        return getattr(api, self.method)(path, self.data or {})

    @property
    def staff_allowed(self) -> bool:
        return self.needs is None if self.staff_may is None else self.staff_may

    def __str__(self) -> str:
        return self.name


ACTIONS = [
    # Apps
    Action("list apps", "get", lambda w: apps_url(), needs=None, outsider_ok=True),
    Action("create app", "post", lambda w: apps_url(), {"organization": "acme", "name": "Billing"}),
    Action("read app", "get", lambda w: app_url(w.app.pk), needs=None),
    Action("edit app", "patch", lambda w: app_url(w.app.pk), {"description": "Changed."}),
    Action("delete app", "delete", lambda w: app_url(w.app.pk), needs="admin"),
    # Keys
    Action("list keys", "get", lambda w: app_url(w.app.pk, "keys/"), needs=None),
    Action("create key", "post", lambda w: app_url(w.app.pk, "keys/"), {"name": "deploy"}),
    Action("read key", "get", lambda w: key_url(w.app.pk, w.key.pk), needs=None),
    Action("rotate key", "post", lambda w: key_url(w.app.pk, w.key.pk, "rotate/"), {"overlap_seconds": 60}),
    Action("set key quotas", "patch", lambda w: key_url(w.app.pk, w.key.pk), {"requests_per_minute": 60}),
    Action("revoke key", "post", lambda w: key_url(w.app.pk, w.key.pk, "revoke/")),
    Action("revoke key by DELETE", "delete", lambda w: key_url(w.app.pk, w.key.pk)),
    # Subscriptions, consumer side
    Action("list app subscriptions", "get", lambda w: app_url(w.app.pk, "subscriptions/"), needs=None),
    Action("subscribe", "post", lambda w: app_url(w.app.pk, "subscriptions/"), {"product": "acme-api"}),
    Action("read own subscription", "get", lambda w: subscription_url(w.consumer_subscription.pk), needs=None),
    Action(
        "cancel subscription",
        "post",
        lambda w: subscription_url(w.consumer_subscription.pk, "cancel/"),
        staff_may=True,
    ),
    # Subscriptions, provider side
    Action("list provider subscriptions", "get", lambda w: PROVIDER_SUBSCRIPTIONS, needs=None, outsider_ok=True),
    Action(
        "read subscription to own product",
        "get",
        lambda w: subscription_url(w.radar_subscription("pending").pk),
        needs=None,
    ),
    Action(
        "approve",
        "post",
        lambda w: subscription_url(w.radar_subscription("pending").pk, "approve/"),
        needs="admin",
        staff_may=True,
    ),
    Action(
        "reject",
        "post",
        lambda w: subscription_url(w.radar_subscription("pending").pk, "reject/"),
        {"note": "No."},
        needs="admin",
        staff_may=True,
    ),
    Action(
        "suspend",
        "post",
        lambda w: subscription_url(w.radar_subscription("approved").pk, "suspend/"),
        {"note": "Abuse."},
        needs="admin",
        staff_may=True,
    ),
    Action(
        "resume",
        "post",
        lambda w: subscription_url(w.radar_subscription("suspended").pk, "resume/"),
        needs="admin",
        staff_may=True,
    ),
    # Plans
    Action("list plans", "get", lambda w: plans_url("acme-api"), needs=None, outsider_ok=True, anonymous=200),
    Action("read plan", "get", lambda w: plan_url(w.pro.pk), needs=None, outsider_ok=True, anonymous=200),
    Action("read archived plan", "get", lambda w: plan_url(w.legacy.pk), needs=None, anonymous=404),
    Action("list plans of unpublished product", "get", lambda w: plans_url("acme-draft"), needs=None, anonymous=404),
    Action("create plan", "post", lambda w: plans_url("acme-api"), {"name": "Team"}, needs="admin"),
    Action("edit plan", "patch", lambda w: plan_url(w.pro.pk), {"requests_per_day": 1_000}, needs="admin"),
    Action("archive plan", "post", lambda w: plan_url(w.pro.pk, "archive/"), needs="admin"),
]


def view_of(callback: Any) -> type:
    view: type = callback.view_class
    return view


def test_the_matrix_covers_every_method_of_every_consumers_endpoint(world: World) -> None:
    endpoints = {
        (view_of(pattern.callback), method)
        for pattern in urlpatterns
        for method in ("get", "post", "patch", "put", "delete")
        if hasattr(view_of(pattern.callback), method)
    }

    covered = {(view_of(resolve(action.target(world)).func), action.method) for action in ACTIONS}

    assert endpoints - covered == set()


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_organization_roles(world: World, action: Action, role: str, request: pytest.FixtureRequest) -> None:
    api: Api = request.getfixturevalue(f"{role}_api")

    response = action.send(api, world)

    if action.needs is None or RANK[role] >= RANK[action.needs]:
        assert response.status_code in SUCCESS, response.content
    else:
        body = assert_problem(response, 403)
        assert body["detail"] == f"This needs the {action.needs} role in Acme."


@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_outsiders_get_404_for_everything_of_acme(world: World, outsider_api: Api, action: Action) -> None:
    response = action.send(outsider_api, world)

    if action.outsider_ok:
        assert response.status_code == 200, response.content
    else:
        body = assert_problem(response, 404)
        assert body["code"] == "not_found"


@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_staff_read_everything_moderate_subscriptions_and_change_nothing_else(
    world: World, staff_api: Api, action: Action
) -> None:
    response = action.send(staff_api, world)

    if action.staff_allowed:
        assert response.status_code in SUCCESS, response.content
    else:
        body = assert_problem(response, 403)
        assert body["detail"] == f"This needs the {action.needs} role in Acme."


@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_anonymous_users_must_sign_in(world: World, anonymous_api: Api, action: Action) -> None:
    response = action.send(anonymous_api, world)

    if action.anonymous == 200:
        assert response.status_code == 200, response.content
    else:
        body = assert_problem(response, action.anonymous)
        assert body["code"] == ("not_authenticated" if action.anonymous == 401 else "not_found")


def test_consumer_side_members_cannot_decide_on_the_subscriptions_of_their_own_app(
    world: World, owner_api: Api
) -> None:
    """Acme's owner reads Checkout's subscription to Weather Co's product but may not
    suspend it: that is the provider's decision."""
    response = owner_api.post(subscription_url(world.consumer_subscription.pk, "suspend/"), {"note": "Mine."})

    body = assert_problem(response, 403)
    assert body["detail"] == "This needs the admin role in Weather Co."


def test_provider_side_members_cannot_cancel_a_consumers_subscription(world: World, admin_api: Api) -> None:
    subscription = world.radar_subscription("approved")

    response = admin_api.post(subscription_url(subscription.pk, "cancel/"))

    body = assert_problem(response, 403)
    assert body["detail"] == "This needs the member role in Weather Co."
