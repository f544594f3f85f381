"""Compiles the database into a Snapshot, in a fixed number of queries.

What reaches a snapshot:
- products with a live (published or deprecated) version, each with its latest live
  version's upstream, models and tools;
- their plans; approved, unexpired subscriptions of apps to them; those apps;
- the apps' usable keys (not revoked, not past their expiry), by hash.

Nothing else: a draft, a pending subscription or a revoked key does not exist for the
gateway.
"""

from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal

from django.db.models import F, Prefetch, Q
from django.utils import timezone

from consumers.models import ApiKey, ConsumerApp, Plan, Subscription
from gateway_sync.contract import schema as s
from marketplace.models import McpTool, ModelOffering, Product, ProductVersion

MICRO = Decimal(1_000_000)


def _epoch(value: object) -> float | None:
    return value.timestamp() if value is not None else None  # type: ignore[attr-defined]


def _micro(value: Decimal | None) -> int | None:
    return None if value is None else int((value * MICRO).to_integral_value())


def _upstream(version: ProductVersion) -> s.Upstream:
    return s.Upstream(
        url=version.upstream_url,
        auth_header=version.upstream_auth_header,
        secret_encrypted=version.upstream_secret_encrypted,
        connect_timeout_ms=version.connect_timeout_ms,
        read_timeout_ms=version.read_timeout_ms,
        tls_verify=version.tls_verify,
    )


def _latest_live_versions() -> dict[int, ProductVersion]:
    versions = (
        ProductVersion.objects.filter(status__in=ProductVersion.LIVE_STATUSES)
        .select_related("product")
        .order_by("product_id", F("published_at").desc(nulls_last=True), "-pk")
    )
    latest: dict[int, ProductVersion] = {}
    for version in versions:
        latest.setdefault(version.product_id, version)
    return latest


def _scope(key: ApiKey, live: dict[int, ProductVersion]) -> tuple[int, ...] | None:
    """The key's product scope among live products: () for every product, None when the
    key is scoped only to products that are not live (it reaches nothing)."""
    scoped = sorted(p.pk for p in key.products.all())
    if not scoped:
        return ()
    reachable = tuple(p for p in scoped if p in live)
    return reachable or None


def compile_snapshot(*, version: int, source_generation: int) -> s.Snapshot:
    """The snapshot of the current configuration (8 queries, whatever its size)."""
    now = timezone.now()
    latest = _latest_live_versions()  # 1
    version_ids = [v.pk for v in latest.values()]
    models_by_version: dict[int, list[s.ModelOffering]] = defaultdict(list)
    for m in ModelOffering.objects.filter(version_id__in=version_ids).order_by("public_name"):  # 2
        models_by_version[m.version_id].append(
            s.ModelOffering(
                public_name=m.public_name,
                upstream_name=m.upstream_name,
                context_window=m.context_window,
                input_microusd_per_mtok=_micro(m.input_price_per_mtok) or 0,
                output_microusd_per_mtok=_micro(m.output_price_per_mtok) or 0,
                capabilities=tuple(m.capabilities),
            )
        )
    tools_by_version: dict[int, list[s.Tool]] = defaultdict(list)
    for t in McpTool.objects.filter(version_id__in=version_ids).order_by("name"):  # 3
        tools_by_version[t.version_id].append(s.Tool(name=t.name, rest_mapping=t.request_template))

    products = []
    for product_id, v in sorted(latest.items()):
        product: Product = v.product
        products.append(
            s.Product(
                id=product_id,
                slug=product.slug,
                kind=product.kind,  # type: ignore[arg-type]
                organization_id=product.organization_id,
                public=product.visibility == Product.Visibility.PUBLIC,
                version_id=v.pk,
                version=v.version,
                deprecated=v.status == ProductVersion.Status.DEPRECATED,
                sunset_at=_epoch(v.sunset_at),
                upstream=_upstream(v),
                mcp_transport=v.mcp_transport,
                models=tuple(models_by_version[v.pk]),
                tools=tuple(tools_by_version[v.pk]),
                rest_to_mcp_config_encrypted=str(v.spec.get("rest_to_mcp", {}).get("config_encrypted", "")),
            )
        )

    plans = [
        s.Plan(
            id=p.pk,
            product_id=p.product_id,
            name=p.name,
            requests_per_second=p.requests_per_second,
            requests_per_minute=p.requests_per_minute,
            requests_per_day=p.requests_per_day,
            requests_per_month=p.requests_per_month,
            tokens_per_minute=p.tokens_per_minute,
            tokens_per_day=p.tokens_per_day,
            tokens_per_month=p.tokens_per_month,
            monthly_budget_microusd=_micro(p.monthly_budget_usd),
            allowed_models=tuple(p.allowed_models),
            allowed_tools=tuple(p.allowed_tools),
        )
        for p in Plan.objects.filter(product_id__in=latest).order_by("pk")  # 4
    ]
    subscriptions = [
        s.Subscription(
            id=x.pk, app_id=x.app_id, product_id=x.product_id, plan_id=x.plan_id, expires_at=_epoch(x.expires_at)
        )
        for x in Subscription.objects.filter(  # 5
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            status=Subscription.Status.APPROVED,
            product_id__in=latest,
        ).order_by("pk")
    ]
    app_ids = {x.app_id for x in subscriptions}
    apps = [
        s.App(id=a.pk, organization_id=a.organization_id, name=a.name)
        for a in ConsumerApp.objects.filter(pk__in=app_ids).order_by("pk")  # 6
    ]
    key_rows = (
        ApiKey.objects.filter(  # 7, and 8 for the scopes
            Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True, app_id__in=app_ids
        )
        .prefetch_related(Prefetch("products", queryset=Product.objects.only("pk")))
        .order_by("pk")
    )
    keys = []
    for k in key_rows:
        scope = _scope(k, latest)
        if scope is not None:
            keys.append(
                s.Key(
                    hash=k.key_hash,
                    prefix=k.prefix,
                    app_id=k.app_id,
                    expires_at=_epoch(k.expires_at),
                    product_ids=scope,
                )
            )
    return s.Snapshot(
        version=version,
        created_at=time.time(),
        source_generation=source_generation,
        products=tuple(products),
        plans=tuple(plans),
        apps=tuple(apps),
        keys=tuple(keys),
        subscriptions=tuple(subscriptions),
    )
