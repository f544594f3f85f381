"""The REST API's one error format: every error is an RFC 9457 problem document
(application/problem+json with type, title, status, detail and code; validation errors
add ``errors`` keyed by field). Also that the schema and its docs render."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import Membership, Organization, User
from tests.conftest import client_for

PROBLEM = "application/problem+json"
KEYS = {"type", "title", "status", "detail", "code"}


def assert_problem(response: Any, status: int, code: str | None, *, validation: bool = False) -> dict[str, Any]:
    """Assert the problem document's shape; ``code=None`` leaves the code unchecked."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert set(body) == (KEYS | {"errors"} if validation else KEYS)
    assert body["status"] == status
    assert isinstance(body["code"], str)
    assert body["code"]
    if code is not None:
        assert body["code"] == code
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# --- 400 -------------------------------------------------------------------------------------


def test_a_serializer_validation_error_is_a_400_problem_with_errors_by_field(owner: User) -> None:
    response = client_for(owner).post("/api/v1/organizations/", {"slug": "Not A Slug"}, content_type="application/json")

    body = assert_problem(response, 400, "invalid", validation=True)
    assert body["title"] == "Validation failed"
    assert body["detail"] == "One or more fields are invalid."
    assert set(body["errors"]) == {"name", "slug"}
    assert body["errors"]["name"] == ["This field is required."]
    assert all(isinstance(m, str) for messages in body["errors"].values() for m in messages)


def test_a_model_validation_error_from_a_service_is_a_400_problem_keyed_by_field(
    owner: User, organization: Organization
) -> None:
    response = client_for(owner).post(
        "/api/v1/organizations/", {"name": "Copy", "slug": "acme"}, content_type="application/json"
    )

    body = assert_problem(response, 400, "invalid", validation=True)
    assert body["errors"] == {"slug": ["Organization with this Slug already exists."]}


def test_a_validation_error_without_a_field_is_keyed_non_field_errors(owner: User) -> None:
    membership = Membership.objects.get(user=owner)

    response = client_for(owner).delete(f"/api/v1/organizations/acme/members/{membership.pk}/")

    body = assert_problem(response, 400, "invalid", validation=True)
    assert list(body["errors"]) == ["non_field_errors"]


def test_malformed_json_is_a_400_problem(owner: User) -> None:
    response = client_for(owner).post("/api/v1/organizations/", "{not json", content_type="application/json")

    assert_problem(response, 400, "parse_error")
    assert not Organization.objects.filter(created_by=owner).exists()


def test_an_unsupported_media_type_is_a_415_problem(owner: User) -> None:
    response = client_for(owner).post("/api/v1/organizations/", "name=Beta", content_type="text/plain")

    assert_problem(response, 415, "unsupported_media_type")


# --- 401 and 403 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/me/"),
        ("get", "/api/v1/organizations/"),
        ("post", "/api/v1/organizations/"),
        ("get", "/api/v1/organizations/acme/members/"),
        ("post", "/api/v1/invitations/accept/"),
        ("get", "/api/v1/tokens/"),
    ],
)
def test_an_anonymous_request_is_a_401_problem(organization: Organization, method: str, path: str) -> None:
    response = getattr(Client(), method)(path)

    body = assert_problem(response, 401, "not_authenticated")
    assert body["title"] == "Authentication required"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_role_check_in_the_view_is_a_403_problem(member: User) -> None:
    response = client_for(member).get("/api/v1/organizations/acme/audit-events/")

    body = assert_problem(response, 403, "permission_denied")
    assert body["title"] == "Permission denied"


def test_a_permission_denied_from_a_service_is_a_403_problem(member: User) -> None:
    response = client_for(member).patch(
        "/api/v1/organizations/acme/", {"name": "Mine"}, content_type="application/json"
    )

    assert_problem(response, 403, "permission_denied")
    assert Organization.objects.get(slug="acme").name == "Acme"


# --- 404 and 405 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/organizations/no-such-org/",
        "/api/v1/organizations/no-such-org/members/",
        "/api/v1/organizations/acme/members/999999/",
        "/api/v1/organizations/acme/invitations/999999/",
        "/api/v1/tokens/999999/",
    ],
)
def test_an_unknown_object_is_a_404_problem(owner: User, path: str) -> None:
    client = client_for(owner)
    response = client.delete(path) if path.endswith("999999/") else client.get(path)

    body = assert_problem(response, 404, "not_found")
    assert body["title"] == "Not found"


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-endpoint/", "/api/v1/organizations/acme/nothing-here/", "/api/v1/", "/api/nothing/"]
)
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed in"])
def test_an_unknown_api_url_is_a_404_problem_not_an_html_page(owner: User, path: str, signed_in: bool) -> None:
    client = client_for(owner) if signed_in else Client()

    response = client.get(path)

    assert_problem(response, 404, "not_found")
    assert b"<html" not in response.content.lower()


def test_an_unknown_page_outside_the_api_is_still_html(owner: User) -> None:
    response = client_for(owner).get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/me/"),
        ("delete", "/api/v1/me/"),
        ("put", "/api/v1/organizations/acme/"),
        ("get", "/api/v1/invitations/accept/"),
        ("patch", "/api/v1/tokens/"),
    ],
)
def test_a_wrong_method_is_a_405_problem(owner: User, method: str, path: str) -> None:
    response = getattr(client_for(owner), method)(path, {}, content_type="application/json")

    body = assert_problem(response, 405, "method_not_allowed")
    assert method.upper() in body["detail"]
    assert "Allow" in response


# --- CSRF ------------------------------------------------------------------------------------


def _csrf_client(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/api/v1/organizations/", {"name": "Beta", "slug": "beta"}),
        ("patch", "/api/v1/organizations/acme/", {"name": "Hijacked"}),
        ("delete", "/api/v1/organizations/acme/", {}),
        ("post", "/api/v1/tokens/", {"name": "stolen"}),
    ],
)
def test_a_session_request_without_a_csrf_token_is_a_403_problem_and_changes_nothing(
    owner: User, method: str, path: str, data: dict[str, str]
) -> None:
    client = _csrf_client(owner)
    before = list(Organization.objects.values_list("slug", "name")), owner.api_tokens.count()

    response = getattr(client, method)(path, data, content_type="application/json")

    body = assert_problem(response, 403, None)
    assert "CSRF" in body["detail"]
    assert (list(Organization.objects.values_list("slug", "name")), owner.api_tokens.count()) == before


def test_a_session_request_with_a_wrong_csrf_token_is_a_403_problem(owner: User) -> None:
    client = _csrf_client(owner)
    client.get("/orgs/")

    response = client.post(
        "/api/v1/organizations/", {"name": "Beta"}, content_type="application/json", HTTP_X_CSRFTOKEN="x" * 64
    )

    assert "CSRF" in assert_problem(response, 403, None)["detail"]
    assert not Organization.objects.filter(name="Beta").exists()


def test_an_api_csrf_failure_has_its_own_code(owner: User) -> None:
    response = _csrf_client(owner).post("/api/v1/organizations/", {"name": "Beta"}, content_type="application/json")

    assert_problem(response, 403, "csrf_failed")


def test_a_session_request_with_the_csrf_token_succeeds(owner: User) -> None:
    client = _csrf_client(owner)
    client.get("/orgs/")
    csrf = client.cookies["csrftoken"].value

    response = client.post(
        "/api/v1/organizations/",
        {"name": "Beta", "slug": "beta"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf,
    )

    assert response.status_code == 201
    assert Organization.objects.filter(slug="beta").exists()


def test_a_safe_method_needs_no_csrf_token(owner: User) -> None:
    assert _csrf_client(owner).get("/api/v1/organizations/acme/").status_code == 200


def test_a_page_form_without_a_csrf_token_is_refused_with_an_html_page(owner: User) -> None:
    response = _csrf_client(owner).post("/orgs/acme/rename/", {"name": "Hijacked"})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert "Your session form expired" in response.content.decode()
    assert Organization.objects.get(slug="acme").name == "Acme"


# --- Schema and docs -----------------------------------------------------------------------


def test_the_openapi_schema_renders(db: None) -> None:
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/organizations/{slug}/members/{membership_id}/" in schema["paths"]
    assert "/api/v1/tokens/" in schema["paths"]
    assert "apiToken" in schema["components"]["securitySchemes"]


def test_the_openapi_schema_renders_as_yaml_by_default(db: None) -> None:
    response = Client().get("/api/schema/")

    assert response.status_code == 200
    assert b"openapi: 3." in response.content


def test_the_api_docs_render(db: None) -> None:
    response = Client().get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger" in response.content.lower()
