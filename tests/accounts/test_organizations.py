"""Organizations and memberships: creating, renaming and deleting an organization, the
role matrix (owner, admin, member, outsider, staff) on every page and API endpoint, the
last-owner rule, the audit trail of each change, and the organization switcher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from accounts import services
from accounts.middleware import SESSION_KEY
from accounts.models import AuditEvent, Invitation, Membership, Organization, Role, User
from tests.conftest import client_for
from tests.factories import MembershipFactory

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


@pytest.fixture
def acme(organization: Organization, owner: User, admin_member: User, member: User) -> Acme:
    invitation, _token = services.invitation_create(
        actor=owner, organization=organization, email="invitee@example.com", role=Role.MEMBER
    )
    memberships = {m.user_id: m for m in Membership.objects.filter(organization=organization)}
    return Acme(
        organization=organization,
        owner=memberships[owner.pk],
        admin=memberships[admin_member.pk],
        member=memberships[member.pk],
        invitation=invitation,
    )


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


# --- Creating an organization ----------------------------------------------------------


def test_creating_an_organization_on_the_page_makes_the_creator_its_owner(owner: User) -> None:
    client = client_for(owner)

    response = client.post("/orgs/", {"name": "Beta Labs", "slug": "beta"})

    assert response.status_code == 302
    assert response["Location"] == "/orgs/beta/"
    beta = Organization.objects.get(slug="beta")
    assert beta.name == "Beta Labs"
    assert beta.created_by == owner
    assert Membership.objects.get(organization=beta, user=owner).role == Role.OWNER
    assert client.session[SESSION_KEY] == beta.pk
    events = AuditEvent.objects.filter(organization=beta).order_by("id")
    assert [(e.action, e.actor, e.changes) for e in events] == [
        ("organization.create", owner, {"name": "Beta Labs", "slug": "beta"}),
        ("membership.create", owner, {"role": "owner"}),
    ]


def test_an_organization_created_without_a_slug_gets_one_from_its_name(owner: User) -> None:
    response = client_for(owner).post("/orgs/", {"name": "Beta Labs", "slug": ""})

    assert response.status_code == 302
    assert Organization.objects.filter(slug="beta-labs", name="Beta Labs").exists()


def test_a_slug_made_from_a_name_never_collides_with_an_existing_one(owner: User, organization: Organization) -> None:
    response = client_for(owner).post("/orgs/", {"name": "Acme", "slug": ""})

    assert response.status_code == 302
    created = Organization.objects.exclude(pk=organization.pk).get(name="Acme")
    assert created.slug.startswith("acme-")
    assert organization.slug == "acme"


def test_creating_an_organization_with_htmx_redirects_the_whole_page(owner: User) -> None:
    response = client_for(owner).post("/orgs/", {"name": "Beta"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/orgs/beta/"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "slug": "beta"}, "name", "This field is required."),
        ({"name": "   ", "slug": "beta"}, "name", "This field is required."),
        ({"name": "Beta", "slug": "Not a slug!"}, "slug", "Use 1 to 50 lowercase letters"),
        ({"name": "Beta", "slug": "-beta"}, "slug", "Use 1 to 50 lowercase letters"),
        ({"name": "Beta", "slug": "acme"}, "slug", "That slug is taken; choose another."),
        ({"name": "x" * 101, "slug": "beta"}, "name", "at most 100 characters"),
    ],
    ids=["blank name", "whitespace name", "invalid slug", "slug starting with a hyphen", "duplicate slug", "long name"],
)
def test_bad_input_on_the_page_is_refused_with_a_precise_error_and_saves_nothing(
    owner: User, organization: Organization, data: dict[str, str], field: str, message: str
) -> None:
    before = (Organization.objects.count(), Membership.objects.count(), AuditEvent.objects.count())

    response = client_for(owner).post("/orgs/", data)

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert message in " ".join(errors[field])
    assert message in response.content.decode()
    assert (Organization.objects.count(), Membership.objects.count(), AuditEvent.objects.count()) == before


def test_creating_an_organization_through_the_api_returns_it(owner: User) -> None:
    response = client_for(owner).post(
        "/api/v1/organizations/", {"name": "Beta", "slug": "beta"}, content_type="application/json"
    )

    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ("name", "slug")} == {"name": "Beta", "slug": "beta"}
    beta = Organization.objects.get(slug="beta")
    assert body["id"] == beta.pk
    assert Membership.objects.get(organization=beta).user == owner
    assert set(AuditEvent.objects.filter(organization=beta, actor=owner).values_list("action", flat=True)) == {
        "organization.create",
        "membership.create",
    }


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"slug": "beta"}, "name", "This field is required."),
        ({"name": "", "slug": "beta"}, "name", "This field may not be blank."),
        ({"name": "  ", "slug": "beta"}, "name", "This field may not be blank."),
        ({"name": "Beta", "slug": "Not a slug!"}, "slug", "Use 1 to 50 lowercase letters"),
        ({"name": "Beta", "slug": "acme"}, "slug", "Organization with this Slug already exists."),
    ],
    ids=["missing name", "blank name", "whitespace name", "invalid slug", "duplicate slug"],
)
def test_bad_input_to_the_api_is_a_400_problem_keyed_by_field_and_saves_nothing(
    owner: User, organization: Organization, data: dict[str, str], field: str, message: str
) -> None:
    before = (Organization.objects.count(), Membership.objects.count(), AuditEvent.objects.count())

    response = client_for(owner).post("/api/v1/organizations/", data, content_type="application/json")

    body = assert_problem(response, 400)
    assert body["code"] == "invalid"
    assert list(body["errors"]) == [field]
    assert message in " ".join(body["errors"][field])
    assert (Organization.objects.count(), Membership.objects.count(), AuditEvent.objects.count()) == before


# --- Renaming and deleting ---------------------------------------------------------------


@pytest.mark.parametrize("persona", ["owner", "admin_member"])
def test_owners_and_admins_can_rename_the_organization_on_the_page(
    request: pytest.FixtureRequest, acme: Acme, persona: str
) -> None:
    actor: User = request.getfixturevalue(persona)

    response = client_for(actor).post("/orgs/acme/rename/", {"name": "  Acme Corporation "})

    assert response.status_code == 302
    assert response["Location"] == "/orgs/acme/"
    acme.organization.refresh_from_db()
    assert acme.organization.name == "Acme Corporation"
    assert acme.organization.slug == "acme"
    event = last_event()
    assert (event.action, event.actor, event.organization) == ("organization.update", actor, acme.organization)
    assert event.changes == {"name": ["Acme", "Acme Corporation"]}


def test_renaming_to_a_blank_name_is_refused_and_changes_nothing(owner: User, acme: Acme) -> None:
    before = state_of(acme.organization)

    response = client_for(owner).post("/orgs/acme/rename/", {"name": " "})

    assert response.status_code == 400
    assert response.context["rename_form"].errors == {"name": ["This field is required."]}
    assert state_of(acme.organization) == before


def test_renaming_through_the_api_returns_the_new_name(admin_member: User, acme: Acme) -> None:
    response = client_for(admin_member).patch(
        "/api/v1/organizations/acme/", {"name": "Acme Two"}, content_type="application/json"
    )

    assert response.status_code == 200
    assert response.json()["name"] == "Acme Two"
    assert Organization.objects.get(slug="acme").name == "Acme Two"
    assert last_event().action == "organization.update"


def test_the_owner_deletes_the_organization_by_typing_its_slug(owner: User, acme: Acme) -> None:
    pk = acme.organization.pk

    response = client_for(owner).post("/orgs/acme/delete/", {"confirm_slug": "acme"})

    assert response.status_code == 302
    assert response["Location"] == "/orgs/"
    assert not Organization.objects.filter(pk=pk).exists()
    assert not Membership.objects.filter(organization_id=pk).exists()
    event = last_event()
    assert (event.action, event.actor, event.target_id) == ("organization.delete", owner, str(pk))
    assert event.changes == {"name": "Acme", "slug": "acme"}


@pytest.mark.parametrize("confirmation", ["", "Acme", "acme-typo", "other"])
def test_deleting_without_the_exact_slug_confirmation_deletes_nothing(
    owner: User, acme: Acme, confirmation: str
) -> None:
    before = state_of(acme.organization)
    client = client_for(owner)

    response = client.post("/orgs/acme/delete/", {"confirm_slug": confirmation})

    assert response.status_code == 302
    assert response["Location"] == "/orgs/acme/"
    assert state_of(acme.organization) == before
    page = client.get("/orgs/acme/")
    assert "Type acme to confirm the deletion." in page.content.decode()


def test_the_owner_deletes_the_organization_through_the_api(owner: User, acme: Acme) -> None:
    response = client_for(owner).delete("/api/v1/organizations/acme/")

    assert response.status_code == 204
    assert not Organization.objects.filter(slug="acme").exists()
    assert last_event().action == "organization.delete"


@pytest.mark.parametrize("api", [False, True], ids=["page", "api"])
def test_an_admin_cannot_delete_the_organization(admin_member: User, acme: Acme, api: bool) -> None:
    before = state_of(acme.organization)
    client = client_for(admin_member)

    if api:
        assert_problem(client.delete("/api/v1/organizations/acme/"), 403)
    else:
        assert client.post("/orgs/acme/delete/", {"confirm_slug": "acme"}).status_code == 403

    assert state_of(acme.organization) == before


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
    [(PAGE_READS[0], 200), (PAGE_READS[1], 403), (API_READS[0], 200), (API_READS[1], 200)]
    + [(API_READS[2], 403), (API_READS[3], 403)],
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


# --- Managing members ----------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["owner", "admin_member"])
@pytest.mark.parametrize("api", [False, True], ids=["page", "api"])
def test_owners_and_admins_can_promote_a_member_to_admin(
    request: pytest.FixtureRequest, acme: Acme, persona: str, api: bool
) -> None:
    actor: User = request.getfixturevalue(persona)
    client = client_for(actor)

    if api:
        response = client.patch(
            f"/api/v1/organizations/acme/members/{acme.member.pk}/", {"role": "admin"}, content_type="application/json"
        )
        assert response.status_code == 200
        assert response.json()["role"] == "admin"
    else:
        response = client.post(f"/orgs/acme/members/{acme.member.pk}/role/", {"role": "admin"})
        assert response.status_code == 200

    acme.member.refresh_from_db()
    assert acme.member.role == Role.ADMIN
    event = last_event()
    assert (event.action, event.actor, event.organization) == ("membership.role_change", actor, acme.organization)
    assert event.changes == {"user": "member@acme.test", "role": ["member", "admin"]}


def test_a_role_change_from_htmx_returns_the_members_partial(owner: User, acme: Acme) -> None:
    response = client_for(owner).post(
        f"/orgs/acme/members/{acme.member.pk}/role/", {"role": "admin"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "accounts/_members.html"
    assert response.content.decode().lstrip().startswith('<div id="members">')


def test_an_unknown_role_is_refused(owner: User, acme: Acme) -> None:
    before = state_of(acme.organization)
    client = client_for(owner)

    page = client.post(f"/orgs/acme/members/{acme.member.pk}/role/", {"role": "superuser"})
    api = client.patch(
        f"/api/v1/organizations/acme/members/{acme.member.pk}/", {"role": "superuser"}, content_type="application/json"
    )

    assert page.status_code == 400
    assert "Choose a valid role." in page.content.decode()
    assert list(assert_problem(api, 400)["errors"]) == ["role"]
    assert state_of(acme.organization) == before


@pytest.mark.parametrize(
    ("target", "role"),
    [("member", "owner"), ("admin", "owner"), ("owner", "admin"), ("owner", "member")],
    ids=["member to owner", "admin to owner", "demote owner to admin", "demote owner to member"],
)
@pytest.mark.parametrize("api", [False, True], ids=["page", "api"])
def test_an_admin_cannot_grant_or_touch_the_owner_role(
    admin_member: User, acme: Acme, target: str, role: str, api: bool
) -> None:
    membership: Membership = getattr(acme, target)
    before = state_of(acme.organization)
    client = client_for(admin_member)

    if api:
        response = client.patch(
            f"/api/v1/organizations/acme/members/{membership.pk}/", {"role": role}, content_type="application/json"
        )
        assert_problem(response, 403)
    else:
        response = client.post(f"/orgs/acme/members/{membership.pk}/role/", {"role": role})
        assert response.status_code == 403

    assert state_of(acme.organization) == before


@pytest.mark.parametrize("api", [False, True], ids=["page", "api"])
def test_an_admin_cannot_remove_an_owner(admin_member: User, acme: Acme, api: bool) -> None:
    before = state_of(acme.organization)
    client = client_for(admin_member)

    if api:
        assert_problem(client.delete(f"/api/v1/organizations/acme/members/{acme.owner.pk}/"), 403)
    else:
        assert client.post(f"/orgs/acme/members/{acme.owner.pk}/remove/").status_code == 403

    assert state_of(acme.organization) == before


@pytest.mark.parametrize(("persona", "target"), [("owner", "admin"), ("admin_member", "member"), ("owner", "member")])
@pytest.mark.parametrize("api", [False, True], ids=["page", "api"])
def test_owners_and_admins_can_remove_members_below_the_owner(
    request: pytest.FixtureRequest, acme: Acme, persona: str, target: str, api: bool
) -> None:
    actor: User = request.getfixturevalue(persona)
    membership: Membership = getattr(acme, target)
    client = client_for(actor)

    if api:
        assert client.delete(f"/api/v1/organizations/acme/members/{membership.pk}/").status_code == 204
    else:
        response = client.post(f"/orgs/acme/members/{membership.pk}/remove/")
        assert response.status_code == 200
        assert membership.user.email not in [m.user.email for m in response.context["members"]]

    assert not Membership.objects.filter(pk=membership.pk).exists()
    event = last_event()
    assert (event.action, event.actor, event.organization) == ("membership.remove", actor, acme.organization)
    assert event.changes == {"user": membership.user.email, "role": membership.role}


def test_the_owner_can_make_someone_else_an_owner(owner: User, acme: Acme) -> None:
    response = client_for(owner).post(f"/orgs/acme/members/{acme.admin.pk}/role/", {"role": "owner"})

    assert response.status_code == 200
    acme.admin.refresh_from_db()
    assert acme.admin.role == Role.OWNER
    assert last_event().changes == {"user": "admin@acme.test", "role": ["admin", "owner"]}


def test_a_role_change_on_a_membership_of_another_organization_is_404(owner: User, acme: Acme, outsider: User) -> None:
    foreign = Membership.objects.get(user=outsider)
    client = client_for(owner)

    page = client.post(f"/orgs/acme/members/{foreign.pk}/role/", {"role": "member"})
    api = client.patch(
        f"/api/v1/organizations/acme/members/{foreign.pk}/", {"role": "member"}, content_type="application/json"
    )

    assert page.status_code == 404
    assert_problem(api, 404)
    foreign.refresh_from_db()
    assert foreign.role == Role.OWNER


# --- The last owner ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "member"])
def test_the_last_owner_cannot_be_demoted_on_the_page(owner: User, acme: Acme, role: str) -> None:
    before = state_of(acme.organization)

    response = client_for(owner).post(f"/orgs/acme/members/{acme.owner.pk}/role/", {"role": role})

    assert response.status_code == 400
    assert LAST_OWNER in response.content.decode()
    assert state_of(acme.organization) == before


def test_the_last_owner_cannot_be_demoted_through_the_api(owner: User, acme: Acme) -> None:
    before = state_of(acme.organization)

    response = client_for(owner).patch(
        f"/api/v1/organizations/acme/members/{acme.owner.pk}/", {"role": "admin"}, content_type="application/json"
    )

    assert assert_problem(response, 400)["errors"] == {"role": [LAST_OWNER]}
    assert state_of(acme.organization) == before


def test_the_last_owner_cannot_leave(owner: User, acme: Acme) -> None:
    before = state_of(acme.organization)
    client = client_for(owner)

    page = client.post(f"/orgs/acme/members/{acme.owner.pk}/remove/")
    api = client.delete(f"/api/v1/organizations/acme/members/{acme.owner.pk}/")

    assert page.status_code == 400
    assert LAST_OWNER in page.content.decode()
    assert assert_problem(api, 400)["errors"] == {"non_field_errors": [LAST_OWNER]}
    assert state_of(acme.organization) == before


def test_an_owner_can_step_down_or_leave_once_there_is_another_owner(owner: User, acme: Acme) -> None:
    second = MembershipFactory(organization=acme.organization, role=Role.OWNER).user
    client = client_for(owner)

    assert client.post(f"/orgs/acme/members/{acme.owner.pk}/role/", {"role": "admin"}).status_code == 200
    acme.owner.refresh_from_db()
    assert acme.owner.role == Role.ADMIN

    second_membership = Membership.objects.get(user=second)
    response = client_for(second).delete(f"/api/v1/organizations/acme/members/{second_membership.pk}/")
    # The second owner is now the last one.
    assert assert_problem(response, 400)["errors"] == {"non_field_errors": [LAST_OWNER]}


def test_one_owner_can_remove_another_owner(owner: User, acme: Acme) -> None:
    second = MembershipFactory(organization=acme.organization, role=Role.OWNER)

    response = client_for(owner).post(f"/orgs/acme/members/{second.pk}/remove/")

    assert response.status_code == 200
    assert not Membership.objects.filter(pk=second.pk).exists()


# --- Leaving -------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["member", "admin_member"])
def test_a_member_can_leave_on_the_page(request: pytest.FixtureRequest, acme: Acme, persona: str) -> None:
    user: User = request.getfixturevalue(persona)
    membership = Membership.objects.get(user=user, organization=acme.organization)
    client = client_for(user)

    response = client.post(f"/orgs/acme/members/{membership.pk}/remove/")

    assert response.status_code == 302
    assert response["Location"] == "/orgs/"
    assert not Membership.objects.filter(pk=membership.pk).exists()
    event = last_event()
    assert (event.action, event.actor, event.organization) == ("membership.remove", user, acme.organization)
    assert client.get("/orgs/acme/").status_code == 404


def test_a_member_can_leave_through_the_api(member: User, acme: Acme) -> None:
    response = client_for(member).delete(f"/api/v1/organizations/acme/members/{acme.member.pk}/")

    assert response.status_code == 204
    assert not Membership.objects.filter(pk=acme.member.pk).exists()
    assert last_event().actor == member


# --- The organization switcher -----------------------------------------------------------


@pytest.fixture
def member_of_two(acme: Acme, outsider: User) -> User:
    """A member of acme who is also a member of other."""
    user = MembershipFactory(organization=acme.organization, role=Role.MEMBER).user
    MembershipFactory(user=user, organization=Organization.objects.get(slug="other"), role=Role.MEMBER)
    return user


def test_the_switcher_selects_an_organization_the_user_belongs_to(member_of_two: User) -> None:
    client = client_for(member_of_two)
    other = Organization.objects.get(slug="other")

    response = client.post("/orgs/switch/", {"organization": "other", "next": "/orgs/"})

    assert response.status_code == 302
    assert response["Location"] == "/orgs/"
    assert client.session[SESSION_KEY] == other.pk
    assert client.get("/orgs/").context["current_membership"].organization == other


def test_the_switcher_refuses_an_organization_the_user_does_not_belong_to(outsider: User, acme: Acme) -> None:
    client = client_for(outsider)

    response = client.post("/orgs/switch/", {"organization": "acme", "next": "/orgs/"})

    assert response.status_code == 403
    assert SESSION_KEY not in client.session


def test_the_switcher_refuses_staff_who_are_not_members(staff: User, acme: Acme) -> None:
    assert client_for(staff).post("/orgs/switch/", {"organization": "acme"}).status_code == 403


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example",
        "//evil.example/orgs/",
        "https://evil.example/",
        "evil.example",
        "javascript:alert(1)",
        "/\\evil.example",
        "/\\/evil.example/",
        "/\t/evil.example",
    ],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_the_switcher_does_not_follow_an_offsite_next(member_of_two: User, next_url: str, htmx: bool) -> None:
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}

    response = client_for(member_of_two).post("/orgs/switch/", {"organization": "acme", "next": next_url}, **headers)

    location = response["HX-Redirect"] if htmx else response["Location"]
    assert response.status_code == (200 if htmx else 302)
    # Browsers read a backslash as a slash and drop tabs; neither may leave the site.
    normalized = location.replace("\\", "/").replace("\t", "")
    assert normalized.startswith("/")
    assert not normalized.startswith("//")
    assert urlsplit(normalized).netloc == ""


@pytest.mark.parametrize("next_url", ["//evil.example", "https://evil.example/", "javascript:alert(1)", ""])
def test_an_offsite_or_missing_next_sends_the_user_home(member_of_two: User, next_url: str) -> None:
    response = client_for(member_of_two).post("/orgs/switch/", {"organization": "acme", "next": next_url})

    assert response.status_code == 302
    assert response["Location"] == "/"
