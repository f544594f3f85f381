"""Hooks into the marketplace: every product gets a default free plan."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from consumers.services.plans import plan_ensure_default
from marketplace.models import Product
from marketplace.signals import product_created


@receiver(product_created, sender=Product, dispatch_uid="consumers.default_plan")
def create_default_plan(sender: type[Product], product: Product, **kwargs: Any) -> None:
    plan_ensure_default(product=product)
