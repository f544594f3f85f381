"""The stage of the consumers tests, shared by the service and API tests.

Acme (the personas of tests/conftest.py) consumes: it has the app "Checkout". Weather
Co provides: its public product "weather" is in the catalog with the default Free plan
and a Premium plan that needs approval; its private product "internal" and its public
but unpublished product "draft-only" are not in Acme's catalog.

Products are created through ``marketplace.services.product_create``, as a provider
would, so that the receiver gives each its default plan; a factory only publishes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from accounts.models import Organization, Role, User
from consumers import services
from consumers.models import ConsumerApp, Plan
from marketplace import services as marketplace_services
from marketplace.models import Product
from tests.factories import MembershipFactory, OrganizationFactory
from tests.marketplace.factories import PublishedVersionFactory


def published_product(
    actor: User,
    organization: Organization,
    slug: str,
    *,
    kind: str = Product.Kind.REST_API,
    visibility: str = Product.Visibility.PUBLIC,
    publish: bool = True,
) -> Product:
    """A product created by ``actor`` as a provider would, with a published 1.0.0."""
    product = marketplace_services.product_create(
        actor=actor,
        organization=organization,
        kind=kind,
        slug=slug,
        name=slug.replace("-", " ").title(),
        summary=f"The {slug} product.",
        visibility=visibility,
    )
    if publish:
        PublishedVersionFactory(product=product, version="1.0.0", created_by=actor)
    return product


def needs_role(role: str, organization: str) -> str:
    """What ``pytest.raises(PermissionDenied, match=...)`` expects of a role refusal."""
    return "^" + re.escape(f"This needs the {role} role in {organization}.") + "$"


def default_plan(product: Product) -> Plan:
    return Plan.objects.get(product=product, is_default=True)


@dataclass(frozen=True)
class Provider:
    organization: Organization
    owner: User
    admin: User
    member: User


def provider_organization(name: str = "Weather Co", slug: str = "weatherco", domain: str = "weather.test") -> Provider:
    organization = cast(Organization, OrganizationFactory(name=name, slug=slug))

    def person(role: Role, local: str) -> User:
        membership = MembershipFactory(organization=organization, role=role, user__email=f"{local}@{domain}")
        return cast(User, membership.user)

    return Provider(
        organization=organization,
        owner=person(Role.OWNER, "owner"),
        admin=person(Role.ADMIN, "admin"),
        member=person(Role.MEMBER, "member"),
    )


@dataclass(frozen=True)
class Stage:
    acme: Organization
    provider: Provider
    product: Product
    free: Plan
    premium: Plan
    private_product: Product
    unpublished: Product
    app: ConsumerApp


def build_stage(acme: Organization, acme_owner: User, **premium: Any) -> Stage:
    provider = provider_organization()
    product = published_product(provider.owner, provider.organization, "weather")
    premium_plan = services.plan_create(
        actor=provider.owner,
        product=product,
        name="Premium",
        price_label="$49/month",
        approval_required=True,
        requests_per_second=10,
        requests_per_minute=300,
        **premium,
    )
    return Stage(
        acme=acme,
        provider=provider,
        product=product,
        free=default_plan(product),
        premium=premium_plan,
        private_product=published_product(
            provider.owner, provider.organization, "internal", visibility=Product.Visibility.PRIVATE
        ),
        unpublished=published_product(provider.owner, provider.organization, "draft-only", publish=False),
        app=services.app_create(actor=acme_owner, organization=acme, name="Checkout", environment="production"),
    )
