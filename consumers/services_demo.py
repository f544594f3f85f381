"""The demo consumer's app, key and subscriptions, for `make run`."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Organization, User
from consumers import services
from consumers.models import ConsumerApp, Subscription
from marketplace.models import Product

DEMO_APP_NAME = "Demo App"
DEMO_PRODUCTS = ("demo-echo", "demo-llm", "demo-tools")


@transaction.atomic
def demo_consumer_seed(*, consumer: User, organization: Organization) -> str | None:
    """Create the demo app with a key and approved subscriptions to the demo products.
    Returns the key (to show once), or None when the app already exists."""
    if ConsumerApp.objects.filter(organization=organization, name=DEMO_APP_NAME).exists():
        return None
    app = services.app_create(
        actor=consumer,
        organization=organization,
        name=DEMO_APP_NAME,
        description="Calls the demo products through the gateway.",
        environment="development",
    )
    _key, plaintext = services.api_key_create(actor=consumer, app=app, name="demo")
    for product in Product.objects.filter(slug__in=DEMO_PRODUCTS).order_by("slug"):
        subscription = services.subscription_request(actor=consumer, app=app, product=product)
        if subscription.status != Subscription.Status.APPROVED:
            raise RuntimeError(f"The default plan of {product.slug} should approve at once")
    return plaintext
