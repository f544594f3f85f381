"""Which model a /v1 request names, and who may use it.

The catalog indexes a snapshot's model products (``kind == "model_api"``) by the public
names of their ``ModelOffering``s, once per snapshot (the cache keeps one, replaced when the
snapshot changes). A request's ``model`` is a public name, or ``<product-slug>/<name>`` where
two products the app subscribes to offer the same name.

The caller is the API key (``Authorization: Bearer`` or ``x-api-key``), as on /api; then,
among the products offering the model: the key's scope, an active subscription of its app,
and the plan's ``allowed_models`` (empty: every model). Refusals are OpenAI errors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDictProxy

from gateway_sync.contract.schema import Key, ModelOffering, Product
from gateway_sync.worker.auth import Caller, keyed_hash, presented_key
from gateway_sync.worker.errors_openai import bad_request, openai_error
from gateway_sync.worker.state import CompiledSnapshot

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="v1"'}


@dataclass(frozen=True, slots=True)
class ModelChoice:
    product: Product
    offering: ModelOffering


@dataclass(frozen=True, slots=True)
class ModelCatalog:
    by_name: dict[str, tuple[ModelChoice, ...]]
    products: tuple[Product, ...]

    @classmethod
    def build(cls, snapshot: CompiledSnapshot) -> ModelCatalog:
        found: dict[str, list[ModelChoice]] = {}
        products = tuple(p for p in snapshot.snapshot.products if p.kind == "model_api")
        for product in products:
            for offering in product.models:
                found.setdefault(offering.public_name, []).append(ModelChoice(product, offering))
        return cls(by_name={name: tuple(choices) for name, choices in found.items()}, products=products)

    def offering(self, product: Product, public_name: str) -> ModelOffering | None:
        for choice in self.by_name.get(public_name, ()):
            if choice.product.id == product.id:
                return choice.offering
        return None


@dataclass(eq=False)
class CatalogCache:
    _entry: tuple[CompiledSnapshot, ModelCatalog] | None = field(default=None)

    def get(self, snapshot: CompiledSnapshot) -> ModelCatalog:
        entry = self._entry
        if entry is not None and entry[0] is snapshot:
            return entry[1]
        catalog = ModelCatalog.build(snapshot)
        self._entry = (snapshot, catalog)
        return catalog


def authenticate_key(
    snapshot: CompiledSnapshot, headers: CIMultiDictProxy[str], *, pepper: str, now: float
) -> Key | web.Response:
    raw = presented_key(headers)
    if not raw:
        return openai_error(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
            code="missing_api_key",
            headers=UNAUTHORIZED_HEADERS,
        )
    key = snapshot.keys_by_hash.get(keyed_hash(pepper, raw))
    if key is None:
        return openai_error(401, "Incorrect API key provided.", code="invalid_api_key", headers=UNAUTHORIZED_HEADERS)
    if key.expires_at is not None and key.expires_at < now:
        return openai_error(401, "The API key has expired.", code="expired_api_key", headers=UNAUTHORIZED_HEADERS)
    return key


def caller_for(snapshot: CompiledSnapshot, key: Key, product: Product, now: float) -> Caller | None:
    """The key's caller on ``product``: in scope, with an active subscription and plan."""
    if key.product_ids and product.id not in key.product_ids:
        return None
    subscription = snapshot.subscriptions.get((key.app_id, product.id))
    if subscription is None or (subscription.expires_at is not None and subscription.expires_at < now):
        return None
    plan = snapshot.plans_by_id.get(subscription.plan_id)
    if plan is None:
        return None
    return Caller(key=key, subscription=subscription, plan=plan)


def _allows(caller: Caller, public_name: str) -> bool:
    allowed = caller.plan.allowed_models
    return not allowed or public_name in allowed


@dataclass(frozen=True, slots=True)
class Resolved:
    caller: Caller
    choice: ModelChoice


def resolve_model(
    snapshot: CompiledSnapshot, catalog: ModelCatalog, key: Key, name: str, *, now: float | None = None
) -> Resolved | web.Response:
    """The product, offering and caller for the model ``name``, or the OpenAI error."""
    moment = time.time() if now is None else now
    choices = catalog.by_name.get(name, ())
    if not choices and "/" in name:
        slug, _, bare = name.partition("/")
        product = snapshot.products_by_slug.get(slug)
        offering = catalog.offering(product, bare) if product is not None else None
        if product is not None and offering is not None:
            name, choices = bare, (ModelChoice(product, offering),)
    if not choices:
        return openai_error(
            404,
            f"The model `{name}` does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    usable = [(choice, caller_for(snapshot, key, choice.product, moment)) for choice in choices]
    subscribed = [(choice, caller) for choice, caller in usable if caller is not None]
    if not subscribed:
        return openai_error(
            403,
            f"This API key's app has no active subscription to a product offering `{name}`.",
            code="no_subscription",
            param="model",
        )
    allowed = [(choice, caller) for choice, caller in subscribed if _allows(caller, name)]
    if not allowed:
        return openai_error(
            403, f"Your plan does not include the model `{name}`.", code="model_not_allowed", param="model"
        )
    if len(allowed) > 1:
        qualified = ", ".join(f"`{choice.product.slug}/{name}`" for choice, _ in allowed)
        return bad_request(
            f"The model `{name}` is offered by several products your app subscribes to: name one of {qualified}.",
            param="model",
            code="ambiguous_model",
        )
    choice, caller = allowed[0]
    return Resolved(caller=caller, choice=choice)


def models_for_key(
    snapshot: CompiledSnapshot, catalog: ModelCatalog, key: Key, *, now: float | None = None
) -> list[dict[str, object]]:
    """``GET /v1/models``'s ``data``: the models this key may call, a name offered by two of
    its products listed as ``<product-slug>/<name>`` for each."""
    moment = time.time() if now is None else now
    usable: list[tuple[Product, str]] = []
    for product in catalog.products:
        caller = caller_for(snapshot, key, product, moment)
        if caller is None:
            continue
        usable += [(product, o.public_name) for o in product.models if _allows(caller, o.public_name)]
    counts: dict[str, int] = {}
    for _, name in usable:
        counts[name] = counts.get(name, 0) + 1
    created = int(snapshot.snapshot.created_at)
    return [
        {
            "id": name if counts[name] == 1 else f"{product.slug}/{name}",
            "object": "model",
            "created": created,
            "owned_by": product.slug,
        }
        for product, name in usable
    ]
