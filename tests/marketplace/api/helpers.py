"""Helpers of the marketplace API tests: a JSON client, URLs, problem assertions, and the
steps of publishing a product through the API."""

from __future__ import annotations

from typing import Any

from django.test import Client

from accounts.models import User
from tests.conftest import client_for

PROBLEM = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


class Api:
    """A test client that sends JSON, signed in as ``user`` (anonymous when None)."""

    def __init__(self, user: User | None = None) -> None:
        self.user = user
        self.client: Client = client_for(user) if user is not None else Client()

    def get(self, path: str, params: dict[str, Any] | None = None, **extra: Any) -> Any:
        return self.client.get(path, params or {}, **extra)

    def post(self, path: str, data: Any = None) -> Any:
        return self.client.post(path, data if data is not None else {}, content_type="application/json")

    def put(self, path: str, data: Any = None) -> Any:
        return self.client.put(path, data if data is not None else {}, content_type="application/json")

    def patch(self, path: str, data: Any = None) -> Any:
        return self.client.patch(path, data if data is not None else {}, content_type="application/json")

    def delete(self, path: str) -> Any:
        return self.client.delete(path)


def product_url(slug: str, rest: str = "") -> str:
    return f"/api/v1/products/{slug}/{rest}"


def version_url(slug: str, version: str, rest: str = "") -> str:
    return f"/api/v1/products/{slug}/versions/{version}/{rest}"


def ok(response: Any, status: int = 200) -> Any:
    """The JSON body of a successful response."""
    assert response.status_code == status, response.content
    return response.json()


def assert_problem(response: Any, status: int, *, errors: bool = False) -> dict[str, Any]:
    """A problem document (RFC 9457) with ``status``; ``errors`` for validation errors."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert set(body) == (PROBLEM_KEYS | {"errors"} if errors else PROBLEM_KEYS)
    assert body["status"] == status
    return body


def all_messages(body: dict[str, Any]) -> str:
    """Every message of a validation problem, joined: for asserting on wording."""
    return " | ".join(str(m) for messages in body["errors"].values() for m in _flatten(messages))


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [m for item in value for m in _flatten(item)]
    if isinstance(value, dict):
        return [m for item in value.values() for m in _flatten(item)]
    return [value]


def create_product(api: Api, slug: str, kind: str, **fields: Any) -> dict[str, Any]:
    body = {
        "organization": "acme",
        "kind": kind,
        "slug": slug,
        "name": slug.replace("-", " ").title(),
        "summary": f"The {slug} product.",
        **fields,
    }
    return ok(api.post("/api/v1/products/", body), 201)  # type: ignore[no-any-return]


def create_version(api: Api, slug: str, version: str = "1.0.0", **fields: Any) -> dict[str, Any]:
    return ok(api.post(product_url(slug, "versions/"), {"version": version, **fields}), 201)  # type: ignore[no-any-return]


def submit_and_approve(provider: Api, staff: Api, slug: str, version: str = "1.0.0") -> dict[str, Any]:
    """Submit the draft for review and approve it; returns the approved version."""
    submitted = ok(provider.post(version_url(slug, version, "submit/")))
    assert submitted["status"] == "in_review"
    approved = ok(staff.post(f"/api/v1/reviews/{submitted['id']}/approve/"))
    assert approved["status"] == "published"
    return approved  # type: ignore[no-any-return]
