"""A small world for the control-plane tests: live products, plans, an app with keys and
subscriptions, built directly (the services are tested elsewhere)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from django.utils import timezone

from accounts.tokens import keyed_hash
from consumers.models import ApiKey, ConsumerApp, Plan, Subscription
from consumers.services.plans import plan_ensure_default
from marketplace.models import Product, ProductVersion
from tests.factories import OrganizationFactory
from tests.marketplace.factories import McpToolFactory, ModelOfferingFactory, PublishedVersionFactory


@dataclass
class World:
    echo: ProductVersion
    llm: ProductVersion
    app: ConsumerApp
    plan: Plan

    def add_key(self, plaintext: str, **fields: object) -> ApiKey:
        return ApiKey.objects.create(
            app=self.app, name=plaintext[:20], prefix=plaintext[:11], key_hash=keyed_hash(plaintext), **fields
        )


@pytest.fixture
def world(db: None) -> World:
    echo = PublishedVersionFactory(product__slug="echo", upstream_url="http://127.0.0.1:9101")
    llm = PublishedVersionFactory(product__slug="llm", product__kind=Product.Kind.MODEL_API)
    ModelOfferingFactory(version=llm, public_name="chat", input_price_per_mtok="0.5", output_price_per_mtok="1.25")
    plan = plan_ensure_default(product=echo.product)
    plan_ensure_default(product=llm.product)
    app = ConsumerApp.objects.create(organization=OrganizationFactory(), name="App")
    Subscription.objects.create(app=app, product=echo.product, plan=plan, status=Subscription.Status.APPROVED)
    return World(echo=echo, llm=llm, app=app, plan=plan)


def a_while_ago() -> dt.datetime:
    return timezone.now() - dt.timedelta(minutes=5)


__all__ = ["McpToolFactory", "World", "a_while_ago"]
