"""The provider's side of consumers, under /provider/: deciding on subscriptions to the
provider's products, and managing each product's plans. Thin: parse a form, call a
service, render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.auth import request_user
from accounts.models import Membership, Role, User
from accounts.selectors import user_has_role
from config.htmx import redirect
from consumers import selectors, services
from consumers.forms import DecisionForm, PlanForm
from consumers.models import Plan, Subscription
from marketplace import selectors as marketplace_selectors
from marketplace.models import Product

# --- Subscriptions to the provider's products ----------------------------------------------

STATUS_TABS = [*Subscription.Status.choices, ("all", "All")]
TAB_VALUES = {value for value, _label in STATUS_TABS}
LIST_LIMIT = 200

Decision = Callable[..., Subscription]
DECISIONS: dict[str, tuple[Decision, str]] = {
    "approve": (services.subscription_approve, "Approved: the consumer's keys now work with the product."),
    "reject": (services.subscription_reject, "Rejected: the consumer was told why."),
    "suspend": (services.subscription_suspend, "Suspended: the consumer's keys stop working with the product."),
    "resume": (services.subscription_resume, "Resumed: the consumer's keys work again."),
}


def _tab(value: str | None) -> str:
    return value if value in TAB_VALUES else Subscription.Status.PENDING


def _subscriptions_context(user: User, tab: str, **extra: Any) -> dict[str, Any]:
    subscriptions = selectors.provider_subscriptions(user, status="" if tab == "all" else tab).select_related(
        "requested_by", "decided_by"
    )
    manages = user.is_staff or Membership.objects.filter(user=user, role__in=[Role.OWNER, Role.ADMIN]).exists()
    return {
        "subscriptions": subscriptions[:LIST_LIMIT],
        "tab": tab,
        "tabs": STATUS_TABS,
        "manages": manages,
        **extra,
    }


@login_required
def provider_subscriptions(request: HttpRequest) -> HttpResponse:
    """Subscriptions to products of the organizations the user administers (every one,
    for staff), by status: pending ones first, as they wait for a decision."""
    context = _subscriptions_context(request_user(request), _tab(request.GET.get("status")))
    return render(request, "consumers/provider_subscriptions.html", context)


@login_required
@require_POST
def provider_subscription_decide(request: HttpRequest, subscription_id: int, action: str) -> HttpResponse:
    if action not in DECISIONS:
        raise Http404("No such action")
    user = request_user(request)
    subscription = selectors.subscription_get_for_user(user, subscription_id)
    decide, done = DECISIONS[action]
    form = DecisionForm(request.POST)
    if form.is_valid():
        try:
            subscription = decide(actor=user, subscription=subscription, note=form.cleaned_data["note"])
        except ValidationError as error:
            form.add_service_error(error)
    tab = _tab(request.POST.get("tab"))
    htmx = getattr(request, "htmx", None)
    if form.errors:
        subscription.refresh_from_db()
        problem = " ".join(str(m) for field_errors in form.errors.values() for m in field_errors)
        row = {"subscription": subscription, "row_error": problem, "error_for": subscription.pk}
        if htmx:
            return render(request, "consumers/_provider_subscription_row.html", {**row, "tab": tab}, status=400)
        context = _subscriptions_context(user, tab, **row)
        return render(request, "consumers/provider_subscriptions.html", context, status=400)
    if htmx:
        context = {"subscription": subscription, "row_message": done, "tab": tab}
        return render(request, "consumers/_provider_subscription_row.html", context)
    messages.success(request, f"{subscription.app.name} → {subscription.product.name}: {done}")
    return redirect(request, f"{reverse('provider_subscriptions')}?status={tab}")


# --- A product's plans -----------------------------------------------------------------------


def _can_manage(user: User, product: Product) -> bool:
    return user_has_role(user, product.organization, Role.ADMIN)


def _require_manager(user: User, product: Product) -> None:
    if not _can_manage(user, product):
        raise PermissionDenied(f"Plans are managed by {product.organization.name}'s admins and owners.")


def _plans_url(product: Product) -> str:
    return reverse("provider_plans", args=[product.slug])


def _plans_context(request: HttpRequest, product: Product, **extra: Any) -> dict[str, Any]:
    can_manage = _can_manage(request_user(request), product)
    subscribers = Count("subscriptions", filter=Q(subscriptions__status__in=Subscription.OPEN_STATUSES))
    plans = selectors.plans_of(product, active_only=False).select_related("version").annotate(subscribers=subscribers)
    return {
        "product": product,
        "plans": plans.order_by("-is_active", "-is_default", "name"),
        "can_manage": can_manage,
        "form": PlanForm(product=product) if can_manage else None,
        **extra,
    }


@login_required
def plan_list(request: HttpRequest, slug: str) -> HttpResponse:
    """The product's plans; its admins and owners also create plans here."""
    user = request_user(request)
    product = marketplace_selectors.provider_product_get(user, slug)
    if request.method != "POST":
        return render(request, "consumers/plan_list.html", _plans_context(request, product))
    _require_manager(user, product)
    form = PlanForm(request.POST, product=product)
    if form.is_valid():
        try:
            plan = services.plan_create(actor=user, product=product, **form.service_kwargs())
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, f"Created the {plan.name} plan.")
            return redirect(request, _plans_url(product))
    return render(request, "consumers/plan_list.html", _plans_context(request, product, form=form), status=400)


def _plan_of(product: Product, plan_id: int) -> Plan:
    plans = Plan.objects.select_related("product__organization", "version")
    return get_object_or_404(plans, pk=plan_id, product=product)


@login_required
def plan_edit(request: HttpRequest, slug: str, plan_id: int) -> HttpResponse:
    user = request_user(request)
    product = marketplace_selectors.provider_product_get(user, slug)
    plan = _plan_of(product, plan_id)
    _require_manager(user, product)
    data = request.POST if request.method == "POST" else None
    form = PlanForm(data, product=product, initial=PlanForm.initial_for(plan))
    if request.method == "POST" and form.is_valid():
        try:
            services.plan_update(actor=user, plan=plan, **form.service_kwargs())
        except ValidationError as error:
            form.add_service_error(error)
            plan = _plan_of(product, plan_id)  # the failed update left the object changed
        else:
            messages.success(request, f"Saved the {plan.name} plan. Its subscribers get the new limits at once.")
            return redirect(request, _plans_url(product))
    context = {"product": product, "plan": plan, "form": form}
    return render(request, "consumers/plan_form.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def plan_archive(request: HttpRequest, slug: str, plan_id: int) -> HttpResponse:
    user = request_user(request)
    product = marketplace_selectors.provider_product_get(user, slug)
    plan = _plan_of(product, plan_id)
    try:
        services.plan_archive(actor=user, plan=plan)
    except ValidationError as error:
        context = _plans_context(request, product, plans_error=" ".join(error.messages))
        return render(request, "consumers/plan_list.html", context, status=400)
    messages.success(request, f"Archived the {plan.name} plan: it takes no new subscriptions; current ones keep it.")
    return redirect(request, _plans_url(product))
