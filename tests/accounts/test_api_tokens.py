"""Personal API tokens: created on the page and through the API, shown once and stored
only as a hash, used as a Bearer token, refused once revoked or expired, and private to
their owner."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken, AuditEvent, User
from accounts.tokens import keyed_hash
from tests.conftest import client_for
from tests.factories import UserFactory

PROBLEM = "application/problem+json"
TOKEN_SHAPE = re.compile(r"^pat_[A-Za-z0-9]{10}_[A-Za-z0-9]{40}$")


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status
    return body


def assert_stored_only_as_hash(token: str) -> None:
    secret = token.rsplit("_", 1)[1]
    api_token = ApiToken.objects.get(token_hash=keyed_hash(token))
    assert token.startswith(api_token.prefix + "_")
    for row in ApiToken.objects.values():
        for value in row.values():
            assert token not in str(value)
            assert secret not in str(value)
    for row in AuditEvent.objects.values():
        assert secret not in str(row)


@pytest.fixture
def user(db: None) -> User:
    return UserFactory(email="dev@example.com")


@pytest.fixture
def token(user: User) -> str:
    _api_token, plaintext = services.api_token_create(user=user, name="CI deploy")
    return plaintext


# --- Creating ----------------------------------------------------------------------------


def test_a_token_created_on_the_page_is_shown_once_and_stored_only_as_a_hash(user: User) -> None:
    client = client_for(user)

    response = client.post("/settings/tokens/", {"name": " CI deploy "})

    assert response.status_code == 201
    plaintext = response.context["new_token"]
    assert TOKEN_SHAPE.match(plaintext)
    assert plaintext in response.content.decode()
    api_token = ApiToken.objects.get(user=user)
    assert (api_token.name, api_token.expires_at, api_token.revoked_at) == ("CI deploy", None, None)
    assert_stored_only_as_hash(plaintext)
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.target_id) == ("api_token.create", user, str(api_token.pk))

    again = client.get("/settings/tokens/")
    assert again.status_code == 200
    assert plaintext not in again.content.decode()
    assert api_token.prefix in again.content.decode()


def test_a_token_created_with_htmx_returns_the_tokens_partial(user: User) -> None:
    response = client_for(user).post("/settings/tokens/", {"name": "CI"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 201
    assert response.templates[0].name == "accounts/_api_tokens.html"
    assert "base.html" not in [t.name for t in response.templates]
    assert response.context["new_token"] in response.content.decode()


def test_a_token_can_be_created_with_a_future_expiry_on_the_page(user: User) -> None:
    expiry = (timezone.now() + dt.timedelta(days=30)).replace(microsecond=0)

    response = client_for(user).post(
        "/settings/tokens/", {"name": "Nightly", "expires_at": expiry.strftime("%Y-%m-%d %H:%M:%S")}
    )

    assert response.status_code == 201
    assert ApiToken.objects.get().expires_at == expiry


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
        ({"name": "Old", "expires_at": "2020-01-01 00:00"}, "expires_at", "The expiry must be in the future."),
        ({"name": "Bad", "expires_at": "tomorrow"}, "expires_at", "Enter a valid date/time."),
    ],
    ids=["blank name", "long name", "past expiry", "unparsable expiry"],
)
def test_bad_input_on_the_page_creates_no_token(user: User, data: dict[str, str], field: str, message: str) -> None:
    response = client_for(user).post("/settings/tokens/", data)

    assert response.status_code == 400
    assert response.context["new_token"] is None
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert message in " ".join(errors[field])
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_token_created_through_the_api_is_returned_once(user: User) -> None:
    client = client_for(user)

    response = client.post("/api/v1/tokens/", {"name": "CLI"}, content_type="application/json")

    assert response.status_code == 201
    body = response.json()
    plaintext = body["token"]
    assert TOKEN_SHAPE.match(plaintext)
    assert plaintext.startswith(body["prefix"] + "_")
    assert body["name"] == "CLI"
    assert_stored_only_as_hash(plaintext)

    listing = client.get("/api/v1/tokens/")
    assert listing.status_code == 200
    assert [t["id"] for t in listing.json()["results"]] == [body["id"]]
    assert "token" not in listing.json()["results"][0]
    assert plaintext.rsplit("_", 1)[1] not in listing.content.decode()


@pytest.mark.parametrize(
    ("data", "field"),
    [({}, "name"), ({"name": ""}, "name"), ({"name": "Old", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at")],
    ids=["missing name", "blank name", "past expiry"],
)
def test_bad_input_to_the_api_creates_no_token(user: User, data: dict[str, str], field: str) -> None:
    response = client_for(user).post("/api/v1/tokens/", data, content_type="application/json")

    assert list(assert_problem(response, 400)["errors"]) == [field]
    assert not ApiToken.objects.exists()


def test_each_token_is_unique(user: User) -> None:
    tokens = {services.api_token_create(user=user, name=f"t{i}")[1] for i in range(5)}

    assert len(tokens) == 5
    assert ApiToken.objects.values("token_hash").distinct().count() == 5


# --- Using -------------------------------------------------------------------------------


def test_a_bearer_token_authenticates_api_requests(user: User, token: str) -> None:
    response = Client().get("/api/v1/me/", **bearer(token))

    assert response.status_code == 200
    assert response.json()["email"] == "dev@example.com"


def test_a_token_acts_as_its_user_without_csrf(user: User, token: str) -> None:
    response = Client(enforce_csrf_checks=True).post(
        "/api/v1/organizations/", {"name": "Beta"}, content_type="application/json", **bearer(token)
    )

    assert response.status_code == 201
    assert AuditEvent.objects.filter(action="organization.create").get().actor == user


def test_using_a_token_records_when_it_was_last_used(user: User, token: str) -> None:
    api_token = ApiToken.objects.get()
    assert api_token.last_used_at is None

    before = timezone.now()
    Client().get("/api/v1/me/", **bearer(token))
    api_token.refresh_from_db()
    assert api_token.last_used_at is not None
    assert before <= api_token.last_used_at <= timezone.now()


def test_last_used_at_is_written_at_most_once_a_minute(user: User, token: str) -> None:
    recent = timezone.now() - dt.timedelta(seconds=30)
    ApiToken.objects.update(last_used_at=recent)

    Client().get("/api/v1/me/", **bearer(token))
    assert ApiToken.objects.get().last_used_at == recent

    stale = timezone.now() - dt.timedelta(minutes=5)
    ApiToken.objects.update(last_used_at=stale)
    Client().get("/api/v1/me/", **bearer(token))
    assert ApiToken.objects.get().last_used_at > stale


def _revoke(api_token: ApiToken) -> None:
    services.api_token_revoke(actor=api_token.user, api_token=api_token)


def _expire(api_token: ApiToken) -> None:
    ApiToken.objects.filter(pk=api_token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))


def _deactivate_user(api_token: ApiToken) -> None:
    User.objects.filter(pk=api_token.user_id).update(is_active=False)


@pytest.mark.parametrize("spoil", [_revoke, _expire, _deactivate_user], ids=["revoked", "expired", "inactive user"])
def test_a_token_that_is_no_longer_valid_gets_a_401_problem_that_does_not_echo_it(
    user: User, token: str, spoil: Any
) -> None:
    spoil(ApiToken.objects.get())
    last_used = ApiToken.objects.get().last_used_at

    response = Client().get("/api/v1/me/", **bearer(token))

    body = assert_problem(response, 401)
    assert body["code"] == "authentication_failed"
    assert body["detail"] == "Invalid, expired or revoked API token."
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    content = response.content.decode()
    assert token not in content
    assert token.rsplit("_", 1)[1] not in content
    assert "dev@example.com" not in content
    assert ApiToken.objects.get().last_used_at == last_used


def test_an_unknown_token_gets_a_401_problem_that_does_not_echo_it(db: None) -> None:
    guess = "pat_AAAAAAAAAA_" + "B" * 40

    response = Client().get("/api/v1/me/", **bearer(guess))

    assert assert_problem(response, 401)["code"] == "authentication_failed"
    assert guess not in response.content.decode()
    assert "B" * 40 not in response.content.decode()


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer    ", "Bearer a b", "bearer pat_x pat_y"])
def test_a_malformed_bearer_header_gets_a_401_problem(user: User, header: str) -> None:
    response = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=header)

    body = assert_problem(response, 401)
    assert body["code"] == "authentication_failed"
    assert body["detail"] == "Malformed Authorization header; send 'Bearer <token>'."


@pytest.mark.parametrize("header", ["Token abc", "Basic ZGV2OnB3", "pat_AAAAAAAAAA_" + "B" * 40])
def test_a_header_of_another_scheme_authenticates_nobody(user: User, token: str, header: str) -> None:
    response = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=header)

    assert assert_problem(response, 401)["code"] == "not_authenticated"


def test_a_bad_bearer_token_is_refused_even_with_a_valid_session(user: User) -> None:
    response = client_for(user).get("/api/v1/me/", **bearer("pat_AAAAAAAAAA_" + "B" * 40))

    assert_problem(response, 401)


# --- Revoking ------------------------------------------------------------------------------


def test_the_owner_revokes_a_token_on_the_page(user: User, token: str) -> None:
    api_token = ApiToken.objects.get()

    response = client_for(user).post(f"/settings/tokens/{api_token.pk}/revoke/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert response.templates[0].name == "accounts/_api_tokens.html"
    assert "revoked" in response.content.decode()
    api_token.refresh_from_db()
    assert api_token.revoked_at is not None
    event = AuditEvent.objects.get(action="api_token.revoke")
    assert (event.actor, event.target_id) == (user, str(api_token.pk))
    assert_problem(Client().get("/api/v1/me/", **bearer(token)), 401)


def test_the_owner_revokes_a_token_through_the_api(user: User, token: str) -> None:
    api_token = ApiToken.objects.get()

    response = client_for(user).delete(f"/api/v1/tokens/{api_token.pk}/")

    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert "token" not in response.json()
    assert_problem(Client().get("/api/v1/me/", **bearer(token)), 401)


def test_a_token_can_revoke_itself(user: User, token: str) -> None:
    api_token = ApiToken.objects.get()

    response = Client().delete(f"/api/v1/tokens/{api_token.pk}/", **bearer(token))

    assert response.status_code == 200
    assert_problem(Client().get("/api/v1/me/", **bearer(token)), 401)


def test_revoking_twice_keeps_the_first_revocation_time(user: User, token: str) -> None:
    api_token = ApiToken.objects.get()
    client = client_for(user)
    client.delete(f"/api/v1/tokens/{api_token.pk}/")
    first = ApiToken.objects.get().revoked_at

    response = client.delete(f"/api/v1/tokens/{api_token.pk}/")

    assert response.status_code == 200
    assert ApiToken.objects.get().revoked_at == first
    assert AuditEvent.objects.filter(action="api_token.revoke").count() == 1


def test_a_user_cannot_see_or_revoke_another_users_token(user: User, token: str) -> None:
    api_token = ApiToken.objects.get()
    intruder = UserFactory(email="intruder@example.com")
    client = client_for(intruder)

    page = client.post(f"/settings/tokens/{api_token.pk}/revoke/")
    api = client.delete(f"/api/v1/tokens/{api_token.pk}/")
    listing = client.get("/api/v1/tokens/")
    page_listing = client.get("/settings/tokens/")

    assert page.status_code == 404
    assert assert_problem(api, 404)["code"] == "not_found"
    assert listing.json()["results"] == []
    assert api_token.prefix not in page_listing.content.decode()
    assert ApiToken.objects.get().revoked_at is None
    assert not AuditEvent.objects.filter(action="api_token.revoke").exists()
    assert Client().get("/api/v1/me/", **bearer(token)).status_code == 200


def test_the_token_pages_need_a_signed_in_user(db: None) -> None:
    response = Client().get("/settings/tokens/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
