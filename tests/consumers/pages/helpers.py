"""Helpers of the consumer page tests: publishing a product through the marketplace
services, and reading pages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from accounts.models import Organization, User
from marketplace import services as marketplace
from marketplace.models import Product

UPSTREAM = "http://127.0.0.1:9/v1"


def publish_model_api(
    *,
    owner: User,
    staff: User,
    organization: Organization,
    slug: str,
    models: Iterable[str] = ("chat-small", "chat-large"),
    visibility: str = Product.Visibility.PUBLIC,
) -> Product:
    """A model API of ``organization`` with a published version 1.0.0 serving ``models``.
    Creating it gives it the default Free plan (automatic approval)."""
    product = marketplace.product_create(
        actor=owner,
        organization=organization,
        kind=Product.Kind.MODEL_API,
        slug=slug,
        name=slug.replace("-", " ").title(),
        summary=f"The {slug} models.",
        visibility=visibility,
    )
    version = marketplace.version_create(actor=owner, product=product, version="1.0.0")
    marketplace.version_update(actor=owner, version=version, upstream_url=UPSTREAM)
    marketplace.version_set_models(actor=owner, version=version, models=[{"public_name": m} for m in models])
    marketplace.version_submit(actor=owner, version=version)
    marketplace.version_approve(actor=staff, version=version)
    return product


def text(response: Any) -> str:
    return str(response.content.decode())
