"""Fixtures of the consumer page tests.

Acme (the shared personas: owner, admin_member, member) is the consumer with an app,
"Vendor" publishes ``vendor_product`` (a model API) with two plans: the default Free plan,
approved at once, and Pro, which needs the vendor's approval. For the provider pages the
roles swap: Acme publishes ``acme_product`` and Buyer's app subscribes to it."""

from __future__ import annotations

import pytest

from accounts.models import Organization, Role, User
from consumers import services
from consumers.models import ConsumerApp, Plan
from marketplace.models import Product
from tests.consumers.pages.helpers import publish_model_api
from tests.factories import MembershipFactory


@pytest.fixture
def vendor(db: None) -> User:
    return MembershipFactory(
        organization__name="Vendor", organization__slug="vendor", role=Role.OWNER, user__email="owner@vendor.test"
    ).user


@pytest.fixture
def vendor_product(vendor: User, staff: User) -> Product:
    organization = Organization.objects.get(slug="vendor")
    return publish_model_api(owner=vendor, staff=staff, organization=organization, slug="vendor-llm")


@pytest.fixture
def free_plan(vendor_product: Product) -> Plan:
    return Plan.objects.get(product=vendor_product, is_default=True)


@pytest.fixture
def pro_plan(vendor: User, vendor_product: Product) -> Plan:
    return services.plan_create(
        actor=vendor,
        product=vendor_product,
        name="Pro",
        price_label="$49 / month",
        requests_per_minute=600,
        tokens_per_day=1_000_000,
        approval_required=True,
    )


@pytest.fixture
def app(owner: User, organization: Organization) -> ConsumerApp:
    return services.app_create(actor=owner, organization=organization, name="Support bot", environment="production")


@pytest.fixture
def acme_product(owner: User, staff: User, organization: Organization) -> Product:
    return publish_model_api(owner=owner, staff=staff, organization=organization, slug="acme-llm")


@pytest.fixture
def buyer(db: None) -> User:
    return MembershipFactory(
        organization__name="Buyer", organization__slug="buyer", role=Role.OWNER, user__email="owner@buyer.test"
    ).user


@pytest.fixture
def buyer_app(buyer: User) -> ConsumerApp:
    return services.app_create(actor=buyer, organization=Organization.objects.get(slug="buyer"), name="Buyer app")
