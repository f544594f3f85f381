"""The plans a product offers. Provider admins and owners manage them."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Role, User
from accounts.services import audit_record, require_role
from consumers.models import Plan
from gateway_sync.services import config_mark_changed
from marketplace.models import McpTool, ModelOffering, Product, ProductVersion

DEFAULT_PLAN_NAME = "Free"
LIMIT_FIELDS = (*Plan.REQUEST_WINDOWS, *Plan.TOKEN_WINDOWS, "monthly_budget_usd")
EDITABLE_FIELDS = (
    *LIMIT_FIELDS,
    "name",
    "price_label",
    "description",
    "allowed_models",
    "allowed_tools",
    "approval_required",
    "version",
)


def _check_allowed(plan: Plan) -> None:
    """Allowed models and tools must name models and tools the product has."""
    versions = ProductVersion.objects.filter(product=plan.product)
    if plan.version_id is not None:
        versions = versions.filter(pk=plan.version_id)
    if plan.allowed_models:
        if plan.product.kind != Product.Kind.MODEL_API:
            raise ValidationError({"allowed_models": "Only model APIs have models to allow."})
        known = set(ModelOffering.objects.filter(version__in=versions).values_list("public_name", flat=True))
        unknown = sorted(set(plan.allowed_models) - known)
        if unknown:
            raise ValidationError({"allowed_models": f"{plan.product.name} has no model {', '.join(unknown)}."})
    if plan.allowed_tools:
        if plan.product.kind != Product.Kind.MCP_SERVER:
            raise ValidationError({"allowed_tools": "Only MCP servers have tools to allow."})
        known = set(McpTool.objects.filter(version__in=versions).values_list("name", flat=True))
        unknown = sorted(set(plan.allowed_tools) - known)
        if unknown:
            raise ValidationError({"allowed_tools": f"{plan.product.name} has no tool {', '.join(unknown)}."})


def _names(values: Any, field: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValidationError({field: "Give a list of names."})
    names = [str(v).strip() for v in values if str(v).strip()]
    return list(dict.fromkeys(names))


def _save(plan: Plan) -> None:
    plan.allowed_models = _names(plan.allowed_models, "allowed_models")
    plan.allowed_tools = _names(plan.allowed_tools, "allowed_tools")
    plan.full_clean(validate_unique=False, validate_constraints=False)
    _check_allowed(plan)
    try:
        with transaction.atomic():
            plan.save()
    except IntegrityError:
        raise ValidationError({"name": f"{plan.product.name} already has a plan named {plan.name!r}."}) from None


@transaction.atomic
def plan_create(*, actor: User, product: Product, name: str, **fields: Any) -> Plan:
    """A new plan of ``product``. ``fields``: price_label, description, the limits
    (requests_per_second/minute/day/month, tokens_per_minute/day/month,
    monthly_budget_usd), allowed_models, allowed_tools, approval_required, version."""
    require_role(actor, product.organization, Role.ADMIN)
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError(f"Unknown plan fields: {', '.join(unknown)}.")
    plan = Plan(product=product, name=name.strip(), **fields)
    _save(plan)
    audit_record(
        actor=actor, action="plan.create", target=plan, organization=product.organization, changes=_snapshot(plan)
    )
    config_mark_changed(reason=f"plan {plan.pk} created")
    return plan


@transaction.atomic
def plan_update(*, actor: User, plan: Plan, **fields: Any) -> Plan:
    """Change a plan; the new limits apply to its current subscribers at once."""
    require_role(actor, plan.product.organization, Role.ADMIN)
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError(f"Unknown plan fields: {', '.join(unknown)}.")
    before = _snapshot(plan)
    for field, value in fields.items():
        setattr(plan, field, value.strip() if isinstance(value, str) else value)
    _save(plan)
    after = _snapshot(plan)
    changes = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
    if changes:
        audit_record(
            actor=actor, action="plan.update", target=plan, organization=plan.product.organization, changes=changes
        )
        config_mark_changed(reason=f"plan {plan.pk} updated")
    return plan


@transaction.atomic
def plan_archive(*, actor: User, plan: Plan) -> Plan:
    """Take no new subscriptions on this plan; its current subscribers keep it."""
    require_role(actor, plan.product.organization, Role.ADMIN)
    if plan.is_default:
        raise ValidationError("The default plan cannot be archived; make another plan the default first.")
    plan.is_active = False
    plan.save(update_fields=["is_active", "updated_at"])
    audit_record(actor=actor, action="plan.archive", target=plan, organization=plan.product.organization)
    return plan


def plan_ensure_default(*, product: Product) -> Plan:
    """The product's default plan, created (free, automatic approval, no limits beyond
    the platform's) when it has none."""
    plan = Plan.objects.filter(product=product).filter(is_default=True).first()
    if plan is None:
        plan = Plan.objects.create(
            product=product,
            name=DEFAULT_PLAN_NAME,
            price_label="Free",
            is_default=True,
            description="The default plan.",
        )
    return plan


def _snapshot(plan: Plan) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field in EDITABLE_FIELDS:
        value = getattr(plan, "version_id" if field == "version" else field)
        data[field] = str(value) if isinstance(value, Decimal) else value
    return data
