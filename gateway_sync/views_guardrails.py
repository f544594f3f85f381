"""Console pages of guardrail policies: the list, and each policy with its rules, its
attachments and a box to try it on a pasted text (platform staff)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.auth import request_user
from accounts.decorators import staff_required
from config.htmx import redirect, render_page_or_partial
from gateway_sync import services_guardrails as services
from gateway_sync.forms_guardrails import AttachForm, DetachForm, PolicyForm, PolicyTestForm, RuleForm
from gateway_sync.models_guardrails import GuardrailPolicy, GuardrailRule

PAGE = "gateway_sync/guardrail_detail.html"


@staff_required
def guardrail_list(request: HttpRequest) -> HttpResponse:
    form = PolicyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            policy = services.guardrail_policy_create(actor=request_user(request), **form.cleaned_data)
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, f"Created the policy {policy.name}. Add its rules, then attach it.")
            return redirect(request, reverse("console_guardrail", args=[policy.pk]))
    policies = GuardrailPolicy.objects.annotate(
        rule_count=Count("rules", distinct=True),
        product_count=Count("products", distinct=True),
        plan_count=Count("plans", distinct=True),
        route_count=Count("routes", distinct=True),
    ).order_by("name")
    return render_page_or_partial(
        request,
        "gateway_sync/guardrail_list.html",
        "gateway_sync/_policy_create_form.html",
        {"policies": policies, "form": form},
        status=400 if form.errors else 200,
    )


def _policy_get(policy_id: int) -> GuardrailPolicy:
    return get_object_or_404(GuardrailPolicy, pk=policy_id)


def _context(policy: GuardrailPolicy, **extra: Any) -> dict[str, Any]:
    rule_forms = extra.pop("rule_forms", {})
    rules = list(policy.rules.all())
    return {
        "policy": policy,
        "rules": [(r, rule_forms.get(r.pk) or RuleForm(rule=r)) for r in rules],
        "products": policy.products.order_by("name"),
        "plans": policy.plans.select_related("product").order_by("product__name", "name"),
        "routes": policy.routes.select_related("product").order_by("product__slug", "name"),
        "policy_form": extra.pop("policy_form", None)
        or PolicyForm(initial={"name": policy.name, "description": policy.description, "enabled": policy.enabled}),
        "rule_form": extra.pop("rule_form", None) or RuleForm(),
        "attach_form": extra.pop("attach_form", None) or AttachForm(),
        "test_form": extra.pop("test_form", None) or PolicyTestForm(),
        **extra,
    }


def _respond(
    request: HttpRequest, policy: GuardrailPolicy, partial: str, *, status: int = 200, notice: str = "", **extra: Any
) -> HttpResponse:
    """The partial for htmx, else the page (after a success, a redirect to it)."""
    if status == 200 and not getattr(request, "htmx", None):
        if notice:
            messages.success(request, notice)
        return redirect(request, reverse("console_guardrail", args=[policy.pk]))
    return render_page_or_partial(request, PAGE, partial, _context(policy, notice=notice, **extra), status=status)


@staff_required
def guardrail_detail(request: HttpRequest, policy_id: int) -> HttpResponse:
    """The policy; POST saves its name, description and whether it is enabled."""
    policy = _policy_get(policy_id)
    if request.method != "POST":
        return render(request, PAGE, _context(policy))
    form = PolicyForm(request.POST)
    if form.is_valid():
        try:
            services.guardrail_policy_update(actor=request_user(request), policy=policy, **form.cleaned_data)
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, "Saved the policy.")
            return redirect(request, reverse("console_guardrail", args=[policy.pk]))
    policy.refresh_from_db()
    return render_page_or_partial(
        request, PAGE, "gateway_sync/_policy_form.html", _context(policy, policy_form=form), status=400
    )


@staff_required
@require_POST
def guardrail_delete(request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = _policy_get(policy_id)
    if request.POST.get("confirm_name") != policy.name:
        messages.error(request, f"Type {policy.name} to confirm the deletion.")
        return redirect(request, reverse("console_guardrail", args=[policy.pk]))
    services.guardrail_policy_delete(actor=request_user(request), policy=policy)
    messages.success(request, f"Deleted the policy {policy.name}.")
    return redirect(request, reverse("console_guardrails"))


# --- Rules -----------------------------------------------------------------------------

RULES = "gateway_sync/_rules.html"


@staff_required
@require_POST
def rule_add(request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = _policy_get(policy_id)
    form = RuleForm(request.POST)
    if form.is_valid():
        try:
            services.guardrail_rule_add(actor=request_user(request), policy=policy, **form.cleaned_data)
        except ValidationError as error:
            form.add_service_error(error)
    if form.errors:
        return _respond(request, policy, RULES, status=400, rule_form=form)
    return _respond(request, policy, RULES, notice="Added the rule.")


def _rule_get(policy: GuardrailPolicy, rule_id: int) -> GuardrailRule:
    return get_object_or_404(GuardrailRule.objects.select_related("policy"), pk=rule_id, policy=policy)


@staff_required
@require_POST
def rule_update(request: HttpRequest, policy_id: int, rule_id: int) -> HttpResponse:
    policy = _policy_get(policy_id)
    rule = _rule_get(policy, rule_id)
    form = RuleForm(request.POST, rule=rule)
    if form.is_valid():
        try:
            services.guardrail_rule_update(actor=request_user(request), rule=rule, **form.cleaned_data)
        except ValidationError as error:
            form.add_service_error(error)
    if form.errors:
        return _respond(request, policy, RULES, status=400, rule_forms={rule.pk: form})
    return _respond(request, policy, RULES, notice="Saved the rule.")


@staff_required
@require_POST
def rule_remove(request: HttpRequest, policy_id: int, rule_id: int) -> HttpResponse:
    policy = _policy_get(policy_id)
    services.guardrail_rule_remove(actor=request_user(request), rule=_rule_get(policy, rule_id))
    return _respond(request, policy, RULES, notice="Removed the rule.")


# --- Attachments -----------------------------------------------------------------------

ATTACHMENTS = "gateway_sync/_attachments.html"


@staff_required
@require_POST
def guardrail_attach(request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = _policy_get(policy_id)
    form = AttachForm(request.POST)
    if form.is_valid():
        try:
            target = form.resolved()
            services.guardrail_policy_attach(actor=request_user(request), policy=policy, **target)  # type: ignore[arg-type]
        except ValidationError as error:
            form.add_error("target", error.messages)
    if form.errors:
        return _respond(request, policy, ATTACHMENTS, status=400, attach_form=form)
    return _respond(request, policy, ATTACHMENTS, notice=f"Attached to {next(iter(target.values()))}.")


@staff_required
@require_POST
def guardrail_detach(request: HttpRequest, policy_id: int) -> HttpResponse:
    policy = _policy_get(policy_id)
    form = DetachForm(request.POST)
    if not form.is_valid():
        return _respond(request, policy, ATTACHMENTS, status=400, attachments_error="Choose what to detach.")
    try:
        target = form.resolved()
    except ValidationError as error:
        return _respond(request, policy, ATTACHMENTS, status=400, attachments_error=" ".join(error.messages))
    services.guardrail_policy_detach(actor=request_user(request), policy=policy, **target)  # type: ignore[arg-type]
    return _respond(request, policy, ATTACHMENTS, notice=f"Detached from {next(iter(target.values()))}.")


# --- Trying the policy -----------------------------------------------------------------


@staff_required
@require_POST
def guardrail_test(request: HttpRequest, policy_id: int) -> HttpResponse:
    """Run the policy's rules on a pasted text and show what the gateway would do. Stores
    nothing, so it answers the same for htmx and plain forms: the result in the page."""
    policy = _policy_get(policy_id)
    form = PolicyTestForm(request.POST)
    verdict = None
    if form.is_valid():
        try:
            verdict = services.guardrail_policy_test(actor=request_user(request), policy=policy, **form.cleaned_data)
        except ValidationError as error:
            form.add_error("text", error)
    context = _context(policy, test_form=form, verdict=verdict)
    return render_page_or_partial(
        request, PAGE, "gateway_sync/_policy_test.html", context, status=400 if form.errors else 200
    )
