"""The provider area: products of the current organization and their versions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.auth import request_user
from config.htmx import redirect
from marketplace import selectors, services
from marketplace.forms import (
    DeprecateForm,
    DocumentForm,
    IconForm,
    ModelFormSet,
    ProductEditForm,
    ProductForm,
    RestToMcpForm,
    UpstreamForm,
    VersionForm,
)
from marketplace.models import Product, ProductVersion
from marketplace.services.review import missing_for_submission
from marketplace.snippets import product_snippets


def _version_url(version: ProductVersion) -> str:
    return reverse("provider_version", args=[version.product.slug, version.pk])


@login_required
def provider_home(request: HttpRequest) -> HttpResponse:
    membership = getattr(request, "membership", None)
    products = selectors.provider_products(membership.organization) if membership else Product.objects.none()
    return render(request, "marketplace/provider_home.html", {"products": products})


@login_required
def product_create(request: HttpRequest) -> HttpResponse:
    membership = getattr(request, "membership", None)
    if not membership:
        messages.info(request, "Create an organization first: products belong to one.")
        return redirect(request, reverse("organization_list"))
    form = ProductForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            product = services.product_create(
                actor=request_user(request), organization=membership.organization, **form.service_kwargs()
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            version = services.version_create(actor=request_user(request), product=product, version="1.0.0")
            messages.success(
                request, f"Created {product.name} with a draft version 1.0.0. Describe it, then submit it for review."
            )
            return redirect(request, _version_url(version))
    return render(request, "marketplace/product_form.html", {"form": form}, status=400 if form.errors else 200)


def _product_context(request: HttpRequest, product: Product, **extra: Any) -> dict[str, Any]:
    initial = {
        "name": product.name,
        "summary": product.summary,
        "description": product.description,
        "categories": list(product.categories.all()),
        "tags": ", ".join(product.tags),
        "visibility": product.visibility,
    }
    return {
        "product": product,
        "versions": product.versions.order_by("-created_at"),
        "edit_form": ProductEditForm(initial=initial),
        "icon_form": IconForm(),
        "version_form": VersionForm(product=product),
        **extra,
    }


@login_required
def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    product = selectors.provider_product_get(request_user(request), slug)
    if request.method == "POST":
        return _product_post(request, product)
    return render(request, "marketplace/product_detail.html", _product_context(request, product))


def _product_post(request: HttpRequest, product: Product) -> HttpResponse:
    user = request_user(request)
    action = request.POST.get("action")
    context: dict[str, Any] = {}
    try:
        if action == "edit":
            form: Any = ProductEditForm(request.POST)
            context["edit_form"] = form
            if form.is_valid():
                services.product_update(actor=user, product=product, **form.service_kwargs())
                messages.success(request, "Saved.")
                return redirect(request, request.path)
        elif action == "icon":
            form = IconForm(request.POST, request.FILES)
            context["icon_form"] = form
            if form.is_valid():
                services.product_set_icon(actor=user, product=product, data=form.cleaned_data["icon"].read())
                messages.success(request, "Icon updated.")
                return redirect(request, request.path)
        elif action == "version":
            form = VersionForm(request.POST, product=product)
            context["version_form"] = form
            if form.is_valid():
                version = services.version_create(
                    actor=user,
                    product=product,
                    version=form.cleaned_data["version"],
                    changelog=form.cleaned_data["changelog"],
                    copy_from=form.copy_source(),
                )
                messages.success(request, f"Created draft {version.version}.")
                return redirect(request, _version_url(version))
        elif action == "delete":
            services.product_delete(actor=user, product=product)
            messages.success(request, f"Deleted {product.name}.")
            return redirect(request, reverse("provider_home"))
        else:
            return HttpResponse("Unknown action.", status=400)
    except ValidationError as error:
        if "form" in locals() and hasattr(form, "add_service_error"):
            form.add_service_error(error)
        else:
            messages.error(request, " ".join(error.messages))
    return render(request, "marketplace/product_detail.html", _product_context(request, product, **context), status=400)


def _version_context(version: ProductVersion, **extra: Any) -> dict[str, Any]:
    models_initial = [
        {
            "public_name": m.public_name,
            "upstream_name": m.upstream_name,
            "context_window": m.context_window,
            "input_price_per_mtok": m.input_price_per_mtok,
            "output_price_per_mtok": m.output_price_per_mtok,
            "capabilities": m.capabilities,
        }
        for m in version.models.all()
    ]
    return {
        "version": version,
        "product": version.product,
        "missing": missing_for_submission(version) if version.is_editable else [],
        "upstream_form": UpstreamForm(version=version),
        "openapi_form": DocumentForm(prefix="openapi"),
        "card_form": DocumentForm(prefix="card"),
        "rest_to_mcp_form": RestToMcpForm(),
        "models_formset": ModelFormSet(initial=models_initial, prefix="models"),
        "deprecate_form": DeprecateForm(),
        "snippets": product_snippets(version.product, version),
        **extra,
    }


@login_required
def version_detail(request: HttpRequest, slug: str, version_id: int) -> HttpResponse:
    product = selectors.provider_product_get(request_user(request), slug)
    version = selectors.provider_version_get(product, version_id)
    return render(request, "marketplace/version_detail.html", _version_context(version))


# Each POST action of the version page: (form factory or None, service call). The service
# call gets the user, the version and the valid form; it returns a success message.
VersionAction = tuple[Callable[[HttpRequest, ProductVersion], Any] | None, str, Callable[..., str]]


def _upstream(user: Any, version: ProductVersion, form: UpstreamForm) -> str:
    services.version_update(actor=user, version=version, **form.service_kwargs())
    return "Upstream saved."


def _openapi(user: Any, version: ProductVersion, form: DocumentForm) -> str:
    text, url = form.text_and_url()
    services.version_set_openapi(actor=user, version=version, document=text, url=url)
    return f"OpenAPI document imported: {version.operations.count()} operations."


def _agent_card(user: Any, version: ProductVersion, form: DocumentForm) -> str:
    text, url = form.text_and_url()
    services.version_set_agent_card(actor=user, version=version, card=text, url=url)
    return "Agent card saved."


def _rest_to_mcp(user: Any, version: ProductVersion, form: RestToMcpForm) -> str:
    source, document = form.cleaned_data["source"], form.cleaned_data["document"]
    if source == "definition":
        try:
            definition = json.loads(document)
        except json.JSONDecodeError as error:
            raise ValidationError({"document": f"Not valid JSON: {error.msg} at line {error.lineno}."}) from None
        services.version_set_rest_to_mcp(actor=user, version=version, definition=definition)
    elif source == "higress_yaml":
        services.version_set_rest_to_mcp(actor=user, version=version, higress_yaml=document)
    else:
        services.version_set_rest_to_mcp(actor=user, version=version, from_openapi=document)
    return f"REST-to-MCP tools defined: {version.tools.count()}."


def _models(user: Any, version: ProductVersion, formset: Any) -> str:
    rows = [f.cleaned_data for f in formset.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
    services.version_set_models(actor=user, version=version, models=rows)
    return f"{len(rows)} model(s) saved."


def _deprecate(user: Any, version: ProductVersion, form: DeprecateForm) -> str:
    services.version_deprecate(actor=user, version=version, sunset_at=form.cleaned_data["sunset_at"])
    return "Deprecated. Subscribers keep access until the sunset date."


def _then(_result: object, message: str) -> str:
    return message


VERSION_ACTIONS: dict[str, VersionAction] = {
    "upstream": (lambda r, v: UpstreamForm(r.POST, version=v), "upstream_form", _upstream),
    "openapi": (lambda r, v: DocumentForm(r.POST, r.FILES, prefix="openapi"), "openapi_form", _openapi),
    "agent_card": (lambda r, v: DocumentForm(r.POST, r.FILES, prefix="card"), "card_form", _agent_card),
    "rest_to_mcp": (lambda r, v: RestToMcpForm(r.POST), "rest_to_mcp_form", _rest_to_mcp),
    "models": (lambda r, v: ModelFormSet(r.POST, prefix="models"), "models_formset", _models),
    "deprecate": (lambda r, v: DeprecateForm(r.POST), "deprecate_form", _deprecate),
    "discover": (
        None,
        "",
        lambda u, v, f: f"Discovered {services.version_discover_mcp(actor=u, version=v).tools.count()} tools.",
    ),
    "submit": (None, "", lambda u, v, f: _then(services.version_submit(actor=u, version=v), "Submitted for review.")),
    "withdraw": (None, "", lambda u, v, f: _then(services.version_withdraw(actor=u, version=v), "Back to draft.")),
    "retire": (None, "", lambda u, v, f: _then(services.version_retire(actor=u, version=v), "Retired.")),
}


@login_required
@require_POST
def version_action(request: HttpRequest, slug: str, version_id: int, action: str) -> HttpResponse:
    user = request_user(request)
    product = selectors.provider_product_get(user, slug)
    version = selectors.provider_version_get(product, version_id)
    if action == "delete":
        services.version_delete(actor=user, version=version)
        messages.success(request, f"Deleted draft {version.version}.")
        return redirect(request, reverse("provider_product", args=[product.slug]))
    if action not in VERSION_ACTIONS:
        return HttpResponse("Unknown action.", status=404)
    make_form, context_name, call = VERSION_ACTIONS[action]
    form = make_form(request, version) if make_form else None
    extra: dict[str, Any] = {context_name: form} if form is not None else {}
    if form is None or form.is_valid():
        try:
            messages.success(request, call(user, version, form))
            return redirect(request, _version_url(version))
        except ValidationError as error:
            if form is not None and hasattr(form, "add_service_error"):
                form.add_service_error(error)
            # Also at the top: the form may be hidden (a published version) or far down.
            extra["action_error"] = " ".join(error.messages)
        except PermissionDenied as error:
            extra["action_error"] = str(error)
    version.refresh_from_db()
    return render(request, "marketplace/version_detail.html", _version_context(version, **extra), status=400)
