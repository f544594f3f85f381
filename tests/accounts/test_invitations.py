"""Invitations: sending one from the page (htmx) and the API, the email and its link,
accepting it, every way it is refused, and the expiry job."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import AuditEvent, Invitation, Membership, Organization, Role, User
from accounts.tokens import keyed_hash
from tests.conftest import client_for
from tests.factories import UserFactory

PROBLEM = "application/problem+json"
INVITEE = "new@example.com"
LINK = re.compile(r"http://[^\s/]+/invitations/(?P<token>[A-Za-z0-9]+)/")

CaptureOnCommit = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


def token_from_email(message: mail.EmailMessage) -> str:
    match = LINK.search(message.body)
    assert match is not None, message.body
    return match["token"]


def invite(
    capture: CaptureOnCommit, actor: User, organization: Organization, email: str = INVITEE, role: str = Role.MEMBER
) -> str:
    """Invite ``email`` through the service and return the token read from the email."""
    sent = len(mail.outbox)
    with capture(execute=True):
        services.invitation_create(actor=actor, organization=organization, email=email, role=role)
    assert len(mail.outbox) == sent + 1
    return token_from_email(mail.outbox[-1])


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


@pytest.fixture
def invitee(db: None) -> User:
    return UserFactory(email=INVITEE)


# --- Sending -------------------------------------------------------------------------------


def test_inviting_from_the_page_with_htmx_returns_the_invitations_partial_and_emails_a_link(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    client = client_for(owner)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/orgs/acme/invitations/", {"email": INVITEE, "role": "admin"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    templates = [t.name for t in response.templates]
    assert "accounts/_invitations.html" in templates
    assert "accounts/organization_detail.html" not in templates
    assert "base.html" not in templates
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="invitations">')
    assert f"Invitation sent to {INVITEE}." in content
    invitation = Invitation.objects.get(organization=organization)
    assert (invitation.email, invitation.role, invitation.status) == (INVITEE, Role.ADMIN, "pending")
    assert invitation.invited_by == owner
    assert invitation.expires_at > timezone.now() + dt.timedelta(days=1)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [INVITEE]
    assert "Acme" in message.subject
    assert "as admin" in message.body
    token = token_from_email(message)
    assert invitation.token_hash == keyed_hash(token)

    event = last_event()
    assert (event.action, event.actor, event.organization) == ("invitation.create", owner, organization)
    assert event.changes == {"email": INVITEE, "role": "admin"}


def test_inviting_from_the_page_without_htmx_renders_the_whole_page(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).post("/orgs/acme/invitations/", {"email": INVITEE, "role": "member"})

    assert response.status_code == 200
    assert "accounts/organization_detail.html" in [t.name for t in response.templates]
    assert len(mail.outbox) == 1


def test_the_email_is_sent_only_when_the_transaction_commits(owner: User, organization: Organization) -> None:
    response = client_for(owner).post("/orgs/acme/invitations/", {"email": INVITEE, "role": "member"})

    assert response.status_code == 200
    assert Invitation.objects.filter(email=INVITEE).exists()
    # The test's transaction never commits, so the queued email is never sent.
    assert mail.outbox == []


def test_inviting_through_the_api_returns_the_invitation_without_its_token(
    admin_member: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(admin_member).post(
            "/api/v1/organizations/acme/invitations/",
            {"email": "New@Example.COM", "role": "admin"},
            content_type="application/json",
        )

    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ("email", "role", "status", "invited_by")} == {
        "email": INVITEE,
        "role": "admin",
        "status": "pending",
        "invited_by": "admin@acme.test",
    }
    assert "token" not in body
    token = token_from_email(mail.outbox[0])
    assert token not in response.content.decode()
    assert Invitation.objects.get(pk=body["id"]).token_hash == keyed_hash(token)


def test_pending_invitations_are_listed_in_the_api(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    invite(django_capture_on_commit_callbacks, owner, organization)
    invite(django_capture_on_commit_callbacks, owner, organization, email="second@example.com")

    response = client_for(owner).get("/api/v1/organizations/acme/invitations/")

    assert sorted(i["email"] for i in response.json()["results"]) == [INVITEE, "second@example.com"]


def test_the_invitation_token_is_stored_only_as_a_hash(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    token = invite(django_capture_on_commit_callbacks, owner, organization)

    invitation = Invitation.objects.get()
    assert invitation.token_hash == keyed_hash(token)
    assert invitation.token_hash != token
    for row in Invitation.objects.values():
        assert all(token not in str(value) for value in row.values())
    for row in AuditEvent.objects.values():
        assert all(token not in str(value) for value in row.values())


# --- Refusals when sending ---------------------------------------------------------------------


@pytest.mark.parametrize("email", [INVITEE, "NEW@example.com"])
def test_a_second_pending_invitation_to_the_same_address_is_refused(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit, email: str
) -> None:
    invite(django_capture_on_commit_callbacks, owner, organization)
    events = AuditEvent.objects.count()
    client = client_for(owner)

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post("/orgs/acme/invitations/", {"email": email, "role": "member"}, HTTP_HX_REQUEST="true")
        api = client.post("/api/v1/organizations/acme/invitations/", {"email": email}, content_type="application/json")

    message = f"{INVITEE} already has a pending invitation. Revoke it to send a new one."
    assert page.status_code == 400
    assert page.context["invitation_form"].errors == {"email": [message]}
    assert assert_problem(api, 400)["errors"] == {"email": [message]}
    assert Invitation.objects.count() == 1
    assert len(mail.outbox) == 1
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("email", ["member@acme.test", "Member@ACME.test"])
def test_inviting_an_existing_member_is_refused(
    owner: User, member: User, django_capture_on_commit_callbacks: CaptureOnCommit, email: str
) -> None:
    client = client_for(owner)

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post("/orgs/acme/invitations/", {"email": email, "role": "member"}, HTTP_HX_REQUEST="true")
        api = client.post("/api/v1/organizations/acme/invitations/", {"email": email}, content_type="application/json")

    message = "member@acme.test is already a member of Acme."
    assert page.status_code == 400
    assert page.context["invitation_form"].errors == {"email": [message]}
    assert assert_problem(api, 400)["errors"] == {"email": [message]}
    assert not Invitation.objects.exists()
    assert mail.outbox == []
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("api", [False, True], ids=["page", "api"])
def test_an_admin_cannot_invite_an_owner(
    admin_member: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit, api: bool
) -> None:
    client = client_for(admin_member)

    with django_capture_on_commit_callbacks(execute=True):
        if api:
            response = client.post(
                "/api/v1/organizations/acme/invitations/",
                {"email": INVITEE, "role": "owner"},
                content_type="application/json",
            )
            assert_problem(response, 403)
        else:
            response = client.post("/orgs/acme/invitations/", {"email": INVITEE, "role": "owner"})
            assert response.status_code == 403

    assert not Invitation.objects.exists()
    assert mail.outbox == []
    assert not AuditEvent.objects.exists()


def test_an_owner_can_invite_an_owner(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    invite(django_capture_on_commit_callbacks, owner, organization, role=Role.OWNER)

    assert Invitation.objects.get().role == Role.OWNER


@pytest.mark.parametrize("persona", ["member", "staff"])
def test_members_and_staff_cannot_invite(
    request: pytest.FixtureRequest,
    organization: Organization,
    django_capture_on_commit_callbacks: CaptureOnCommit,
    persona: str,
) -> None:
    client = client_for(request.getfixturevalue(persona))

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post("/orgs/acme/invitations/", {"email": INVITEE, "role": "member"})
        api = client.post(
            "/api/v1/organizations/acme/invitations/", {"email": INVITEE}, content_type="application/json"
        )

    assert page.status_code == 403
    assert_problem(api, 403)
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_an_invalid_email_address_is_refused(owner: User, organization: Organization) -> None:
    client = client_for(owner)

    page = client.post("/orgs/acme/invitations/", {"email": "not-an-email", "role": "member"})
    api = client.post(
        "/api/v1/organizations/acme/invitations/", {"email": "not-an-email"}, content_type="application/json"
    )

    assert page.status_code == 400
    assert list(page.context["invitation_form"].errors) == ["email"]
    assert list(assert_problem(api, 400)["errors"]) == ["email"]
    assert not Invitation.objects.exists()


# --- Accepting -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.MEMBER, Role.ADMIN, Role.OWNER])
def test_accepting_on_the_page_creates_a_membership_with_the_invited_role(
    owner: User,
    organization: Organization,
    invitee: User,
    django_capture_on_commit_callbacks: CaptureOnCommit,
    role: Role,
) -> None:
    token = invite(django_capture_on_commit_callbacks, owner, organization, role=role)
    client = client_for(invitee)

    page = client.get(f"/invitations/{token}/")
    assert page.status_code == 200
    assert "Join Acme" in page.content.decode()

    response = client.post(f"/invitations/{token}/")

    assert response.status_code == 302
    assert response["Location"] == "/orgs/acme/"
    assert Membership.objects.get(user=invitee, organization=organization).role == role
    invitation = Invitation.objects.get()
    assert (invitation.status, invitation.accepted_by) == ("accepted", invitee)
    assert invitation.accepted_at is not None
    event = last_event()
    assert (event.action, event.actor, event.organization) == ("invitation.accept", invitee, organization)
    assert event.changes == {"email": INVITEE, "role": role.value, "already_member": False}
    assert client.get("/orgs/acme/").status_code == 200


def test_accepting_through_the_api_returns_the_membership(
    owner: User, organization: Organization, invitee: User, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    token = invite(django_capture_on_commit_callbacks, owner, organization, role=Role.ADMIN)

    response = client_for(invitee).post(
        "/api/v1/invitations/accept/", {"token": token}, content_type="application/json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["role"], body["user"]["email"]) == ("admin", INVITEE)
    assert Membership.objects.get(user=invitee, organization=organization).role == Role.ADMIN


def test_a_secondary_verified_address_may_accept(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    user = UserFactory(email="primary@example.com")
    EmailAddress.objects.create(user=user, email=INVITEE, verified=True, primary=False)
    token = invite(django_capture_on_commit_callbacks, owner, organization)

    assert client_for(user).post(f"/invitations/{token}/").status_code == 302
    assert Membership.objects.filter(user=user, organization=organization).exists()


@pytest.fixture
def wrong_user(db: None) -> User:
    return UserFactory(email="someone-else@example.com")


@pytest.fixture
def unverified_invitee(db: None) -> User:
    return UserFactory(email=INVITEE, verified_email=False)


@pytest.mark.parametrize("persona", ["wrong_user", "unverified_invitee"])
def test_accepting_on_the_page_is_refused_without_a_verified_matching_address(
    request: pytest.FixtureRequest,
    owner: User,
    organization: Organization,
    django_capture_on_commit_callbacks: CaptureOnCommit,
    persona: str,
) -> None:
    user: User = request.getfixturevalue(persona)
    token = invite(django_capture_on_commit_callbacks, owner, organization)
    events = AuditEvent.objects.count()

    response = client_for(user).post(f"/invitations/{token}/")

    assert response.status_code == 400
    assert response.context["error"] == (
        f"This invitation was sent to {INVITEE}. Sign in with that address to accept it."
    )
    assert response.context["error"] in response.content.decode()
    assert not Membership.objects.filter(user=user).exists()
    assert Invitation.objects.get().status == Invitation.Status.PENDING
    assert AuditEvent.objects.count() == events


def test_accepting_through_the_api_is_refused_for_another_address(
    owner: User, organization: Organization, wrong_user: User, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    token = invite(django_capture_on_commit_callbacks, owner, organization)

    response = client_for(wrong_user).post(
        "/api/v1/invitations/accept/", {"token": token}, content_type="application/json"
    )

    assert_problem(response, 403)
    assert not Membership.objects.filter(user=wrong_user).exists()
    assert Invitation.objects.get().status == Invitation.Status.PENDING


def test_the_api_refusal_for_another_address_says_which_address_to_use(
    owner: User, organization: Organization, wrong_user: User, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    token = invite(django_capture_on_commit_callbacks, owner, organization)

    response = client_for(wrong_user).post(
        "/api/v1/invitations/accept/", {"token": token}, content_type="application/json"
    )

    body = assert_problem(response, 403)
    assert body["detail"] == f"This invitation was sent to {INVITEE}. Sign in with that address to accept it."


def _expire(invitation: Invitation) -> None:
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))


def _revoke(invitation: Invitation) -> None:
    services.invitation_revoke(actor=invitation.invited_by, invitation=invitation)


def _mark_expired(invitation: Invitation) -> None:
    _expire(invitation)
    services.invitations_expire()


def _accept(invitation: Invitation) -> None:
    Invitation.objects.filter(pk=invitation.pk).update(status=Invitation.Status.ACCEPTED, accepted_at=timezone.now())


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_expire, "This invitation has expired. Ask for a new one."),
        (_mark_expired, "This invitation is expired."),
        (_revoke, "This invitation is revoked."),
        (_accept, "This invitation is accepted."),
    ],
    ids=["past expiry", "marked expired", "revoked", "already accepted"],
)
def test_an_invitation_that_is_no_longer_pending_cannot_be_accepted(
    owner: User,
    organization: Organization,
    invitee: User,
    django_capture_on_commit_callbacks: CaptureOnCommit,
    spoil: Callable[[Invitation], None],
    message: str,
) -> None:
    token = invite(django_capture_on_commit_callbacks, owner, organization)
    spoil(Invitation.objects.get())
    events = AuditEvent.objects.count()
    client = client_for(invitee)

    page = client.post(f"/invitations/{token}/")
    api = client.post("/api/v1/invitations/accept/", {"token": token}, content_type="application/json")

    assert page.status_code == 400
    assert page.context["error"] == message
    assert message in page.content.decode()
    assert assert_problem(api, 400)["errors"] == {"non_field_errors": [message]}
    assert not Membership.objects.filter(user=invitee).exists()
    assert AuditEvent.objects.count() == events


def test_an_invitation_cannot_be_accepted_twice(
    owner: User, organization: Organization, invitee: User, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    token = invite(django_capture_on_commit_callbacks, owner, organization)
    client = client_for(invitee)
    assert client.post(f"/invitations/{token}/").status_code == 302

    again = client.post(f"/invitations/{token}/")

    assert again.status_code == 400
    assert again.context["error"] == "This invitation is accepted."
    assert Membership.objects.filter(user=invitee).count() == 1


def test_an_unknown_token_is_refused(invitee: User) -> None:
    client = client_for(invitee)

    page_get = client.get("/invitations/not-a-real-token/")
    page_post = client.post("/invitations/not-a-real-token/")
    api = client.post("/api/v1/invitations/accept/", {"token": "not-a-real-token"}, content_type="application/json")

    assert page_get.status_code == 404
    assert "Invitation not found" in page_get.content.decode()
    assert page_post.status_code == 400
    assert page_post.context["error"] == "This invitation link is not valid."
    assert assert_problem(api, 400)["errors"] == {"non_field_errors": ["This invitation link is not valid."]}
    assert not Membership.objects.filter(user=invitee).exists()


def test_the_accept_page_needs_a_signed_in_user(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    token = invite(django_capture_on_commit_callbacks, owner, organization)

    response = Client().post(f"/invitations/{token}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert Invitation.objects.get().status == Invitation.Status.PENDING


# --- Revoking -------------------------------------------------------------------------------


def test_an_admin_revokes_a_pending_invitation_from_the_page(
    owner: User, admin_member: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    invite(django_capture_on_commit_callbacks, owner, organization)
    invitation = Invitation.objects.get()

    response = client_for(admin_member).post(f"/orgs/acme/invitations/{invitation.pk}/revoke/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert response.templates[0].name == "accounts/_invitations.html"
    assert INVITEE not in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    event = last_event()
    assert (event.action, event.actor, event.organization) == ("invitation.revoke", admin_member, organization)


def test_revoking_twice_is_refused_and_records_nothing(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    invite(django_capture_on_commit_callbacks, owner, organization)
    invitation = Invitation.objects.get()
    client = client_for(owner)
    assert client.delete(f"/api/v1/organizations/acme/invitations/{invitation.pk}/").json()["status"] == "revoked"
    events = AuditEvent.objects.count()

    page = client.post(f"/orgs/acme/invitations/{invitation.pk}/revoke/", HTTP_HX_REQUEST="true")
    api = client.delete(f"/api/v1/organizations/acme/invitations/{invitation.pk}/")

    assert page.status_code == 400
    assert "This invitation is already revoked." in page.content.decode()
    assert assert_problem(api, 400)["errors"] == {"non_field_errors": ["This invitation is already revoked."]}
    assert AuditEvent.objects.count() == events


def test_a_revoked_address_can_be_invited_again(
    owner: User, organization: Organization, invitee: User, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    old_token = invite(django_capture_on_commit_callbacks, owner, organization)
    _revoke(Invitation.objects.get())

    new_token = invite(django_capture_on_commit_callbacks, owner, organization)

    assert new_token != old_token
    client = client_for(invitee)
    assert client.post(f"/invitations/{old_token}/").status_code == 400
    assert client.post(f"/invitations/{new_token}/").status_code == 302


# --- Expiry ---------------------------------------------------------------------------------


def test_invitations_expire_marks_only_pending_invitations_past_their_expiry(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    for email in ("old@example.com", "fresh@example.com", "revoked@example.com"):
        invite(django_capture_on_commit_callbacks, owner, organization, email=email)
    by_email = {i.email: i for i in Invitation.objects.all()}
    _revoke(by_email["revoked@example.com"])
    _expire(by_email["old@example.com"])
    _expire(by_email["revoked@example.com"])

    assert services.invitations_expire() == 1

    statuses = dict(Invitation.objects.values_list("email", "status"))
    assert statuses == {"old@example.com": "expired", "fresh@example.com": "pending", "revoked@example.com": "revoked"}
    event = last_event()
    assert (event.action, event.actor, event.actor_email) == ("invitation.expire", None, "")
    assert (event.organization, event.target_id) == (organization, str(by_email["old@example.com"].pk))
    assert services.invitations_expire() == 0


def test_an_expired_invitation_no_longer_blocks_a_new_one(
    owner: User, organization: Organization, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    invite(django_capture_on_commit_callbacks, owner, organization)
    _mark_expired(Invitation.objects.get())

    invite(django_capture_on_commit_callbacks, owner, organization)

    assert sorted(Invitation.objects.values_list("status", flat=True)) == ["expired", "pending"]
