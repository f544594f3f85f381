"""Routes and guardrails reach the snapshot, and the snapshot stays valid."""

from __future__ import annotations

import pytest

from consumers.models import Plan
from gateway_sync import services_guardrails, services_routes
from gateway_sync.compiler import compile_snapshot
from gateway_sync.contract import decode_snapshot, encode_snapshot
from gateway_sync.contract.schema import Snapshot
from marketplace.crypto import secret_decrypt
from tests.gateway_sync.routes.conftest import CANARY_UPSTREAM
from tests.marketplace.factories import ProductVersionFactory

pytestmark = pytest.mark.django_db


def compiled() -> Snapshot:
    """The snapshot as a worker gets it: encoded, then decoded with every check."""
    return decode_snapshot(encode_snapshot(compile_snapshot(version=1, source_generation=1)))


def test_a_route_reaches_the_snapshot_with_its_targets_canary_and_settings(staff, route, primary, candidate):
    services_routes.route_update(
        actor=staff,
        route=route,
        host="api.example.com",
        headers={"X-Tier": "gold"},
        connect_timeout_ms=1_000,
        first_byte_timeout_ms=20_000,
        total_timeout_ms=120_000,
        idle_timeout_ms=15_000,
        retry_count=2,
        retry_on_statuses=[429, 503],
        fallback_target_ids=[candidate.pk],
        cooldown_failures=3,
        cooldown_window_s=10,
        cooldown_s=60,
        limit_rps=50,
        limit_rpm=1_000,
    )
    services_routes.target_update(actor=staff, target=candidate, auth_header="X-Key", secret="k-123")
    services_routes.canary_start(actor=staff, route=route, target=candidate, mode="weight", weight=20)

    [compiled_route] = compiled().routes
    assert compiled_route.product_id == route.product_id
    assert (compiled_route.match.path_prefix, compiled_route.match.host) == ("/orders", "api.example.com")
    assert compiled_route.match.headers == {"X-Tier": "gold"}
    assert [(t.id, t.name, t.weight) for t in compiled_route.targets] == [
        (primary.pk, "primary", 100),
        (candidate.pk, "candidate", 0),
    ]
    canary_target = compiled_route.targets[1]
    assert canary_target.upstream.url == CANARY_UPSTREAM
    assert canary_target.upstream.connect_timeout_ms == 1_000
    assert secret_decrypt(canary_target.upstream.secret_encrypted) == "k-123"
    assert compiled_route.timeouts.first_byte_ms == 20_000
    assert (compiled_route.retry.count, compiled_route.retry.on_statuses) == (2, (429, 503))
    assert compiled_route.fallback_target_ids == (candidate.pk,)
    assert (compiled_route.cooldown.failures, compiled_route.cooldown.cooldown_s) == (3, 60)
    assert compiled_route.canary is not None
    assert (compiled_route.canary.target_id, compiled_route.canary.mode, compiled_route.canary.weight) == (
        candidate.pk,
        "weight",
        20,
    )
    assert (compiled_route.limits.requests_per_second, compiled_route.limits.requests_per_minute) == (50, 1_000)


def test_cutting_streams_on_budget_reaches_the_snapshot_and_off_is_left_out(staff, model_product):
    cut = services_routes.route_create(
        actor=staff, product=model_product, name="cut", model="chat", cut_stream_on_budget=True
    )
    whole = services_routes.route_create(actor=staff, product=model_product, name="whole", model="chat-mini")
    for route in (cut, whole):
        services_routes.target_add(actor=staff, route=route, name="main", upstream_url=CANARY_UPSTREAM)

    by_id = {r.id: r for r in compiled().routes}
    assert (by_id[cut.pk].cut_stream_on_budget, by_id[whole.pk].cut_stream_on_budget) == (True, False)
    encoded = encode_snapshot(compile_snapshot(version=1, source_generation=1))
    assert encoded.count(b'"cut_stream_on_budget"') == 1, "the default is omitted"


def test_disabled_routes_routes_without_targets_and_routes_of_drafts_stay_out(staff, route, rest_product):
    services_routes.route_create(actor=staff, product=rest_product, name="empty", path_prefix="/empty")
    draft = ProductVersionFactory(product__slug="draft-only").product
    services_routes.route_create(actor=staff, product=draft, name="draft", path_prefix="/d")
    assert [r.id for r in compiled().routes] == [route.pk]
    services_routes.route_update(actor=staff, route=route, enabled=False)
    assert compiled().routes == ()


def test_guardrails_reach_the_snapshot_where_they_are_attached(staff, route, rest_product, policy):
    plan = Plan.objects.create(product=rest_product, name="Pro")
    services_guardrails.guardrail_rule_add(actor=staff, policy=policy, kind="regex", pattern=r"\bEMP-\d{6}\b")
    unattached = services_guardrails.guardrail_policy_create(actor=staff, name="Unused")
    other = services_guardrails.guardrail_policy_create(actor=staff, name="Injection")
    services_guardrails.guardrail_rule_add(actor=staff, policy=other, kind="prompt_injection", on_response=True)
    services_guardrails.guardrail_policy_attach(actor=staff, policy=policy, product=rest_product)
    services_guardrails.guardrail_policy_attach(actor=staff, policy=policy, plan=plan)
    services_guardrails.guardrail_policy_attach(actor=staff, policy=other, route=route)

    snapshot = compiled()
    assert [g.id for g in snapshot.guardrails] == [policy.pk, other.pk]
    assert unattached.pk not in {g.id for g in snapshot.guardrails}
    pii = snapshot.guardrails[0]
    assert [(r.kind, r.action, r.pattern) for r in pii.rules] == [
        ("pii_email", "redact", ""),
        ("regex", "block", r"\bEMP-\d{6}\b"),
    ]
    assert next(p for p in snapshot.products if p.id == rest_product.pk).guardrail_ids == (policy.pk,)
    assert next(p for p in snapshot.plans if p.id == plan.pk).guardrail_ids == (policy.pk,)
    assert snapshot.routes[0].guardrail_ids == (other.pk,)


def test_a_disabled_policy_is_named_nowhere(staff, route, rest_product, policy):
    services_guardrails.guardrail_policy_attach(actor=staff, policy=policy, product=rest_product)
    services_guardrails.guardrail_policy_attach(actor=staff, policy=policy, route=route)
    services_guardrails.guardrail_policy_update(actor=staff, policy=policy, enabled=False)
    snapshot = compiled()
    assert snapshot.guardrails == ()
    assert all(p.guardrail_ids == () for p in snapshot.products)
    assert snapshot.routes[0].guardrail_ids == ()


def test_a_promoted_canary_is_an_ordinary_target_in_the_next_snapshot(staff, route, primary, candidate):
    services_routes.canary_start(actor=staff, route=route, target=candidate, mode="weight", weight=50)
    services_routes.canary_promote(actor=staff, route=route)
    [compiled_route] = compiled().routes
    assert compiled_route.canary is None
    assert {t.name: t.weight for t in compiled_route.targets} == {"primary": 0, "candidate": 100}
