"""Reads that carry a rule: which organizations, members and events a user may see."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Organization, Role, User


def organizations_for_user(user: User) -> QuerySet[Organization]:
    """The organizations the user belongs to (all of them for platform staff)."""
    if user.is_staff:
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user)


def organization_get_for_user(user: User, slug: str) -> Organization:
    """The organization with this slug, or Http404 when the user may not see it: an
    outsider cannot even learn that it exists."""
    try:
        return organizations_for_user(user).get(slug=slug)
    except Organization.DoesNotExist:
        raise Http404("No such organization") from None


def membership_of(user: User, organization: Organization) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, organization=organization).first()


def user_has_role(user: User, organization: Organization, minimum: str = Role.MEMBER) -> bool:
    membership = membership_of(user, organization)
    return membership is not None and membership.has_role(minimum)


def members_of(organization: Organization) -> QuerySet[Membership]:
    return organization.memberships.select_related("user").order_by("user__email")


def pending_invitations_of(organization: Organization) -> QuerySet[Invitation]:
    return organization.invitations.filter(status=Invitation.Status.PENDING).select_related("invited_by")


def audit_events_of(organization: Organization) -> QuerySet[AuditEvent]:
    return organization.audit_events.select_related("actor")


def api_tokens_of(user: User) -> QuerySet[ApiToken]:
    return user.api_tokens.all()
