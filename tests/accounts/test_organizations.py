"""Creating, renaming and deleting an organization, on the page and through the API."""

from __future__ import annotations

import pytest

from accounts.middleware import SESSION_KEY
from accounts.models import AuditEvent, Membership, Organization, Role, User
from tests.accounts.org_helpers import Acme, assert_problem, last_event, state_of
from tests.conftest import client_for

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
    assert {e.ip_address for e in events} == {"127.0.0.1"}


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
