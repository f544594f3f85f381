"""The organization switcher: only one's own organizations, and never an offsite redirect."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from accounts.middleware import SESSION_KEY
from accounts.models import Organization, Role, User
from tests.accounts.org_helpers import Acme
from tests.conftest import client_for
from tests.factories import MembershipFactory

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
