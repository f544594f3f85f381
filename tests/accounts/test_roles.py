"""The role matrix (owner, admin, member, outsider, staff) on every organization page and API
endpoint: outsiders get 404 and change nothing, members get 403 on management actions."""

from __future__ import annotations

from typing import Any

import pytest

from accounts import services
from accounts.models import AuditEvent, Organization, Role, User
from tests.accounts.org_helpers import (
    API_READS,
    API_WRITES,
    PAGE_READS,
    PAGE_WRITES,
    Acme,
    Action,
    assert_problem,
    state_of,
)
from tests.conftest import client_for
from tests.factories import MembershipFactory

# --- The role matrix ---------------------------------------------------------------------


def test_the_organization_list_shows_only_the_users_own_organizations(outsider: User, acme: Acme) -> None:
    page = client_for(outsider).get("/orgs/")
    api = client_for(outsider).get("/api/v1/organizations/")

    assert page.status_code == 200
    assert [m.organization.slug for m in page.context["memberships"]] == ["other"]
    assert [o["slug"] for o in api.json()["results"]] == ["other"]


def test_staff_see_every_organization_in_the_api_list(staff: User, acme: Acme, outsider: User) -> None:
    response = client_for(staff).get("/api/v1/organizations/")

    assert [o["slug"] for o in response.json()["results"]] == ["acme", "other"]


@pytest.mark.parametrize("action", PAGE_READS + PAGE_WRITES, ids=str)
def test_an_outsider_gets_404_on_every_organization_page_and_changes_nothing(
    outsider: User, acme: Acme, action: Action
) -> None:
    before = state_of(acme.organization)

    response = action.send(client_for(outsider), acme)

    assert response.status_code == 404
    assert "Acme" not in response.content.decode()
    assert state_of(acme.organization) == before


@pytest.mark.parametrize("action", API_READS + API_WRITES, ids=str)
def test_an_outsider_gets_404_on_every_organization_api_endpoint_and_changes_nothing(
    outsider: User, acme: Acme, action: Action
) -> None:
    before = state_of(acme.organization)

    response = action.send(client_for(outsider), acme, api=True)

    body = assert_problem(response, 404)
    assert body["code"] == "not_found"
    assert "acme" not in response.content.decode().lower()
    assert state_of(acme.organization) == before


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (PAGE_READS[0], 200),
        (PAGE_READS[1], 403),
        (API_READS[0], 200),
        (API_READS[1], 200),
        (API_READS[2], 403),
        (API_READS[3], 403),
    ],
    ids=str,
)
def test_a_member_can_view_the_organization_but_not_its_invitations_or_audit_log(
    member: User, acme: Acme, action: Action, status: int
) -> None:
    response = action.send(client_for(member), acme, api=action.path.startswith("/api/"))

    assert response.status_code == status


@pytest.mark.parametrize("persona", ["member", "staff"])
@pytest.mark.parametrize("action", PAGE_WRITES + API_WRITES, ids=str)
def test_members_and_staff_get_403_on_every_management_action_and_change_nothing(
    request: pytest.FixtureRequest, acme: Acme, action: Action, persona: str
) -> None:
    user: User = request.getfixturevalue(persona)
    before = state_of(acme.organization)

    is_api = action.path.startswith("/api/")
    response = action.send(client_for(user), acme, api=is_api)

    if is_api:
        assert_problem(response, 403)
    else:
        assert response.status_code == 403
    assert state_of(acme.organization) == before


@pytest.mark.parametrize("action", PAGE_READS + API_READS, ids=str)
def test_staff_can_read_every_organization_page_and_endpoint(staff: User, acme: Acme, action: Action) -> None:
    response = action.send(client_for(staff), acme, api=action.path.startswith("/api/"))

    assert response.status_code == 200


def test_the_detail_page_offers_management_only_to_those_who_may_manage(
    acme: Acme, owner: User, admin_member: User, member: User, staff: User
) -> None:
    def context(user: User) -> dict[str, Any]:
        response = client_for(user).get("/orgs/acme/")
        assert response.status_code == 200
        return {k: response.context[k] for k in ("can_manage", "is_owner")}

    assert context(owner) == {"can_manage": True, "is_owner": True}
    assert context(admin_member) == {"can_manage": True, "is_owner": False}
    assert context(member) == {"can_manage": False, "is_owner": False}
    assert context(staff) == {"can_manage": False, "is_owner": False}
    staff_page = client_for(staff).get("/orgs/acme/").content.decode()
    assert "staff view" in staff_page
    assert "/orgs/acme/invitations/" not in staff_page


def test_staff_who_are_admins_of_the_organization_can_manage_it(staff: User, acme: Acme) -> None:
    MembershipFactory(user=staff, organization=acme.organization, role=Role.ADMIN)
    client = client_for(staff)

    rename = client.post("/orgs/acme/rename/", {"name": "Acme Staffed"})
    promote = client.patch(
        f"/api/v1/organizations/acme/members/{acme.member.pk}/", {"role": "admin"}, content_type="application/json"
    )

    assert rename.status_code == 302
    assert promote.status_code == 200
    assert Organization.objects.get(slug="acme").name == "Acme Staffed"
    assert [(e.action, e.actor) for e in AuditEvent.objects.order_by("-id")[:2]] == [
        ("membership.role_change", staff),
        ("organization.update", staff),
    ]


@pytest.mark.parametrize("persona", ["owner", "admin_member"])
@pytest.mark.parametrize("action", PAGE_READS + API_READS, ids=str)
def test_owners_and_admins_can_read_everything(
    request: pytest.FixtureRequest, acme: Acme, action: Action, persona: str
) -> None:
    user: User = request.getfixturevalue(persona)

    response = action.send(client_for(user), acme, api=action.path.startswith("/api/"))

    assert response.status_code == 200


def test_the_audit_log_lists_the_organizations_events_only(owner: User, acme: Acme, outsider: User) -> None:
    other = Organization.objects.get(slug="other")
    services.organization_update(actor=outsider, organization=other, name="Other Renamed")

    response = client_for(owner).get("/api/v1/organizations/acme/audit-events/")

    actions = [e["action"] for e in response.json()["results"]]
    assert actions == ["invitation.create"]
    assert [e.action for e in client_for(owner).get("/orgs/acme/audit/").context["events"]] == actions


# --- Objects of another organization ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("patch", "/api/v1/organizations/other/members/{member}/", {"role": "admin"}),
        ("delete", "/api/v1/organizations/other/members/{member}/", None),
        ("delete", "/api/v1/organizations/other/invitations/{invitation}/", None),
        ("post", "/orgs/other/members/{member}/role/", {"role": "admin"}),
        ("post", "/orgs/other/members/{member}/remove/", None),
        ("post", "/orgs/other/invitations/{invitation}/revoke/", None),
    ],
)
def test_an_owner_elsewhere_cannot_reach_acmes_members_or_invitations_through_their_own_organization(
    outsider: User, acme: Acme, method: str, path: str, data: dict[str, str] | None
) -> None:
    before = state_of(acme.organization)
    url = path.format(**acme.ids)
    client = client_for(outsider)

    if url.startswith("/api/"):
        assert_problem(getattr(client, method)(url, data or {}, content_type="application/json"), 404)
    else:
        assert client.post(url, data or {}).status_code == 404

    assert state_of(acme.organization) == before
