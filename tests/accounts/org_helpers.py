"""Shared fixtures and helpers of the organization tests: the Acme organization with its
personas, the page and API actions of the role matrix, and assertions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.test import Client

from accounts.models import AuditEvent, Invitation, Membership, Organization

PROBLEM = "application/problem+json"
LAST_OWNER = "An organization needs at least one owner. Make someone else an owner first."


@dataclass
class Acme:
    """The organization "acme" with one owner, one admin, one member and one pending
    invitation, and the ids that the URLs of the role matrix need."""

    organization: Organization
    owner: Membership
    admin: Membership
    member: Membership
    invitation: Invitation

    @property
    def ids(self) -> dict[str, Any]:
        return {
            "slug": self.organization.slug,
            "owner": self.owner.pk,
            "admin": self.admin.pk,
            "member": self.member.pk,
            "invitation": self.invitation.pk,
        }


@dataclass(frozen=True)
class Action:
    name: str
    method: str
    path: str
    data: dict[str, str] | None = None

    def send(self, client: Client, acme: Acme, *, api: bool = False) -> Any:
        path = self.path.format(**acme.ids)
        data = {k: v.format(**acme.ids) for k, v in (self.data or {}).items()}
        call = getattr(client, self.method)
        if api:
            return call(path, data, content_type="application/json") if self.method != "get" else call(path)
        return call(path, data) if self.method == "post" else call(path)

    def __str__(self) -> str:
        return self.name


PAGE_READS = [
    Action("detail page", "get", "/orgs/{slug}/"),
    Action("audit log page", "get", "/orgs/{slug}/audit/"),
]
PAGE_WRITES = [
    Action("rename", "post", "/orgs/{slug}/rename/", {"name": "Renamed"}),
    Action("delete", "post", "/orgs/{slug}/delete/", {"confirm_slug": "{slug}"}),
    Action("role change", "post", "/orgs/{slug}/members/{member}/role/", {"role": "admin"}),
    Action("remove member", "post", "/orgs/{slug}/members/{admin}/remove/"),
    Action("invite", "post", "/orgs/{slug}/invitations/", {"email": "new@example.com", "role": "member"}),
    Action("revoke invitation", "post", "/orgs/{slug}/invitations/{invitation}/revoke/"),
]
API_READS = [
    Action("api detail", "get", "/api/v1/organizations/{slug}/"),
    Action("api members", "get", "/api/v1/organizations/{slug}/members/"),
    Action("api invitations", "get", "/api/v1/organizations/{slug}/invitations/"),
    Action("api audit events", "get", "/api/v1/organizations/{slug}/audit-events/"),
]
API_WRITES = [
    Action("api rename", "patch", "/api/v1/organizations/{slug}/", {"name": "Renamed"}),
    Action("api delete", "delete", "/api/v1/organizations/{slug}/"),
    Action("api role change", "patch", "/api/v1/organizations/{slug}/members/{member}/", {"role": "admin"}),
    Action("api remove member", "delete", "/api/v1/organizations/{slug}/members/{admin}/"),
    Action("api invite", "post", "/api/v1/organizations/{slug}/invitations/", {"email": "new@example.com"}),
    Action("api revoke invitation", "delete", "/api/v1/organizations/{slug}/invitations/{invitation}/"),
]


def state_of(organization: Organization) -> dict[str, Any]:
    """Everything a management action could change, to compare before and after."""
    return {
        "organization": list(Organization.objects.filter(pk=organization.pk).values_list("name", "slug")),
        "memberships": sorted(Membership.objects.filter(organization=organization).values_list("user_id", "role")),
        "invitations": sorted(Invitation.objects.filter(organization=organization).values_list("id", "status")),
        "audit_events": AuditEvent.objects.count(),
    }


def last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-id").first()
    assert event is not None
    return event


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status
    return body
