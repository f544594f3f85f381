"""Fixtures of the traffic-governance tests: products of Acme (whose owner and member
must still be refused: traffic is governed by platform staff), routes and policies made
through the services, and helpers that assert a change was recorded exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from accounts.models import AuditEvent, Organization, User
from gateway_sync import services_guardrails, services_routes
from gateway_sync.models_guardrails import GuardrailPolicy
from gateway_sync.models_routes import Route, RouteTarget
from gateway_sync.selectors import config_generation
from marketplace.models import Product
from tests.marketplace.factories import ModelOfferingFactory, PublishedVersionFactory

UPSTREAM = "http://127.0.0.1:9101"
CANARY_UPSTREAM = "http://127.0.0.1:9102"
# The cloud metadata service: link-local, never allowed.
METADATA_URL = "http://169.254.169.254/latest/meta-data/"


@pytest.fixture
def rest_product(organization: Organization) -> Product:
    version = PublishedVersionFactory(product__slug="echo", product__organization=organization, upstream_url=UPSTREAM)
    return version.product  # type: ignore[no-any-return]


@pytest.fixture
def model_product(organization: Organization) -> Product:
    version = PublishedVersionFactory(
        product__slug="llm", product__organization=organization, product__kind=Product.Kind.MODEL_API
    )
    for name in ("chat", "chat-mini", "chat-large"):
        ModelOfferingFactory(version=version, public_name=name)
    return version.product  # type: ignore[no-any-return]


@pytest.fixture
def route(staff: User, rest_product: Product) -> Route:
    """An enabled route of the REST product with one target, weight 100."""
    route = services_routes.route_create(actor=staff, product=rest_product, name="orders", path_prefix="/orders")
    services_routes.target_add(actor=staff, route=route, name="primary", upstream_url=UPSTREAM)
    return route


@pytest.fixture
def primary(route: Route) -> RouteTarget:
    return route.targets.get(name="primary")


@pytest.fixture
def candidate(staff: User, route: Route) -> RouteTarget:
    """A new target with weight 0: ready to be a canary."""
    return services_routes.target_add(
        actor=staff, route=route, name="candidate", upstream_url=CANARY_UPSTREAM, weight=0
    )


@pytest.fixture
def policy(staff: User) -> GuardrailPolicy:
    policy = services_guardrails.guardrail_policy_create(actor=staff, name="PII")
    services_guardrails.guardrail_rule_add(actor=staff, policy=policy, kind="pii_email", action="redact")
    return policy


@contextmanager
def recorded_once(action: str) -> Iterator[None]:
    """The block bumps the configuration generation exactly once and writes one audit
    event, ``action``."""
    generation = config_generation()
    last_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    yield
    assert config_generation() == generation + 1
    events = list(AuditEvent.objects.filter(pk__gt=last_event).values_list("action", flat=True))
    assert events == [action]


@contextmanager
def nothing_recorded() -> Iterator[None]:
    """The block neither bumps the generation nor writes an audit event."""
    generation = config_generation()
    events = AuditEvent.objects.count()
    yield
    assert config_generation() == generation
    assert AuditEvent.objects.count() == events
