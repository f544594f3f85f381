"""Compiles the database into a Snapshot, in a fixed number of queries.

What reaches a snapshot:
- products with a live (published or deprecated) version, each with its latest live
  version's upstream, models and tools;
- their plans; approved, unexpired subscriptions of apps to them; those apps;
- the apps' usable keys (not revoked, not past their expiry), by hash, with their quotas;
- traffic governance (see "Routes and guardrails" below): the enabled routes of those
  products that have a target to send to, and the enabled guardrail policies that
  something in the snapshot names, with each product's, plan's and route's policy ids.

Nothing else: a draft, a pending subscription or a revoked key does not exist for the
gateway.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
from django.db.models import F, Prefetch, Q
from django.utils import timezone

from consumers.models import ApiKey, ConsumerApp, Plan, Subscription
from gateway_sync.contract import schema as s
from gateway_sync.models_guardrails import GuardrailPolicy, GuardrailRule
from gateway_sync.models_routes import Route, RouteTarget
from marketplace.models import McpTool, ModelOffering, Product, ProductVersion

MICRO = Decimal(1_000_000)
_WithGuardrails = TypeVar("_WithGuardrails", s.Product, s.Plan)


def _epoch(value: object) -> float | None:
    return value.timestamp() if value is not None else None  # type: ignore[attr-defined]


def _micro(value: Decimal | None) -> int | None:
    return None if value is None else int((value * MICRO).to_integral_value())


# The version and product fields a snapshot needs, read as dicts: at 10,000 products,
# model instances (and every version's full spec document) cost seconds.
VERSION_FIELDS = (
    "pk",
    "product_id",
    "version",
    "status",
    "sunset_at",
    "upstream_url",
    "upstream_auth_header",
    "upstream_secret_encrypted",
    "connect_timeout_ms",
    "read_timeout_ms",
    "tls_verify",
    "mcp_transport",
    "product__slug",
    "product__kind",
    "product__organization_id",
    "product__visibility",
)
REST_TO_MCP_CONFIG = "spec__rest_to_mcp__config_encrypted"


def _upstream(version: dict[str, Any]) -> s.Upstream:
    return s.Upstream(
        url=version["upstream_url"],
        auth_header=version["upstream_auth_header"],
        secret_encrypted=version["upstream_secret_encrypted"],
        connect_timeout_ms=version["connect_timeout_ms"],
        read_timeout_ms=version["read_timeout_ms"],
        tls_verify=version["tls_verify"],
    )


def _latest_live_versions() -> dict[int, dict[str, Any]]:
    """The latest live version of each product, by product id."""
    versions = (
        ProductVersion.objects.filter(status__in=ProductVersion.LIVE_STATUSES)
        .order_by("product_id", F("published_at").desc(nulls_last=True), "-pk")
        .values(*VERSION_FIELDS, REST_TO_MCP_CONFIG)
    )
    latest: dict[int, dict[str, Any]] = {}
    for version in versions:
        latest.setdefault(version["product_id"], version)
    return latest


def _scope(scoped: list[int], live: dict[int, dict[str, Any]]) -> tuple[int, ...] | None:
    """A key's product scope among live products: () for every product, None when the key
    is scoped only to products that are not live (it reaches nothing)."""
    if not scoped:
        return ()
    reachable = tuple(sorted(p for p in scoped if p in live))
    return reachable or None


def compile_snapshot(*, version: int, source_generation: int) -> s.Snapshot:
    """The snapshot of the current configuration (15 queries, whatever its size: 8 for
    products, plans, subscriptions, apps and keys, 7 for routes and guardrails)."""
    now = timezone.now()
    latest = _latest_live_versions()  # 1
    version_ids = [v["pk"] for v in latest.values()]
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

    products = [
        s.Product(
            id=product_id,
            slug=v["product__slug"],
            kind=v["product__kind"],
            organization_id=v["product__organization_id"],
            public=v["product__visibility"] == Product.Visibility.PUBLIC,
            version_id=v["pk"],
            version=v["version"],
            deprecated=v["status"] == ProductVersion.Status.DEPRECATED,
            sunset_at=_epoch(v["sunset_at"]),
            upstream=_upstream(v),
            mcp_transport=v["mcp_transport"],
            models=tuple(models_by_version[v["pk"]]),
            tools=tuple(tools_by_version[v["pk"]]),
            rest_to_mcp_config_encrypted=str(v[REST_TO_MCP_CONFIG] or ""),
        )
        for product_id, v in sorted(latest.items())
    ]

    plan_fields = (
        "pk",
        "product_id",
        "name",
        *Plan.REQUEST_WINDOWS,
        *Plan.TOKEN_WINDOWS,
        "monthly_budget_usd",
        "allowed_models",
        "allowed_tools",
    )
    plans = [
        s.Plan(
            id=p["pk"],
            product_id=p["product_id"],
            name=p["name"],
            requests_per_second=p["requests_per_second"],
            requests_per_minute=p["requests_per_minute"],
            requests_per_day=p["requests_per_day"],
            requests_per_month=p["requests_per_month"],
            tokens_per_minute=p["tokens_per_minute"],
            tokens_per_day=p["tokens_per_day"],
            tokens_per_month=p["tokens_per_month"],
            monthly_budget_microusd=_micro(p["monthly_budget_usd"]),
            allowed_models=tuple(p["allowed_models"]),
            allowed_tools=tuple(p["allowed_tools"]),
        )
        for p in Plan.objects.filter(product_id__in=latest).order_by("pk").values(*plan_fields)  # 4
    ]
    subscriptions = [
        s.Subscription(id=pk, app_id=app_id, product_id=product_id, plan_id=plan_id, expires_at=_epoch(expires_at))
        for pk, app_id, product_id, plan_id, expires_at in Subscription.objects.filter(  # 5
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            status=Subscription.Status.APPROVED,
            product_id__in=latest,
        )
        .order_by("pk")
        .values_list("pk", "app_id", "product_id", "plan_id", "expires_at")
    ]
    app_ids = {x.app_id for x in subscriptions}
    apps = [
        s.App(id=a.pk, organization_id=a.organization_id, name=a.name)
        for a in ConsumerApp.objects.filter(pk__in=app_ids).order_by("pk")  # 6
    ]
    # Keys are the bulk of a snapshot: read as tuples, not model instances (10x faster).
    usable_keys = ApiKey.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True, app_id__in=app_ids
    )
    scopes: dict[int, list[int]] = defaultdict(list)
    scope_rows = ApiKey.products.through.objects.filter(apikey_id__in=usable_keys.values("pk"))  # 7
    for key_id, product_id in scope_rows.values_list("apikey_id", "product_id"):
        scopes[key_id].append(product_id)
    keys = []
    key_rows = usable_keys.order_by("pk").values_list(
        "pk", "key_hash", "prefix", "app_id", "expires_at", *ApiKey.REQUEST_WINDOWS
    )  # 8
    for key_id, key_hash, prefix, app_id, expires_at, per_second, per_minute, per_day, per_month in key_rows:
        scope = _scope(scopes.get(key_id, []), latest)
        if scope is not None:
            keys.append(
                s.Key(
                    hash=key_hash,
                    prefix=prefix,
                    app_id=app_id,
                    expires_at=_epoch(expires_at),
                    product_ids=scope,
                    requests_per_second=per_second,
                    requests_per_minute=per_minute,
                    requests_per_day=per_day,
                    requests_per_month=per_month,
                )
            )
    governance = _compile_governance(product_ids=list(latest), plan_ids=[p.id for p in plans])  # 9 to 15
    return s.Snapshot(
        version=version,
        created_at=time.time(),
        source_generation=source_generation,
        products=tuple(_with_guardrails(products, governance.product_guardrails)),
        plans=tuple(_with_guardrails(plans, governance.plan_guardrails)),
        apps=tuple(apps),
        keys=tuple(keys),
        subscriptions=tuple(subscriptions),
        routes=governance.routes,
        guardrails=governance.guardrails,
    )


# --- Routes and guardrails ---------------------------------------------------------------
#
# Kept apart from the rest of the compiler: compile_snapshot calls _compile_governance
# once, with the products and plans it emits, and merges its result in.


@dataclass(frozen=True)
class _Governance:
    routes: tuple[s.Route, ...]
    guardrails: tuple[s.GuardrailPolicy, ...]
    product_guardrails: dict[int, tuple[int, ...]]
    plan_guardrails: dict[int, tuple[int, ...]]


def _policy_ids_by(relation: str, column: str, ids: Iterable[int]) -> dict[int, tuple[int, ...]]:
    """The enabled guardrail policies attached to each of ``ids`` through ``relation``
    (a GuardrailPolicy many-to-many), in one query."""
    through = getattr(GuardrailPolicy, relation).through
    rows = (
        through.objects.filter(**{f"{column}__in": list(ids)}, guardrailpolicy__enabled=True)
        .order_by(column, "guardrailpolicy_id")
        .values_list(column, "guardrailpolicy_id")
    )
    attached: dict[int, list[int]] = defaultdict(list)
    for owner_id, policy_id in rows:
        attached[owner_id].append(policy_id)
    return {owner_id: tuple(policy_ids) for owner_id, policy_ids in attached.items()}


ROUTE_FIELDS = (
    "pk",
    "product_id",
    "priority",
    "path_prefix",
    "model",
    "host",
    "headers",
    "connect_timeout_ms",
    "first_byte_timeout_ms",
    "total_timeout_ms",
    "idle_timeout_ms",
    "retry_count",
    "retry_on_statuses",
    "retry_on_timeout",
    "retry_backoff_ms",
    "fallback_target_ids",
    "fallback_models",
    "cooldown_failures",
    "cooldown_window_s",
    "cooldown_s",
    "limit_rps",
    "limit_rpm",
    "cut_stream_on_budget",
    "canary__target_id",
    "canary__mode",
    "canary__weight",
    "canary__header_name",
    "canary__header_value",
    "canary__app_ids",
)
TARGET_FIELDS = (
    "pk",
    "route_id",
    "name",
    "upstream_url",
    "auth_header",
    "secret_encrypted",
    "tls_verify",
    "weight",
    "model",
)


def _target(target: dict[str, Any], route: dict[str, Any]) -> s.Target:
    return s.Target(
        id=target["pk"],
        name=target["name"],
        # A route's targets use the route's timeouts: connect, and first byte as the read.
        upstream=s.Upstream(
            url=target["upstream_url"],
            auth_header=target["auth_header"],
            secret_encrypted=target["secret_encrypted"],
            connect_timeout_ms=route["connect_timeout_ms"],
            read_timeout_ms=route["first_byte_timeout_ms"],
            tls_verify=target["tls_verify"],
        ),
        weight=target["weight"],
        model=target["model"],
    )


def _canary(route: dict[str, Any], target_ids: set[int]) -> s.Canary | None:
    if route["canary__target_id"] is None or route["canary__target_id"] not in target_ids:
        return None
    return s.Canary(
        target_id=route["canary__target_id"],
        mode=route["canary__mode"],
        weight=route["canary__weight"],
        header_name=route["canary__header_name"],
        header_value=route["canary__header_value"],
        app_ids=tuple(route["canary__app_ids"] or ()),
    )


def _route(
    route: dict[str, Any], route_targets: list[dict[str, Any]], guardrail_ids: tuple[int, ...]
) -> s.Route | None:
    """The route as the gateway sees it, or None when it has no target with traffic to
    send to (a route being set up)."""
    targets = tuple(_target(t, route) for t in route_targets)
    if not any(t.weight > 0 for t in targets):
        return None
    target_ids = {t.id for t in targets}
    return s.Route(
        id=route["pk"],
        product_id=route["product_id"],
        priority=route["priority"],
        match=s.RouteMatch(
            path_prefix=route["path_prefix"], model=route["model"], host=route["host"], headers=dict(route["headers"])
        ),
        targets=targets,
        timeouts=s.Timeouts(
            connect_ms=route["connect_timeout_ms"],
            first_byte_ms=route["first_byte_timeout_ms"],
            total_ms=route["total_timeout_ms"],
            idle_ms=route["idle_timeout_ms"],
        ),
        retry=s.Retry(
            count=route["retry_count"],
            on_statuses=tuple(route["retry_on_statuses"]),
            on_timeout=route["retry_on_timeout"],
            backoff_ms=route["retry_backoff_ms"],
        ),
        fallback_target_ids=tuple(i for i in route["fallback_target_ids"] if i in target_ids),
        fallback_models=tuple(route["fallback_models"]),
        cooldown=s.Cooldown(
            failures=route["cooldown_failures"], window_s=route["cooldown_window_s"], cooldown_s=route["cooldown_s"]
        ),
        canary=_canary(route, target_ids),
        limits=s.SafetyLimits(requests_per_second=route["limit_rps"], requests_per_minute=route["limit_rpm"]),
        guardrail_ids=guardrail_ids,
        cut_stream_on_budget=route["cut_stream_on_budget"],
    )


def _rule(rule: GuardrailRule) -> s.GuardrailRule:
    return s.GuardrailRule(
        kind=rule.kind,  # type: ignore[arg-type]
        action=rule.action,  # type: ignore[arg-type]
        on_request=rule.on_request,
        on_response=rule.on_response,
        words=tuple(rule.words),
        pattern=rule.pattern,
        max_chars=rule.max_chars,
    )


def _compile_governance(*, product_ids: list[int], plan_ids: list[int]) -> _Governance:
    """Routes and guardrails for the snapshot's products and plans (7 queries)."""
    routes_query = Route.objects.filter(product_id__in=product_ids, enabled=True)
    # Read as dicts and grouped by hand: model instances and a prefetch (a related manager
    # per route) cost seconds at 10,000 routes.
    routes_list = list(routes_query.order_by("product_id", "-priority", "pk").values(*ROUTE_FIELDS))  # 9
    targets_by_route: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for target in RouteTarget.objects.filter(route__in=routes_query).order_by("pk").values(*TARGET_FIELDS):  # 10
        targets_by_route[target["route_id"]].append(target)
    route_guardrails = _policy_ids_by("routes", "route_id", [r["pk"] for r in routes_list])  # 11
    product_guardrails = _policy_ids_by("products", "product_id", product_ids)  # 12
    plan_guardrails = _policy_ids_by("plans", "plan_id", plan_ids)  # 13
    routes = []
    for row in routes_list:
        compiled = _route(row, targets_by_route.get(row["pk"], []), route_guardrails.get(row["pk"], ()))
        if compiled is not None:
            routes.append(compiled)
    named = {
        policy_id
        for ids in (*product_guardrails.values(), *plan_guardrails.values(), *(r.guardrail_ids for r in routes))
        for policy_id in ids
    }
    policies = (
        GuardrailPolicy.objects.filter(pk__in=named)
        .order_by("pk")
        .prefetch_related(  # 14
            Prefetch("rules", queryset=GuardrailRule.objects.order_by("pk"))  # 15
        )
    )
    guardrails = tuple(
        s.GuardrailPolicy(id=p.pk, name=p.name, rules=tuple(_rule(r) for r in p.rules.all())) for p in policies
    )
    return _Governance(
        routes=tuple(routes),
        guardrails=guardrails,
        product_guardrails=product_guardrails,
        plan_guardrails=plan_guardrails,
    )


def _with_guardrails(items: list[_WithGuardrails], attached: dict[int, tuple[int, ...]]) -> list[_WithGuardrails]:
    """Products or plans with the ids of the guardrail policies attached to them."""
    return [
        msgspec.structs.replace(item, guardrail_ids=attached[item.id]) if item.id in attached else item
        for item in items
    ]
