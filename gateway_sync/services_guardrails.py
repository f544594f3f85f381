"""Writers of guardrail policies, their rules and their attachments (platform staff).

As in services_routes: staff only, full_clean, one transaction with its audit event, one
bump of the configuration generation per change, nothing written for a call that changes
nothing. ``guardrail_policy_test`` writes nothing: it runs the policy's detection (the
same pure code the workers run) on a text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction

from accounts.models import User
from accounts.services import audit_record
from consumers.models import Plan
from gateway_sync import guardrail_rules
from gateway_sync.models_guardrails import GuardrailPolicy, GuardrailRule
from gateway_sync.models_routes import Route
from gateway_sync.services import config_mark_changed
from gateway_sync.services_routes import field_changes, field_state, require_staff
from marketplace.models import Product

POLICY_FIELDS = ("name", "description", "enabled")
RULE_FIELDS = ("kind", "action", "on_request", "on_response", "words", "pattern", "max_chars")
MAX_TEST_CHARS = 100_000


def _changed(actor: User, action: str, target: models.Model, changes: dict[str, Any], reason: str) -> None:
    audit_record(actor=actor, action=action, target=target, changes=changes)
    config_mark_changed(reason=reason)


# --- Policies --------------------------------------------------------------------------


@transaction.atomic
def guardrail_policy_create(*, actor: User, name: str, description: str = "", enabled: bool = True) -> GuardrailPolicy:
    require_staff(actor)
    policy = GuardrailPolicy(name=name.strip(), description=description.strip(), enabled=enabled)
    policy.full_clean()
    policy.save()
    _changed(
        actor, "guardrail_policy.create", policy, field_state(policy, POLICY_FIELDS), f"guardrail {policy.pk} created"
    )
    return policy


@transaction.atomic
def guardrail_policy_update(
    *,
    actor: User,
    policy: GuardrailPolicy,
    name: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> GuardrailPolicy:
    require_staff(actor)
    before = field_state(policy, POLICY_FIELDS)
    for field, value in (("name", name), ("description", description), ("enabled", enabled)):
        if value is not None:
            setattr(policy, field, value.strip() if isinstance(value, str) else value)
    policy.full_clean()
    changes = field_changes(before, field_state(policy, POLICY_FIELDS))
    if changes:
        policy.save()
        _changed(actor, "guardrail_policy.update", policy, changes, f"guardrail {policy.pk} updated")
    return policy


@transaction.atomic
def guardrail_policy_delete(*, actor: User, policy: GuardrailPolicy) -> None:
    """Delete the policy, its rules and its attachments."""
    require_staff(actor)
    _changed(actor, "guardrail_policy.delete", policy, {"name": policy.name}, f"guardrail {policy.pk} deleted")
    policy.delete()


# --- Rules -----------------------------------------------------------------------------


@transaction.atomic
def guardrail_rule_add(
    *,
    actor: User,
    policy: GuardrailPolicy,
    kind: str,
    action: str = GuardrailRule.Action.BLOCK,
    on_request: bool = True,
    on_response: bool = False,
    words: Iterable[str] = (),
    pattern: str = "",
    max_chars: int | None = None,
) -> GuardrailRule:
    require_staff(actor)
    rule = GuardrailRule(
        policy=policy,
        kind=kind,
        action=action,
        on_request=on_request,
        on_response=on_response,
        words=list(words),
        pattern=pattern,
        max_chars=max_chars,
    )
    rule.full_clean()
    rule.save()
    _changed(actor, "guardrail_rule.add", policy, field_state(rule, RULE_FIELDS), f"guardrail {policy.pk} rule added")
    return rule


@transaction.atomic
def guardrail_rule_update(*, actor: User, rule: GuardrailRule, **fields: Any) -> GuardrailRule:
    """Change any of RULE_FIELDS."""
    require_staff(actor)
    unknown = sorted(set(fields) - set(RULE_FIELDS))
    if unknown:
        raise ValidationError(f"Unknown rule fields: {', '.join(unknown)}.")
    before = field_state(rule, RULE_FIELDS)
    for field, value in fields.items():
        setattr(rule, field, list(value) if field == "words" and value is not None else value)
    rule.full_clean()
    changes = field_changes(before, field_state(rule, RULE_FIELDS))
    if changes:
        rule.save()
        _changed(
            actor,
            "guardrail_rule.update",
            rule.policy,
            {"rule": rule.pk, **changes},
            f"guardrail {rule.policy_id} rule updated",
        )
    return rule


@transaction.atomic
def guardrail_rule_remove(*, actor: User, rule: GuardrailRule) -> None:
    require_staff(actor)
    policy = rule.policy
    _changed(
        actor,
        "guardrail_rule.remove",
        policy,
        {"rule": rule.pk, **field_state(rule, RULE_FIELDS)},
        f"guardrail {policy.pk} rule removed",
    )
    rule.delete()


# --- Attachments -----------------------------------------------------------------------


def _attachment(
    product: Product | None, plan: Plan | None, route: Route | None
) -> tuple[str, Product | Plan | Route, Any]:
    """(label, object, the policy's relation to that kind of object), for exactly one."""
    given = [(label, obj) for label, obj in (("product", product), ("plan", plan), ("route", route)) if obj is not None]
    if len(given) != 1:
        raise ValidationError("Attach the policy to exactly one product, plan or route.")
    label, obj = given[0]
    return label, obj, label + "s"


@transaction.atomic
def guardrail_policy_attach(
    *,
    actor: User,
    policy: GuardrailPolicy,
    product: Product | None = None,
    plan: Plan | None = None,
    route: Route | None = None,
) -> bool:
    """Apply the policy to one product, plan or route. True when it was not attached yet
    (attaching twice changes nothing)."""
    require_staff(actor)
    label, obj, relation = _attachment(product, plan, route)
    related = getattr(policy, relation)
    if related.filter(pk=obj.pk).exists():
        return False
    related.add(obj)
    _changed(
        actor,
        "guardrail_policy.attach",
        policy,
        {label: obj.pk, "name": str(obj)},
        f"guardrail {policy.pk} attached to {label} {obj.pk}",
    )
    return True


@transaction.atomic
def guardrail_policy_detach(
    *,
    actor: User,
    policy: GuardrailPolicy,
    product: Product | None = None,
    plan: Plan | None = None,
    route: Route | None = None,
) -> bool:
    """Stop applying the policy to one product, plan or route. True when it was attached."""
    require_staff(actor)
    label, obj, relation = _attachment(product, plan, route)
    related = getattr(policy, relation)
    if not related.filter(pk=obj.pk).exists():
        return False
    related.remove(obj)
    _changed(
        actor,
        "guardrail_policy.detach",
        policy,
        {label: obj.pk, "name": str(obj)},
        f"guardrail {policy.pk} detached from {label} {obj.pk}",
    )
    return True


# --- Trying a policy -------------------------------------------------------------------


def guardrail_policy_test(
    *, actor: User, policy: GuardrailPolicy, text: str, direction: guardrail_rules.Direction = "request"
) -> guardrail_rules.Verdict:
    """What the gateway would do with ``text`` under the policy's rules (enabled or not),
    in one direction. Writes nothing."""
    require_staff(actor)
    if len(text) > MAX_TEST_CHARS:
        raise ValidationError({"text": f"Test with at most {MAX_TEST_CHARS:,} characters."})
    if direction not in ("request", "response"):
        raise ValidationError({"direction": "Choose request or response."})
    return guardrail_rules.evaluate(list(policy.rules.all()), text, direction=direction)
