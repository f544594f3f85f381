"""Writers of routes, their targets and canaries. Platform staff govern traffic.

Every function checks that the actor is staff (PermissionDenied otherwise), validates the
whole change (full_clean, plus the rules that span rows, such as "some target of a route
has a positive weight"), writes in one transaction with its audit event, and bumps the
configuration generation once, through config_mark_changed. A call that changes nothing
writes nothing and bumps nothing.

Canary semantics (what the gateway enforces): the canary target's own weight is 0, so it
takes traffic only through the canary; the route's other targets share the rest by their
weights, which the canary never touches. Promoting gives the canary target weight 100 and
every other target 0; rolling back removes the canary, which leaves the traffic split as
it was before the canary started.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from accounts.services import audit_record
from consumers.models import ConsumerApp
from gateway_sync.models_routes import Canary, CanaryEvent, Route, RouteTarget
from gateway_sync.services import config_mark_changed
from marketplace import outbound
from marketplace.crypto import secret_encrypt
from marketplace.models import ModelOffering, Product

ROUTE_FIELDS = (
    "name",
    "priority",
    "enabled",
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
)
TARGET_FIELDS = ("name", "upstream_url", "auth_header", "tls_verify", "weight", "model")


def require_staff(actor: User) -> None:
    if not (actor.is_authenticated and actor.is_staff):
        raise PermissionDenied("Traffic governance is for platform staff.")


def field_state(instance: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The values of ``fields``, for audit records."""
    return {field: getattr(instance, field) for field in fields}


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` for the fields whose value changed."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def _unknown(fields: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValidationError(f"Unknown {what} fields: {', '.join(unknown)}.")


def _audit(actor: User, action: str, route: Route, changes: dict[str, Any], target: Any = None) -> None:
    audit_record(
        actor=actor,
        action=action,
        target=target if target is not None else route,
        organization=route.product.organization,
        changes=changes,
    )


# --- Routes ----------------------------------------------------------------------------


def _check_models(route: Route) -> None:
    """The route's model and fallback models must be models the product offers (in any
    of its versions, so a route can be set up before the version is published)."""
    names = [n for n in [route.model, *route.fallback_models] if n]
    if not names or route.product.kind != Product.Kind.MODEL_API:
        return
    known = set(ModelOffering.objects.filter(version__product=route.product).values_list("public_name", flat=True))
    errors: dict[str, str] = {}
    if route.model and route.model not in known:
        errors["model"] = f"{route.product.name} offers no model {route.model!r}."
    unknown = [n for n in route.fallback_models if n not in known]
    if unknown:
        errors["fallback_models"] = f"{route.product.name} offers no model {', '.join(map(repr, unknown))}."
    if errors:
        raise ValidationError(errors)


def _save_route(route: Route) -> None:
    route.full_clean()
    _check_models(route)
    try:
        with transaction.atomic():
            route.save()
    except IntegrityError:
        raise ValidationError({"name": f"{route.product.name} already has a route named {route.name!r}."}) from None


@transaction.atomic
def route_create(*, actor: User, product: Product, name: str, **fields: Any) -> Route:
    """A new route of ``product``. ``fields``: any of ROUTE_FIELDS but ``name``."""
    require_staff(actor)
    _unknown(fields, ROUTE_FIELDS, "route")
    route = Route(product=product, name=name, **fields)
    _save_route(route)
    _audit(actor, "route.create", route, field_state(route, ROUTE_FIELDS))
    config_mark_changed(reason=f"route {route.pk} created")
    return route


@transaction.atomic
def route_update(*, actor: User, route: Route, **fields: Any) -> Route:
    """Change any of ROUTE_FIELDS."""
    require_staff(actor)
    _unknown(fields, ROUTE_FIELDS, "route")
    before = field_state(route, ROUTE_FIELDS)
    for field, value in fields.items():
        setattr(route, field, value)
    _save_route(route)
    changes = field_changes(before, field_state(route, ROUTE_FIELDS))
    if changes:
        _audit(actor, "route.update", route, changes)
        config_mark_changed(reason=f"route {route.pk} updated")
    return route


@transaction.atomic
def route_delete(*, actor: User, route: Route) -> None:
    """Delete the route with its targets, canary and canary history (the audit log keeps
    the record)."""
    require_staff(actor)
    _audit(actor, "route.delete", route, {"product": route.product.slug, "name": route.name})
    config_mark_changed(reason=f"route {route.pk} deleted")
    route.delete()


# --- Targets ---------------------------------------------------------------------------


def _check_upstream_url(url: str) -> None:
    try:
        outbound.check_url(url)
    except outbound.OutboundError as error:
        raise ValidationError({"upstream_url": str(error)}) from None


def _check_weights(route: Route, weights: dict[int | None, int]) -> None:
    """Some target of the route must keep a positive weight (a route with no targets at
    all is allowed: it is not served until one is added)."""
    if weights and not any(w > 0 for w in weights.values()):
        raise ValidationError(
            {"weight": "At least one target of the route needs a positive weight; this would leave none."}
        )


def _weights(route: Route) -> dict[int | None, int]:
    return dict(route.targets.values_list("pk", "weight"))


def _canary_target_id(route: Route) -> int | None:
    canary = Canary.objects.filter(route=route).first()
    return canary.target_id if canary is not None else None


def _save_target(target: RouteTarget) -> None:
    """Save a cleaned target; a concurrent save of the same name is told as such."""
    try:
        with transaction.atomic():
            target.save()
    except IntegrityError:
        raise ValidationError({"name": f"The route already has a target named {target.name!r}."}) from None


@transaction.atomic
def target_add(
    *,
    actor: User,
    route: Route,
    name: str,
    upstream_url: str,
    auth_header: str = "",
    secret: str = "",
    tls_verify: bool = True,
    weight: int = 100,
    model: str = "",
) -> RouteTarget:
    """A new upstream of ``route``. The secret is encrypted and never shown again."""
    require_staff(actor)
    target = RouteTarget(
        route=route,
        name=name,
        upstream_url=upstream_url.strip(),
        auth_header=auth_header.strip(),
        secret_encrypted=secret_encrypt(secret),
        tls_verify=tls_verify,
        weight=weight,
        model=model.strip(),
    )
    target.full_clean()
    _check_upstream_url(target.upstream_url)
    _check_weights(route, {**_weights(route), None: weight})
    _save_target(target)
    changes = {**field_state(target, TARGET_FIELDS), "secret": "(set)" if secret else "(none)"}
    _audit(actor, "route_target.add", route, changes, target=target)
    config_mark_changed(reason=f"route {route.pk} target {target.pk} added")
    return target


@transaction.atomic
def target_update(
    *,
    actor: User,
    target: RouteTarget,
    name: str | None = None,
    upstream_url: str | None = None,
    auth_header: str | None = None,
    secret: str | None = None,
    tls_verify: bool | None = None,
    weight: int | None = None,
    model: str | None = None,
) -> RouteTarget:
    """Change a target. ``secret``: None keeps the stored one, "" clears it."""
    require_staff(actor)
    route = target.route
    before = field_state(target, TARGET_FIELDS)
    for field, value in (
        ("name", name),
        ("upstream_url", upstream_url),
        ("auth_header", auth_header),
        ("tls_verify", tls_verify),
        ("weight", weight),
        ("model", model),
    ):
        if value is not None:
            setattr(target, field, value.strip() if isinstance(value, str) else value)
    if secret is not None:
        target.secret_encrypted = secret_encrypt(secret)
    target.full_clean()
    changes: dict[str, Any] = field_changes(before, field_state(target, TARGET_FIELDS))
    if "upstream_url" in changes:
        _check_upstream_url(target.upstream_url)
    if "weight" in changes:
        if target.weight > 0 and _canary_target_id(route) == target.pk:
            raise ValidationError(
                {"weight": "This target is the route's canary: the canary sets its share. Promote it instead."}
            )
        _check_weights(route, {**_weights(route), target.pk: target.weight})
    if secret is not None:
        changes["secret"] = "(set)" if secret else "(cleared)"
    if not changes:
        return target
    _save_target(target)
    _audit(actor, "route_target.update", route, changes, target=target)
    config_mark_changed(reason=f"route {route.pk} target {target.pk} updated")
    return target


@transaction.atomic
def target_remove(*, actor: User, target: RouteTarget) -> None:
    """Remove a target (and drop it from the route's fallback chain)."""
    require_staff(actor)
    route = target.route
    if _canary_target_id(route) == target.pk:
        raise ValidationError("This target is the route's canary. Promote the canary or roll it back first.")
    remaining = _weights(route)
    remaining.pop(target.pk, None)
    _check_weights(route, remaining)
    if target.pk in route.fallback_target_ids:
        route.fallback_target_ids = [i for i in route.fallback_target_ids if i != target.pk]
        route.save(update_fields=["fallback_target_ids", "updated_at"])
    _audit(actor, "route_target.remove", route, {"name": target.name, "upstream_url": target.upstream_url})
    config_mark_changed(reason=f"route {route.pk} target {target.pk} removed")
    target.delete()


# --- Canaries --------------------------------------------------------------------------


def _current_canary(route: Route) -> Canary:
    canary = Canary.objects.select_related("target").filter(route=route).first()
    if canary is None:
        raise ValidationError("The route has no canary.")
    return canary


def _record(
    actor: User, route: Route, target: RouteTarget, kind: str, before: dict[str, Any], after: dict[str, Any]
) -> CanaryEvent:
    event = CanaryEvent.objects.create(
        route=route,
        target=target,
        target_name=target.name,
        kind=kind,
        actor=actor,
        actor_email=actor.email,
        from_state=before,
        to_state=after,
    )
    _audit(actor, f"canary.{kind}", route, {"from": before, "to": after})
    config_mark_changed(reason=f"route {route.pk} canary {kind.replace('_', ' ')}")
    return event


@transaction.atomic
def canary_start(
    *,
    actor: User,
    route: Route,
    target: RouteTarget,
    mode: str,
    weight: int = 0,
    header_name: str = "",
    header_value: str = "",
    app_ids: Iterable[int] = (),
) -> Canary:
    """Send part of the route's traffic to ``target``: ``weight`` percent of requests,
    those whose header ``header_name`` is ``header_value``, or those of ``app_ids``."""
    require_staff(actor)
    existing = Canary.objects.select_related("target").filter(route=route).first()
    if existing is not None:
        raise ValidationError(
            f"The route already has a canary ({existing.target.name}). Promote it or roll it back first."
        )
    if target.route_id != route.pk:
        raise ValidationError({"target": "The canary target must be a target of this route."})
    if target.weight > 0:
        raise ValidationError(
            {
                "target": f"{target.name} already takes {target.weight} of the route's weight. A canary target "
                "takes traffic only through the canary: add it with weight 0."
            }
        )
    canary = Canary(
        route=route,
        target=target,
        mode=mode,
        weight=weight if mode == Canary.Mode.WEIGHT else 0,
        header_name=header_name.strip() if mode == Canary.Mode.HEADER else "",
        header_value=header_value.strip() if mode == Canary.Mode.HEADER else "",
        app_ids=list(dict.fromkeys(app_ids)) if mode == Canary.Mode.APPS else [],
        started_by=actor,
    )
    canary.full_clean()
    if canary.app_ids:
        known = set(ConsumerApp.objects.filter(pk__in=canary.app_ids).values_list("pk", flat=True))
        unknown = [i for i in canary.app_ids if i not in known]
        if unknown:
            raise ValidationError({"app_ids": f"No app with id {', '.join(map(str, unknown))}."})
    try:
        with transaction.atomic():
            canary.save()
    except IntegrityError:
        raise ValidationError("The route already has a canary. Promote it or roll it back first.") from None
    _record(actor, route, target, CanaryEvent.Kind.STARTED, {}, canary.state())
    return canary


@transaction.atomic
def canary_set_weight(*, actor: User, route: Route, weight: int) -> Canary:
    """Change the percentage of requests a weight-mode canary takes."""
    require_staff(actor)
    canary = _current_canary(route)
    if canary.mode != Canary.Mode.WEIGHT:
        raise ValidationError({"weight": f"This canary selects {canary.get_mode_display().lower()}, not a weight."})
    if canary.weight == weight:
        return canary
    before = canary.weight
    canary.weight = weight
    canary.full_clean()
    canary.save()
    _record(actor, route, canary.target, CanaryEvent.Kind.WEIGHT_CHANGED, {"weight": before}, {"weight": weight})
    return canary


@transaction.atomic
def canary_promote(*, actor: User, route: Route) -> RouteTarget:
    """The canary target takes all the route's traffic (weight 100, every other target
    0, kept for fallback or a later switch back); the canary ends."""
    require_staff(actor)
    canary = _current_canary(route)
    target = canary.target
    weights_before = dict(route.targets.values_list("name", "weight"))
    route.targets.exclude(pk=target.pk).update(weight=0)
    route.targets.filter(pk=target.pk).update(weight=100)
    weights_after = dict(route.targets.values_list("name", "weight"))
    state = canary.state()
    canary.delete()
    _record(
        actor,
        route,
        target,
        CanaryEvent.Kind.PROMOTED,
        {"canary": state, "weights": weights_before},
        {"weights": weights_after},
    )
    target.refresh_from_db()
    return target


@transaction.atomic
def canary_rollback(*, actor: User, route: Route) -> None:
    """End the canary: its target gets no more traffic, the other targets' weights (which
    the canary never changed) carry the route as before."""
    require_staff(actor)
    canary = _current_canary(route)
    state = canary.state()
    target = canary.target
    canary.delete()
    _record(actor, route, target, CanaryEvent.Kind.ROLLED_BACK, {"canary": state}, {})
