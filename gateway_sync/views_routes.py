"""Console pages of routes: the list, and each route with its targets and canary
(platform staff). Thin: parse a form, call a service, render. Target and canary actions
answer htmx with the "traffic" panel, and plain forms with the whole page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.auth import request_user
from accounts.decorators import staff_required
from config.htmx import redirect, render_page_or_partial
from gateway_sync import services_routes as services
from gateway_sync.forms_routes import (
    CanaryStartForm,
    CanaryWeightForm,
    RouteCreateForm,
    RouteSettingsForm,
    TargetEditForm,
    TargetForm,
    TargetWeightForm,
)
from gateway_sync.models_routes import Canary, CanaryEvent, Route, RouteTarget
from marketplace.models import Product

PAGE = "gateway_sync/route_detail.html"
TRAFFIC = "gateway_sync/_traffic.html"
HISTORY_SHOWN = 50


def _routes(product_slug: str) -> QuerySet[Route]:
    routes = (
        Route.objects.select_related("product", "canary__target")
        .annotate(target_count=Count("targets"))
        .order_by("product__name", "-priority", "name")
    )
    return routes.filter(product__slug=product_slug) if product_slug else routes


@staff_required
def route_list(request: HttpRequest) -> HttpResponse:
    product_slug = request.GET.get("product", "")
    form = RouteCreateForm(request.POST or None, initial={"product": product_slug} if product_slug else None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            route = services.route_create(actor=request_user(request), **data)
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, f"Created the route {route.name}. Add its targets.")
            return redirect(request, reverse("console_route", args=[route.pk]))
    context = {
        "routes": _routes(product_slug),
        "products": Product.objects.order_by("name").only("slug", "name"),
        "product_slug": product_slug,
        "form": form,
    }
    return render_page_or_partial(
        request,
        "gateway_sync/route_list.html",
        "gateway_sync/_route_create_form.html",
        context,
        status=400 if form.errors else 200,
    )


def _route_get(route_id: int) -> Route:
    return get_object_or_404(Route.objects.select_related("product"), pk=route_id)


def _context(route: Route, **forms: Any) -> dict[str, Any]:
    """Everything the route page shows; ``forms`` replaces the blank ones (bound forms
    with errors)."""
    targets = list(route.targets.all())
    canary = Canary.objects.select_related("target").filter(route=route).first()
    edit_forms = forms.pop("edit_forms", {})
    return {
        "route": route,
        "targets": [(t, edit_forms.get(t.pk) or TargetEditForm(target=t)) for t in targets],
        "target_weight_total": sum(t.weight for t in targets),
        "canary": canary,
        "events": CanaryEvent.objects.filter(route=route).select_related("actor")[:HISTORY_SHOWN],
        "guardrails": route.guardrail_policies.order_by("name"),
        "settings_form": forms.pop("settings_form", None) or RouteSettingsForm(route=route),
        "target_form": forms.pop("target_form", None) or TargetForm(),
        "canary_form": forms.pop("canary_form", None) or CanaryStartForm(route=route),
        "canary_weight_form": forms.pop("canary_weight_form", None)
        or CanaryWeightForm(initial={"weight": canary.weight if canary else 0}),
        **forms,
    }


@staff_required
def route_detail(request: HttpRequest, route_id: int) -> HttpResponse:
    """The route; POST saves its settings (match, timeouts, retries, fallback, cooldown
    and limits)."""
    route = _route_get(route_id)
    if request.method != "POST":
        return render(request, PAGE, _context(route))
    form = RouteSettingsForm(request.POST, route=route)
    if form.is_valid():
        try:
            services.route_update(actor=request_user(request), route=route, **form.cleaned_data)
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, "Saved the route.")
            return redirect(request, reverse("console_route", args=[route.pk]))
    route.refresh_from_db()
    return render_page_or_partial(
        request, PAGE, "gateway_sync/_route_settings.html", _context(route, settings_form=form), status=400
    )


@staff_required
@require_POST
def route_delete(request: HttpRequest, route_id: int) -> HttpResponse:
    route = _route_get(route_id)
    if request.POST.get("confirm_name") != route.name:
        messages.error(request, f"Type {route.name} to confirm the deletion.")
        return redirect(request, reverse("console_route", args=[route.pk]))
    services.route_delete(actor=request_user(request), route=route)
    messages.success(request, f"Deleted the route {route.name}.")
    return redirect(request, reverse("console_routes"))


# --- The traffic panel: targets and canary ------------------------------------------------


def _has_errors(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_errors(v) for v in value.values())
    return bool(getattr(value, "errors", None))


def _traffic(
    request: HttpRequest,
    route: Route,
    *,
    notice: str = "",
    error: ValidationError | None = None,
    **forms: Any,
) -> HttpResponse:
    """The traffic panel for htmx, else the page (after a success, a redirect to it).
    ``notice`` says what succeeded; ``error`` is a refusal that belongs to no form."""
    status = 400 if error is not None or any(_has_errors(f) for f in forms.values()) else 200
    if error is not None:
        forms["traffic_error"] = " ".join(error.messages)
    if status == 200:
        if not getattr(request, "htmx", None):
            if notice:
                messages.success(request, notice)
            return redirect(request, reverse("console_route", args=[route.pk]))
        forms["traffic_notice"] = notice
    return render_page_or_partial(request, PAGE, TRAFFIC, _context(route, **forms), status=status)


def _apply(form: Any, call: Any) -> ValidationError | None:
    """Run ``call`` when the form is valid; its ValidationError goes onto the form."""
    if not form.is_valid():
        return None
    try:
        call()
    except ValidationError as error:
        form.add_service_error(error)
        return error
    return None


@staff_required
@require_POST
def target_add(request: HttpRequest, route_id: int) -> HttpResponse:
    route = _route_get(route_id)
    form = TargetForm(request.POST)
    _apply(form, lambda: services.target_add(actor=request_user(request), route=route, **form.cleaned_data))
    if form.errors:
        return _traffic(request, route, target_form=form)
    return _traffic(request, route, notice=f"Added the target {form.cleaned_data['name']}.")


def _target_get(route: Route, target_id: int) -> RouteTarget:
    return get_object_or_404(RouteTarget.objects.select_related("route__product"), pk=target_id, route=route)


@staff_required
@require_POST
def target_update(request: HttpRequest, route_id: int, target_id: int) -> HttpResponse:
    """The whole target (from its edit form), or only its weight (from the table)."""
    route = _route_get(route_id)
    target = _target_get(route, target_id)
    user = request_user(request)
    if "name" not in request.POST:
        weight_form = TargetWeightForm(request.POST)
        error = _apply(
            weight_form, lambda: services.target_update(actor=user, target=target, **weight_form.cleaned_data)
        )
        if weight_form.errors and error is None:
            error = ValidationError(f"{target.name}: {' '.join(map(str, weight_form.errors['weight']))}")
        elif error is not None:
            error = ValidationError(f"{target.name}: {' '.join(error.messages)}")
        return _traffic(request, route, error=error, notice=f"Set the weight of {target.name}.")
    form = TargetEditForm(request.POST, target=target)

    def save() -> None:
        data = {k: v for k, v in form.cleaned_data.items() if k not in {"secret", "clear_secret"}}
        services.target_update(actor=user, target=target, secret=form.secret_change(), **data)

    _apply(form, save)
    if form.errors:
        return _traffic(request, route, edit_forms={target.pk: form})
    return _traffic(request, route, notice=f"Saved the target {target.name}.")


@staff_required
@require_POST
def target_remove(request: HttpRequest, route_id: int, target_id: int) -> HttpResponse:
    route = _route_get(route_id)
    target = _target_get(route, target_id)
    try:
        services.target_remove(actor=request_user(request), target=target)
    except ValidationError as error:
        return _traffic(request, route, error=error)
    route.refresh_from_db()
    return _traffic(request, route, notice=f"Removed the target {target.name}.")


@staff_required
@require_POST
def canary_start(request: HttpRequest, route_id: int) -> HttpResponse:
    route = _route_get(route_id)
    form = CanaryStartForm(request.POST, route=route)

    def start() -> None:
        data = dict(form.cleaned_data)
        target = route.targets.get(pk=data.pop("target"))
        services.canary_start(
            actor=request_user(request), route=route, target=target, **{**data, "weight": data["weight"] or 0}
        )

    _apply(form, start)
    if form.errors:
        return _traffic(request, route, canary_form=form)
    return _traffic(request, route, notice="Started the canary.")


@staff_required
@require_POST
def canary_set_weight(request: HttpRequest, route_id: int) -> HttpResponse:
    route = _route_get(route_id)
    form = CanaryWeightForm(request.POST)
    user = request_user(request)
    _apply(form, lambda: services.canary_set_weight(actor=user, route=route, weight=form.cleaned_data["weight"]))
    if form.errors:
        return _traffic(request, route, canary_weight_form=form)
    return _traffic(request, route, notice=f"The canary takes {form.cleaned_data['weight']}% of requests.")


@staff_required
@require_POST
def canary_decide(request: HttpRequest, route_id: int, decision: str) -> HttpResponse:
    """One click: promote the canary, or roll it back."""
    route = _route_get(route_id)
    user = request_user(request)
    try:
        if decision == "promote":
            target = services.canary_promote(actor=user, route=route)
            notice = f"Promoted {target.name}: it now takes all the route's traffic."
        else:
            services.canary_rollback(actor=user, route=route)
            notice = "Rolled the canary back: its target takes no more traffic."
    except ValidationError as error:
        return _traffic(request, route, error=error)
    return _traffic(request, route, notice=notice)
