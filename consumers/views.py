"""The consumer area: the current organization's apps, their keys and subscriptions, and
subscribing from the catalog. Thin: parse a form, call a service, render; the rules live
in services and selectors."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.auth import request_user
from accounts.models import Membership, Organization, Role
from accounts.selectors import membership_of
from config.htmx import redirect, render_page_or_partial
from consumers import selectors, selectors_usage, services
from consumers.forms import KEY_QUOTA_NOTE, AppForm, KeyForm, KeyLimitsForm, RotateForm, SubscribeForm
from consumers.models import ApiKey, ConsumerApp, Subscription
from marketplace import selectors as catalog
from marketplace.models import Product
from marketplace.snippets import product_snippets


def _current_membership(request: HttpRequest) -> Membership | None:
    membership = getattr(request, "membership", None)
    # ``request.membership`` is a lazy object: test its truth, not its identity.
    return membership if membership else None


def _apps_with_counts(organization: Organization) -> QuerySet[ConsumerApp]:
    now = timezone.now()
    usable = Q(keys__revoked_at__isnull=True) & (Q(keys__expires_at__isnull=True) | Q(keys__expires_at__gt=now))
    open_subscriptions = Q(subscriptions__status__in=Subscription.OPEN_STATUSES)
    return selectors.apps_of(organization).annotate(
        key_count=Count("keys", filter=usable, distinct=True),
        subscription_count=Count("subscriptions", filter=open_subscriptions, distinct=True),
    )


@login_required
def consumer_home(request: HttpRequest) -> HttpResponse:
    """The current organization's apps, and a form to create one."""
    membership = _current_membership(request)
    form = AppForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if membership is None:
            messages.info(request, "Create an organization first: apps belong to one.")
            return redirect(request, reverse("organization_list"))
        if form.is_valid():
            try:
                app = services.app_create(
                    actor=request_user(request), organization=membership.organization, **form.cleaned_data
                )
            except ValidationError as error:
                form.add_service_error(error)
            else:
                messages.success(request, f"Created {app.name}. Create a key for it, then subscribe to products.")
                return redirect(request, reverse("consumer_app", args=[app.pk]))
    apps = _apps_with_counts(membership.organization) if membership else ConsumerApp.objects.none()
    return render_page_or_partial(
        request,
        "consumers/consumer_home.html",
        "consumers/_app_form.html",
        {"apps": apps, "form": form},
        status=400 if form.errors else 200,
    )


# --- One app: settings, keys, subscriptions -----------------------------------------------


# The app page holds the app's form and the key form: distinct ids for their fields.
APP_FORM_IDS = "app_%s"


def _subscribed_products(app: ConsumerApp) -> QuerySet[Product]:
    """The products a key of ``app`` may be limited to: those with an open subscription."""
    return Product.objects.filter(
        subscriptions__app=app, subscriptions__status__in=Subscription.OPEN_STATUSES
    ).distinct()


def _connect_snippets(subscription: Subscription) -> list[Any]:
    """Snippets with the placeholder key: the real one is shown once, and never here."""
    version = subscription.plan.version or catalog.latest_live_version(subscription.product)
    return product_snippets(subscription.product, version)


def _key_rows(keys: QuerySet[ApiKey], refused: KeyLimitsForm | None, refused_key_id: int | None) -> list[Any]:
    """Each key with the form of its quotas: the refused one as it was sent (with its
    errors), the others as they are."""
    return [
        (key, refused if refused is not None and key.pk == refused_key_id else KeyLimitsForm.for_key(key))
        for key in keys
    ]


def _app_context(request: HttpRequest, app: ConsumerApp, **extra: Any) -> dict[str, Any]:
    """The app page's context; ``extra`` adds to it (``limits_form`` and ``limits_key_id``:
    a key's refused quotas form, shown open in its row)."""
    limits_form: KeyLimitsForm | None = extra.pop("limits_form", None)
    limits_key_id: int | None = extra.pop("limits_key_id", None)
    membership = membership_of(request_user(request), app.organization)
    subscriptions = selectors.subscriptions_of(app).select_related("plan__version")
    keys = selectors.keys_of(app)
    return {
        "app": app,
        "can_edit": membership is not None,
        "can_admin": membership is not None and membership.has_role(Role.ADMIN),
        "app_form": AppForm(
            initial={"name": app.name, "description": app.description, "environment": app.environment},
            auto_id=APP_FORM_IDS,
        ),
        "key_form": KeyForm(products=_subscribed_products(app)),
        "rotate_form": RotateForm(),
        "keys": keys,
        # Called by the template only when it shows the keys (a callable stays lazy).
        "key_rows": partial(_key_rows, keys, limits_form, limits_key_id),
        "limits_key_id": limits_key_id,
        "key_quota_note": KEY_QUOTA_NOTE,
        "usage": selectors_usage.app_usage(request_user(request), app),
        "open_statuses": Subscription.OPEN_STATUSES,
        "subscription_rows": [
            {"subscription": s, "snippets": _connect_snippets(s) if s.status == Subscription.Status.APPROVED else []}
            for s in subscriptions
        ],
        **extra,
    }


def _app_of(request: HttpRequest, app_id: int) -> ConsumerApp:
    return selectors.app_get_for_user(request_user(request), app_id)


@login_required
def app_detail(request: HttpRequest, app_id: int) -> HttpResponse:
    app = _app_of(request, app_id)
    return render(request, "consumers/app_detail.html", _app_context(request, app))


@login_required
@require_POST
def app_edit(request: HttpRequest, app_id: int) -> HttpResponse:
    app = _app_of(request, app_id)
    form = AppForm(request.POST, auto_id=APP_FORM_IDS)
    if form.is_valid():
        try:
            services.app_update(actor=request_user(request), app=app, **form.cleaned_data)
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, "Saved.")
            return redirect(request, reverse("consumer_app", args=[app.pk]))
    app.refresh_from_db()
    context = _app_context(request, app, app_form=form)
    return render_page_or_partial(
        request, "consumers/app_detail.html", "consumers/_app_settings.html", context, status=400
    )


@login_required
@require_POST
def app_delete(request: HttpRequest, app_id: int) -> HttpResponse:
    app = _app_of(request, app_id)
    if request.POST.get("confirm_name", "").strip() != app.name:
        context = _app_context(request, app, delete_error=f"Type {app.name} to confirm the deletion.")
        return render(request, "consumers/app_detail.html", context, status=400)
    name = app.name
    services.app_delete(actor=request_user(request), app=app)
    messages.success(request, f"Deleted {name}: its keys no longer work and its subscriptions ended.")
    return redirect(request, reverse("consumer_home"))


def _keys_response(request: HttpRequest, app: ConsumerApp, status: int = 200, **extra: Any) -> HttpResponse:
    context = _app_context(request, app, **extra)
    return render_page_or_partial(request, "consumers/app_detail.html", "consumers/_keys.html", context, status=status)


@login_required
@require_POST
def key_create(request: HttpRequest, app_id: int) -> HttpResponse:
    app = _app_of(request, app_id)
    form = KeyForm(request.POST, products=_subscribed_products(app))
    if form.is_valid():
        try:
            key, plaintext = services.api_key_create(actor=request_user(request), app=app, **form.service_kwargs())
        except ValidationError as error:
            form.add_service_error(error)
        else:
            return _keys_response(request, app, status=201, new_key={"key": key, "plaintext": plaintext})
    return _keys_response(request, app, status=400, key_form=form)


@login_required
@require_POST
def key_rotate(request: HttpRequest, app_id: int, key_id: int) -> HttpResponse:
    app = _app_of(request, app_id)
    key = selectors.key_get(app, key_id)
    form = RotateForm(request.POST)
    if not form.is_valid():
        return _keys_response(request, app, status=400, keys_error="Choose how long the old key keeps working.")
    try:
        new, plaintext = services.api_key_rotate(actor=request_user(request), key=key, overlap=form.overlap_delta())
    except ValidationError as error:
        return _keys_response(request, app, status=400, keys_error=" ".join(error.messages))
    old = ApiKey.objects.get(pk=key.pk)
    return _keys_response(request, app, status=201, new_key={"key": new, "plaintext": plaintext, "replaces": old})


@login_required
@require_POST
def key_limits(request: HttpRequest, app_id: int, key_id: int) -> HttpResponse:
    """Set a key's quotas; a refusal shows the key's form again, open, with its errors."""
    app = _app_of(request, app_id)
    key = selectors.key_get(app, key_id)
    form = KeyLimitsForm.for_key(key, request.POST)
    if form.is_valid():
        try:
            key = services.api_key_limits_update(actor=request_user(request), key=key, **form.service_kwargs())
        except ValidationError as error:
            if not hasattr(error, "error_dict"):  # about the key (revoked, expired): no form to show it on
                return _keys_response(request, app, status=400, keys_error=" ".join(error.messages))
            form.add_service_error(error)
        else:
            return _keys_response(request, app, keys_message=f"Saved the quotas of {key.name} ({key.prefix}…).")
    return _keys_response(request, app, status=400, limits_form=form, limits_key_id=key.pk)


@login_required
@require_POST
def key_revoke(request: HttpRequest, app_id: int, key_id: int) -> HttpResponse:
    app = _app_of(request, app_id)
    key = services.api_key_revoke(actor=request_user(request), key=selectors.key_get(app, key_id))
    return _keys_response(request, app, keys_message=f"Revoked {key.name} ({key.prefix}…). It no longer works.")


@login_required
@require_POST
def subscription_cancel(request: HttpRequest, app_id: int, subscription_id: int) -> HttpResponse:
    app = _app_of(request, app_id)
    subscription = selectors.subscriptions_of(app).filter(pk=subscription_id).first()
    if subscription is None:
        raise Http404("No such subscription")
    status, extra = 200, {}
    try:
        services.subscription_cancel(actor=request_user(request), subscription=subscription)
    except ValidationError as error:
        status, extra = 400, {"subscriptions_error": " ".join(error.messages)}
    context = _app_context(request, app, **extra)
    return render_page_or_partial(
        request, "consumers/app_detail.html", "consumers/_subscriptions.html", context, status=status
    )


# --- Subscribing from the catalog -----------------------------------------------------------


def _subscribe_context(request: HttpRequest, product: Product, form: SubscribeForm | None) -> dict[str, Any]:
    return {"product": product, "plans": selectors.plans_of(product), "subscribe_form": form}


@login_required
def subscribe(request: HttpRequest, slug: str) -> HttpResponse:
    """Subscribe one of the current organization's apps to a catalog product. The panel
    also sits on the product's catalog page; this page serves it on its own and answers
    its errors."""
    product = catalog.catalog_product_get(request_user(request), slug)
    membership = _current_membership(request)
    apps = selectors.apps_of(membership.organization) if membership else ConsumerApp.objects.none()
    data = request.POST if request.method == "POST" else None
    form = SubscribeForm(data, apps=apps, plans=selectors.plans_of(product))
    if request.method == "POST" and form.is_valid():
        app = form.cleaned_data["app"]
        try:
            subscription = services.subscription_request(
                actor=request_user(request), app=app, product=product, plan=form.cleaned_data["plan"]
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            if subscription.status == Subscription.Status.APPROVED:
                messages.success(request, f"{app.name} is subscribed to {product.name}: approved, ready to call.")
            else:
                messages.info(
                    request,
                    f"{app.name} asked to subscribe to {product.name}, waiting for the provider's approval. "
                    "You will get an email when they decide.",
                )
            return redirect(request, reverse("consumer_app", args=[app.pk]))
    context = _subscribe_context(request, product, form if request.method == "POST" else None)
    return render_page_or_partial(
        request,
        "consumers/subscribe.html",
        "consumers/_subscribe_panel.html",
        context,
        status=400 if form.errors else 200,
    )
