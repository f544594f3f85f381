"""Pages for organizations, members, invitations and API tokens. Thin: they parse the
form, call a service and render; every rule lives in services and selectors."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.auth import request_user as _user
from accounts.forms import ApiTokenForm, InvitationForm, OrganizationForm, OrganizationRenameForm, RoleForm
from accounts.middleware import SESSION_KEY
from accounts.models import Invitation, Membership, Organization, Role
from config.htmx import redirect, render_page_or_partial


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return render(request, "home/landing.html")
    user = _user(request)
    memberships = Membership.objects.filter(user=user).select_related("organization")
    return render(request, "home/dashboard.html", {"memberships": memberships})


# --- Organizations -------------------------------------------------------------------


@login_required
def organization_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = services.organization_create(
                actor=user, name=form.cleaned_data["name"], slug=form.cleaned_data["slug"]
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            request.session[SESSION_KEY] = organization.pk
            messages.success(request, f"Created {organization.name}. You are its owner.")
            return redirect(request, reverse("organization_detail", args=[organization.slug]))
    memberships = Membership.objects.filter(user=user).select_related("organization")
    status = 400 if form.errors else 200
    return render_page_or_partial(
        request,
        "accounts/organization_list.html",
        "accounts/_organization_form.html",
        {"memberships": memberships, "form": form},
        status=status,
    )


def _organization_context(request: HttpRequest, organization: Organization, **extra: Any) -> dict[str, Any]:
    user = _user(request)
    membership = selectors.membership_of(user, organization)
    can_manage = membership is not None and membership.has_role(Role.ADMIN)
    return {
        "organization": organization,
        "membership": membership,
        "can_manage": can_manage,
        "is_owner": membership is not None and membership.has_role(Role.OWNER),
        "members": selectors.members_of(organization),
        "invitations": selectors.pending_invitations_of(organization) if can_manage else [],
        "invitation_form": InvitationForm(),
        "rename_form": OrganizationRenameForm(initial={"name": organization.name}),
        "roles": Role.choices,
        **extra,
    }


@login_required
def organization_detail(request: HttpRequest, slug: str) -> HttpResponse:
    organization = selectors.organization_get_for_user(_user(request), slug)
    return render(request, "accounts/organization_detail.html", _organization_context(request, organization))


@login_required
@require_POST
def organization_rename(request: HttpRequest, slug: str) -> HttpResponse:
    organization = selectors.organization_get_for_user(_user(request), slug)
    form = OrganizationRenameForm(request.POST)
    if form.is_valid():
        try:
            services.organization_update(
                actor=_user(request), organization=organization, name=form.cleaned_data["name"]
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, "Saved.")
            return redirect(request, reverse("organization_detail", args=[organization.slug]))
    organization.refresh_from_db()
    context = _organization_context(request, organization, rename_form=form)
    return render(request, "accounts/organization_detail.html", context, status=400)


@login_required
@require_POST
def organization_delete(request: HttpRequest, slug: str) -> HttpResponse:
    organization = selectors.organization_get_for_user(_user(request), slug)
    if request.POST.get("confirm_slug") != organization.slug:
        messages.error(request, f"Type {organization.slug} to confirm the deletion.")
        return redirect(request, reverse("organization_detail", args=[organization.slug]))
    name = organization.name
    services.organization_delete(actor=_user(request), organization=organization)
    messages.success(request, f"Deleted {name}.")
    return redirect(request, reverse("organization_list"))


@login_required
@require_POST
def organization_switch(request: HttpRequest) -> HttpResponse:
    membership = Membership.objects.filter(
        user=_user(request), organization__slug=request.POST.get("organization", "")
    ).first()
    if membership is None:
        raise PermissionDenied("You are not a member of that organization.")
    request.session[SESSION_KEY] = membership.organization_id
    next_url = request.POST.get("next") or reverse("home")
    if not next_url.startswith("/") or next_url.startswith("//"):
        next_url = reverse("home")
    return redirect(request, next_url)


# --- Members and invitations -----------------------------------------------------------


def _members_partial(request: HttpRequest, organization: Organization, status: int = 200, **extra: Any) -> HttpResponse:
    context = _organization_context(request, organization, **extra)
    return render_page_or_partial(
        request, "accounts/organization_detail.html", "accounts/_members.html", context, status=status
    )


@login_required
@require_POST
def membership_role(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    organization = selectors.organization_get_for_user(_user(request), slug)
    membership = get_object_or_404(Membership, pk=membership_id, organization=organization)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _members_partial(request, organization, status=400, members_error="Choose a valid role.")
    try:
        services.membership_change_role(actor=_user(request), membership=membership, role=form.cleaned_data["role"])
    except ValidationError as error:
        return _members_partial(request, organization, status=400, members_error=" ".join(error.messages))
    return _members_partial(request, organization)


@login_required
@require_POST
def membership_remove(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    organization = selectors.organization_get_for_user(_user(request), slug)
    membership = get_object_or_404(Membership, pk=membership_id, organization=organization)
    leaving = membership.user_id == request.user.pk
    try:
        services.membership_remove(actor=_user(request), membership=membership)
    except ValidationError as error:
        return _members_partial(request, organization, status=400, members_error=" ".join(error.messages))
    if leaving:
        messages.success(request, f"You left {organization.name}.")
        return redirect(request, reverse("organization_list"))
    return _members_partial(request, organization)


@login_required
@require_POST
def invitation_create(request: HttpRequest, slug: str) -> HttpResponse:
    organization = selectors.organization_get_for_user(_user(request), slug)
    form = InvitationForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            invitation, _token = services.invitation_create(
                actor=_user(request),
                organization=organization,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            status = 200
            messages.success(request, f"Invitation sent to {invitation.email}.")
            form = InvitationForm()
    context = _organization_context(request, organization, invitation_form=form)
    return render_page_or_partial(
        request, "accounts/organization_detail.html", "accounts/_invitations.html", context, status=status
    )


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, slug: str, invitation_id: int) -> HttpResponse:
    organization = selectors.organization_get_for_user(_user(request), slug)
    invitation = get_object_or_404(Invitation, pk=invitation_id, organization=organization)
    status = 200
    try:
        services.invitation_revoke(actor=_user(request), invitation=invitation)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        status = 400
    context = _organization_context(request, organization)
    return render_page_or_partial(
        request, "accounts/organization_detail.html", "accounts/_invitations.html", context, status=status
    )


@login_required
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_find(token)
    if request.method == "POST":
        try:
            membership = services.invitation_accept(user=_user(request), token=token)
        except (ValidationError, PermissionDenied) as error:
            message = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            return render(
                request, "accounts/invitation_accept.html", {"invitation": invitation, "error": message}, status=400
            )
        request.session[SESSION_KEY] = membership.organization_id
        messages.success(request, f"Welcome to {membership.organization.name}.")
        return redirect(request, reverse("organization_detail", args=[membership.organization.slug]))
    return render(
        request, "accounts/invitation_accept.html", {"invitation": invitation}, status=200 if invitation else 404
    )


@login_required
def audit_log(request: HttpRequest, slug: str) -> HttpResponse:
    user = _user(request)
    organization = selectors.organization_get_for_user(user, slug)
    if not (user.is_staff or selectors.user_has_role(user, organization, Role.ADMIN)):
        raise PermissionDenied("The audit log is for the organization's owners and admins.")
    events = selectors.audit_events_of(organization)[:200]
    return render(request, "accounts/audit_log.html", {"organization": organization, "events": events})


# --- API tokens ----------------------------------------------------------------------


@login_required
def api_tokens(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = ApiTokenForm(request.POST or None)
    new_token = None
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                _api_token, new_token = services.api_token_create(
                    user=user, name=form.cleaned_data["name"], expires_at=form.cleaned_data["expires_at"]
                )
            except ValidationError as error:
                form.add_service_error(error)
            else:
                status = 201
                form = ApiTokenForm()
    context = {"form": form, "tokens": selectors.api_tokens_of(user), "new_token": new_token}
    return render_page_or_partial(
        request, "accounts/api_tokens.html", "accounts/_api_tokens.html", context, status=status
    )


@login_required
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    user = _user(request)
    api_token = get_object_or_404(selectors.api_tokens_of(user), pk=token_id)
    services.api_token_revoke(actor=user, api_token=api_token)
    context = {"form": ApiTokenForm(), "tokens": selectors.api_tokens_of(user), "new_token": None}
    return render_page_or_partial(request, "accounts/api_tokens.html", "accounts/_api_tokens.html", context)
