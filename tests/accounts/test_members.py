"""Managing members: role changes, removal, the last-owner rule (under concurrency too),
leaving, and the audit event of each change."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from accounts import services
from accounts.models import Membership, Role, User
from tests.accounts.org_helpers import LAST_OWNER, Acme, assert_problem, last_event, state_of
from tests.conftest import client_for
from tests.factories import MembershipFactory, OrganizationFactory

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
    assert response.templates[0].name == "accounts/_members.html"
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


def _demote(actor: User, membership: Membership) -> None:
    services.membership_change_role(actor=actor, membership=membership, role=Role.ADMIN)


def _leave(actor: User, membership: Membership) -> None:
    services.membership_remove(actor=actor, membership=membership)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("step_down", [_demote, _leave], ids=["demote", "leave"])
def test_two_owners_stepping_down_at_once_leave_one_owner(step_down: Callable[[User, Membership], None]) -> None:
    duo = OrganizationFactory(slug="duo")
    first, second = MembershipFactory.create_batch(2, organization=duo, role=Role.OWNER)
    first_done, second_done = threading.Event(), threading.Event()
    outcomes: dict[str, str] = {}

    def run(name: str, membership_id: int, before: threading.Event | None, after: threading.Event) -> None:
        try:
            membership = Membership.objects.select_related("user", "organization").get(pk=membership_id)
            with transaction.atomic():
                if before is not None:
                    before.wait(5)
                step_down(membership.user, membership)
                outcomes[name] = "done"
                after.set()
                if name == "first":
                    # Keep the first transaction open while the second one runs; with a lock,
                    # the second waits here until this one commits.
                    second_done.wait(2)
        except ValidationError:
            outcomes[name] = "refused"
        finally:
            after.set()
            connection.close()

    threads = [
        threading.Thread(target=run, args=("first", first.pk, None, first_done)),
        threading.Thread(target=run, args=("second", second.pk, first_done, second_done)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(outcomes.values()) == ["done", "refused"]
    assert Membership.objects.filter(organization=duo, role=Role.OWNER).count() == 1


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
