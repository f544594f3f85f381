"""The compiler turns the database into a snapshot, in a fixed number of queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from consumers.models import ConsumerApp, Plan, Subscription
from gateway_sync.compiler import compile_snapshot
from gateway_sync.contract import decode_snapshot, encode_snapshot
from gateway_sync.models import Canary, GuardrailPolicy, GuardrailRule, Route, RouteTarget
from marketplace.models import Product, ProductVersion
from tests.factories import OrganizationFactory
from tests.gateway_sync.conftest import World, a_while_ago
from tests.marketplace.factories import ProductVersionFactory, PublishedVersionFactory

pytestmark = pytest.mark.django_db

KEY = "sk-" + "A" * 48


def test_what_the_gateway_needs_reaches_the_snapshot(world: World):
    world.add_key(KEY)
    snapshot = compile_snapshot(version=3, source_generation=11)
    assert (snapshot.version, snapshot.source_generation) == (3, 11)
    assert {p.slug for p in snapshot.products} == {"echo", "llm"}
    llm = next(p for p in snapshot.products if p.slug == "llm")
    assert llm.models[0].input_microusd_per_mtok == 500_000
    assert llm.models[0].output_microusd_per_mtok == 1_250_000
    [key] = snapshot.keys
    assert key.prefix == KEY[:11]
    assert KEY not in encode_snapshot(snapshot).decode(), "only the hash travels"
    assert [(x.app_id, x.product_id) for x in snapshot.subscriptions] == [(world.app.pk, world.echo.product_id)]
    decode_snapshot(encode_snapshot(snapshot))  # it is valid


def test_drafts_pending_subscriptions_and_dead_keys_stay_out(world: World):
    ProductVersionFactory(product__slug="draft-only")
    world.add_key("sk-" + "R" * 48, revoked_at=timezone.now())
    world.add_key("sk-" + "E" * 48, expires_at=a_while_ago())
    other = ConsumerApp.objects.create(organization=OrganizationFactory(), name="Pending app")
    Subscription.objects.create(app=other, product=world.echo.product, plan=world.plan)
    snapshot = compile_snapshot(version=1, source_generation=1)
    assert "draft-only" not in {p.slug for p in snapshot.products}
    assert snapshot.keys == ()
    assert [a.id for a in snapshot.apps] == [world.app.pk]


def test_the_latest_live_version_wins(world: World):
    newer = PublishedVersionFactory(
        product=world.echo.product,
        version="2.0.0",
        upstream_url="http://127.0.0.1:9999",
        published_at=timezone.now() + dt.timedelta(seconds=1),
    )
    ProductVersionFactory(product=world.echo.product, version="3.0.0", status=ProductVersion.Status.IN_REVIEW)
    echo = next(p for p in compile_snapshot(version=1, source_generation=1).products if p.slug == "echo")
    assert (echo.version, echo.upstream.url) == ("2.0.0", newer.upstream_url)


def test_a_key_scoped_to_dead_products_is_left_out_and_live_scopes_kept(world: World):
    scoped = world.add_key("sk-" + "S" * 48)
    scoped.products.set([world.echo.product])
    dead = world.add_key("sk-" + "D" * 48)
    dead.products.set([ProductVersionFactory().product])
    keys = {k.prefix: k for k in compile_snapshot(version=1, source_generation=1).keys}
    assert keys["sk-SSSSSSSS"].product_ids == (world.echo.product_id,)
    assert "sk-DDDDDDDD" not in keys


def test_keys_carry_their_quotas_and_keys_without_quotas_carry_none(world: World):
    world.add_key(KEY, requests_per_second=5, requests_per_minute=120, requests_per_month=100_000)
    world.add_key("sk-" + "B" * 48)
    snapshot = decode_snapshot(encode_snapshot(compile_snapshot(version=1, source_generation=1)))
    keys = {k.prefix: k for k in snapshot.keys}
    limited, plain = keys[KEY[:11]], keys["sk-BBBBBBBB"]
    quotas = ("requests_per_second", "requests_per_minute", "requests_per_day", "requests_per_month")
    assert tuple(getattr(limited, q) for q in quotas) == (5, 120, None, 100_000)
    assert tuple(getattr(plain, q) for q in quotas) == (None, None, None, None)


def test_the_compiler_runs_a_fixed_number_of_queries(world: World, django_assert_num_queries):
    for index in range(30):
        version = PublishedVersionFactory()
        app = ConsumerApp.objects.create(organization=world.app.organization, name=f"App {index}")
        plan = world.plan.__class__.objects.create(product=version.product, name="P", is_default=True)
        Subscription.objects.create(app=app, product=version.product, plan=plan, status="approved")
        key = world.add_key(f"sk-{index:08d}" + "x" * 40, requests_per_minute=index + 1)
        key.app = app
        key.save()
        key.products.set([version.product])
        _govern(version.product, plan, index)
    with django_assert_num_queries(15):
        snapshot = compile_snapshot(version=1, source_generation=1)
    assert len(snapshot.keys) == 30
    assert sorted(k.requests_per_minute or 0 for k in snapshot.keys) == list(range(1, 31))
    assert len(snapshot.routes) == 30
    assert all(len(r.targets) == 2 and r.canary is not None and r.guardrail_ids for r in snapshot.routes)
    assert len(snapshot.guardrails) == 90
    decode_snapshot(encode_snapshot(snapshot))  # it is valid


def _govern(product: Product, plan: Plan, index: int) -> None:
    """A route with two targets and a canary, and a policy with rules attached to the
    product, the plan and the route: built directly (the services are tested elsewhere)."""
    route = Route.objects.create(product=product, name="r", path_prefix="/")
    stable = RouteTarget.objects.create(route=route, name="stable", upstream_url="http://127.0.0.1:1", weight=100)
    canary = RouteTarget.objects.create(route=route, name="canary", upstream_url="http://127.0.0.1:2", weight=0)
    route.fallback_target_ids = [stable.pk]
    route.save()
    Canary.objects.create(route=route, target=canary, mode="weight", weight=10)
    for owner in ("product", "plan", "route"):
        policy = GuardrailPolicy.objects.create(name=f"{owner} {index}")
        GuardrailRule.objects.create(policy=policy, kind="pii_email", action="redact")
        GuardrailRule.objects.create(policy=policy, kind="keyword", words=["secret"])
        getattr(policy, f"{owner}s").add({"product": product, "plan": plan, "route": route}[owner])
