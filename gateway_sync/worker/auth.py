"""Who is calling, and may they call this product: API key → Key → App → Subscription → Plan.

Everything comes from the request's pinned ``CompiledSnapshot``, so a revoked key stops
working the moment a snapshot without it is swapped in, and an expiry holds the moment the
clock passes ``expires_at`` (checked per request, not at compile time).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDictProxy

from gateway_sync.contract.schema import Key, Plan, Product, Subscription
from gateway_sync.worker.errors import problem
from gateway_sync.worker.state import CompiledSnapshot

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="api"'}


def keyed_hash(pepper: str, key: str) -> str:
    """accounts.tokens.keyed_hash: HMAC-SHA256 of the whole key under the pepper, hex."""
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def presented_key(headers: CIMultiDictProxy[str]) -> str:
    """The key from ``Authorization: Bearer KEY`` or ``x-api-key: KEY``; "" if none."""
    authorization = headers.get("Authorization", "")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key", "").strip()


@dataclass(frozen=True, slots=True)
class Caller:
    key: Key
    subscription: Subscription
    plan: Plan


def authenticate(
    snapshot: CompiledSnapshot,
    product: Product,
    headers: CIMultiDictProxy[str],
    *,
    pepper: str,
    now: float | None = None,
) -> Caller | web.Response:
    """The caller, or the 401/403 problem response that refuses them."""
    raw = presented_key(headers)
    if not raw:
        detail = "Send an API key as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
        return problem(401, "Unauthorized", detail, "missing_api_key", headers=UNAUTHORIZED_HEADERS)
    key = snapshot.keys_by_hash.get(keyed_hash(pepper, raw))
    moment = time.time() if now is None else now
    if key is None:
        return problem(
            401, "Unauthorized", "The API key is not valid.", "invalid_api_key", headers=UNAUTHORIZED_HEADERS
        )
    if key.expires_at is not None and key.expires_at < moment:
        return problem(401, "Unauthorized", "The API key has expired.", "expired_api_key", headers=UNAUTHORIZED_HEADERS)
    if key.product_ids and product.id not in key.product_ids:
        return problem(403, "Forbidden", f"This API key is not scoped to {product.slug!r}.", "key_out_of_scope")
    subscription = snapshot.subscriptions.get((key.app_id, product.id))
    if subscription is None or (subscription.expires_at is not None and subscription.expires_at < moment):
        return problem(403, "Forbidden", f"This app has no active subscription to {product.slug!r}.", "no_subscription")
    plan = snapshot.plans_by_id.get(subscription.plan_id)
    if plan is None:  # decode_snapshot checks references; kept for safety
        return problem(403, "Forbidden", f"This app has no active plan for {product.slug!r}.", "no_subscription")
    return Caller(key=key, subscription=subscription, plan=plan)
