"""Reads of usage events, with their visibility rules: a consumer sees the usage of its
organizations' apps, a provider the usage of its organizations' products, staff all of it.
Anyone else gets Http404, as for the app or product itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from consumers.models import ConsumerApp
from consumers.models_usage import UsageEvent
from consumers.selectors import apps_for_user
from marketplace import selectors as marketplace_selectors
from marketplace.models import Product

WINDOWS = (("Last 24 hours", timedelta(hours=24)), ("Last 30 days", timedelta(days=30)))
RECENT_EVENTS = 20


@dataclass(frozen=True)
class UsageRow:
    """Totals of one product (``product_slug`` empty: requests refused before a product was
    known) over a window."""

    product_id: int | None
    product_slug: str
    requests: int
    errors: int
    tokens: int
    cost_microusd: int

    @property
    def cost_usd(self) -> Decimal:
        return Decimal(self.cost_microusd) / 1_000_000


@dataclass(frozen=True)
class UsageWindow:
    label: str
    since: datetime
    rows: list[UsageRow]
    total: UsageRow


@dataclass(frozen=True)
class UsageSummary:
    windows: list[UsageWindow]
    recent: list[UsageEvent]


def _totals() -> dict[str, Any]:
    return {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(is_error=True)),
        "prompt": Coalesce(Sum("prompt_tokens"), 0),
        "completion": Coalesce(Sum("completion_tokens"), 0),
        "cost": Coalesce(Sum("cost_microusd"), 0),
    }


def _row(values: dict[str, Any], product_id: int | None = None, product_slug: str = "") -> UsageRow:
    return UsageRow(
        product_id=product_id,
        product_slug=product_slug,
        requests=values["requests"],
        errors=values["errors"],
        tokens=values["prompt"] + values["completion"],
        cost_microusd=values["cost"],
    )


def usage_by_product(events: QuerySet[UsageEvent], *, since: datetime) -> list[UsageRow]:
    """Requests, errors, tokens and cost per product since ``since``, busiest first."""
    grouped = (
        events.filter(at__gte=since)
        .order_by()
        .values("product_id", "product_slug")
        .annotate(**_totals())
        .order_by("-requests", "product_slug")
    )
    return [_row(values, values["product_id"], values["product_slug"]) for values in grouped]


def usage_summary(events: QuerySet[UsageEvent], *, now: datetime | None = None) -> UsageSummary:
    now = now or timezone.now()
    windows = []
    for label, length in WINDOWS:
        since = now - length
        total = events.filter(at__gte=since).aggregate(**_totals())
        windows.append(UsageWindow(label, since, usage_by_product(events, since=since), _row(total)))
    return UsageSummary(windows=windows, recent=list(events.order_by("-at")[:RECENT_EVENTS]))


def app_usage(user: User, app: ConsumerApp, *, now: datetime | None = None) -> UsageSummary:
    """The usage of ``app``; Http404 unless the user is in the app's organization or staff."""
    if not apps_for_user(user).filter(pk=app.pk).exists():
        raise Http404("No such app")
    return usage_summary(UsageEvent.objects.filter(app_id=app.pk), now=now)


def provider_usage_products(user: User) -> QuerySet[Product]:
    """The products whose usage the user may see: its organizations' (every one, for staff)."""
    products = Product.objects.select_related("organization").order_by("name")
    return products if user.is_staff else products.filter(organization__memberships__user=user).distinct()


def provider_usage(user: User, *, product_slug: str = "", now: datetime | None = None) -> UsageSummary:
    """The usage of the user's products, or of one of them (``product_slug``: Http404 when
    the user may not see it)."""
    if product_slug:
        product_ids = [marketplace_selectors.provider_product_get(user, product_slug).pk]
    else:
        product_ids = list(provider_usage_products(user).values_list("pk", flat=True))
    return usage_summary(UsageEvent.objects.filter(product_id__in=product_ids), now=now)
