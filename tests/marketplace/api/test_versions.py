"""Versions through the API: drafts with their upstream settings (the secret stored
encrypted, never returned), copies of earlier versions, immutability once published, and
the provider's side of the lifecycle: submit, withdraw, deprecate, retire, delete."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Organization
from marketplace.crypto import secret_decrypt
from marketplace.models import ModelOffering, ProductVersion
from tests.marketplace.api.documents import UPSTREAM
from tests.marketplace.api.helpers import (
    Api,
    all_messages,
    assert_problem,
    create_product,
    create_version,
    ok,
    product_url,
    submit_and_approve,
    version_url,
)
from tests.marketplace.factories import ModelOfferingFactory, PublishedVersionFactory

SECRET = "sk-live-4f1c2a9e8b7d6c5e"
MODELS = [{"public_name": "acme-chat", "upstream_name": "llama-3-8b", "input_price_per_mtok": "0.5"}]


@pytest.fixture
def model_api_draft(member_api: Api) -> dict[str, Any]:
    """A model API product "llm" with a complete draft 1.0.0, ready to submit."""
    create_product(member_api, "llm", "model_api")
    create_version(member_api, "llm", "1.0.0")
    ok(member_api.patch(version_url("llm", "1.0.0"), {"upstream_url": f"{UPSTREAM}/v1"}))
    return ok(member_api.put(version_url("llm", "1.0.0", "models/"), {"models": MODELS}))  # type: ignore[no-any-return]


def test_a_member_creates_a_draft_that_says_what_it_still_lacks(member_api: Api) -> None:
    create_product(member_api, "llm", "model_api")

    body = create_version(member_api, "llm", "1.0.0", changelog="First.")

    assert (body["version"], body["status"], body["changelog"]) == ("1.0.0", "draft", "First.")
    assert body["missing_for_submission"] == ["an upstream URL", "at least one model"]
    assert "upstream_secret" not in body
    assert "upstream_secret_encrypted" not in body
    assert AuditEvent.objects.get(action="version.create").changes == {"version": "1.0.0", "copied_from": None}
    listed = ok(member_api.get(product_url("llm", "versions/")))
    assert [v["version"] for v in listed["results"]] == ["1.0.0"]


def test_a_version_string_must_be_semantic_and_new(member_api: Api) -> None:
    create_product(member_api, "llm", "model_api")
    create_version(member_api, "llm", "1.0.0")

    bad = assert_problem(member_api.post(product_url("llm", "versions/"), {"version": "v1"}), 400, errors=True)
    assert bad["errors"] == {"version": ["Use a semantic version such as 1.0.0 or 2.1.0-beta.1."]}
    again = assert_problem(member_api.post(product_url("llm", "versions/"), {"version": "1.0.0"}), 400, errors=True)
    assert again["errors"] == {"version": ["Llm already has a version 1.0.0."]}


def test_a_prerelease_version_is_addressed_by_its_string(member_api: Api) -> None:
    create_product(member_api, "llm", "model_api")
    create_version(member_api, "llm", "2.0.0-beta.1")

    assert ok(member_api.get(version_url("llm", "2.0.0-beta.1")))["version"] == "2.0.0-beta.1"
    assert_problem(member_api.get(version_url("llm", "9.9.9")), 404)


def test_the_upstream_secret_is_stored_encrypted_and_never_returned(member_api: Api) -> None:
    create_product(member_api, "llm", "model_api")
    create_version(member_api, "llm", "1.0.0")

    body = ok(
        member_api.patch(
            version_url("llm", "1.0.0"),
            {"upstream_url": f"{UPSTREAM}/v1", "upstream_auth_header": "Authorization", "upstream_secret": SECRET},
        )
    )

    assert body["has_upstream_secret"] is True
    assert body["upstream_auth_header"] == "Authorization"
    fetched = member_api.get(version_url("llm", "1.0.0"))
    for response_text in (
        str(body),
        fetched.content.decode(),
        member_api.get(product_url("llm", "versions/")).content.decode(),
    ):
        assert SECRET not in response_text
        assert "upstream_secret_encrypted" not in response_text
    row = ProductVersion.objects.values().get()
    assert all(SECRET not in str(value) for value in row.values())
    assert secret_decrypt(row["upstream_secret_encrypted"]) == SECRET
    assert all(SECRET not in str(event) for event in AuditEvent.objects.values())
    assert AuditEvent.objects.filter(action="version.update").first().changes["upstream_secret"] == "(set)"  # type: ignore[union-attr]

    cleared = ok(member_api.patch(version_url("llm", "1.0.0"), {"upstream_secret": ""}))
    assert cleared["has_upstream_secret"] is False


def test_a_secret_needs_the_header_that_carries_it(member_api: Api) -> None:
    create_product(member_api, "llm", "model_api")
    create_version(member_api, "llm", "1.0.0")

    problem = assert_problem(
        member_api.patch(version_url("llm", "1.0.0"), {"upstream_secret": SECRET}), 400, errors=True
    )

    assert problem["errors"] == {"upstream_auth_header": ["Name the header that carries the upstream secret."]}
    assert ProductVersion.objects.get().upstream_secret_encrypted == ""


def test_upstream_settings_are_validated(member_api: Api) -> None:
    create_product(member_api, "llm", "model_api")
    create_version(member_api, "llm", "1.0.0")

    problem = assert_problem(
        member_api.patch(
            version_url("llm", "1.0.0"),
            {"upstream_url": "ftp://files.example.com", "connect_timeout_ms": 5},
        ),
        400,
        errors=True,
    )
    assert problem["errors"] == {"upstream_url": ["Only http:// and https:// URLs are allowed."]}
    problem = assert_problem(member_api.patch(version_url("llm", "1.0.0"), {"connect_timeout_ms": 5}), 400, errors=True)
    assert set(problem["errors"]) == {"connect_timeout_ms"}
    transport = assert_problem(
        member_api.patch(version_url("llm", "1.0.0"), {"mcp_transport": "sse"}), 400, errors=True
    )
    assert all_messages(transport) == "This does not apply to Model API products."


def test_submit_with_missing_pieces_lists_what_is_missing(member_api: Api) -> None:
    create_product(member_api, "llm", "model_api")
    create_version(member_api, "llm", "1.0.0")

    problem = assert_problem(member_api.post(version_url("llm", "1.0.0", "submit/")), 400, errors=True)

    assert problem["errors"] == {"non_field_errors": ["Before review, add an upstream URL, at least one model."]}
    assert ProductVersion.objects.get().status == "draft"


def test_a_member_submits_and_withdraws_a_draft(member_api: Api, model_api_draft: dict[str, Any]) -> None:
    submitted = ok(member_api.post(version_url("llm", "1.0.0", "submit/")))
    assert (submitted["status"], submitted["missing_for_submission"]) == ("in_review", [])
    assert submitted["submitted_at"] is not None
    locked = assert_problem(member_api.patch(version_url("llm", "1.0.0"), {"changelog": "x"}), 400, errors=True)
    assert all_messages(locked) == "Version 1.0.0 is in review; only drafts change. Create a new version instead."

    withdrawn = ok(member_api.post(version_url("llm", "1.0.0", "withdraw/")))

    assert withdrawn["status"] == "draft"
    again = assert_problem(member_api.post(version_url("llm", "1.0.0", "withdraw/")), 400, errors=True)
    assert all_messages(again) == "Version 1.0.0 is draft; this needs it to be in review."
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions[:2] == ["version.withdraw", "version.submit"]


def test_published_versions_are_immutable(member_api: Api, organization: Organization) -> None:
    version = PublishedVersionFactory(
        product__organization=organization, product__slug="llm", product__kind="model_api", version="1.0.0"
    )
    ModelOfferingFactory(version=version, public_name="acme-chat")

    for response in (
        member_api.patch(version_url("llm", "1.0.0"), {"changelog": "Sneaky."}),
        member_api.put(version_url("llm", "1.0.0", "models/"), {"models": MODELS}),
        member_api.delete(version_url("llm", "1.0.0")),
    ):
        problem = assert_problem(response, 400, errors=True)
        assert all_messages(problem) == "Version 1.0.0 is published; only drafts change. Create a new version instead."
    version.refresh_from_db()
    assert (version.changelog, version.status) == ("", "published")
    assert list(ModelOffering.objects.values_list("public_name", flat=True)) == ["acme-chat"]


def test_a_new_version_copies_an_earlier_one(member_api: Api, model_api_draft: dict[str, Any]) -> None:
    ok(member_api.patch(version_url("llm", "1.0.0"), {"upstream_auth_header": "X-Key", "upstream_secret": SECRET}))

    body = create_version(member_api, "llm", "1.1.0", copy_from="1.0.0")

    assert (body["status"], body["upstream_url"], body["has_upstream_secret"]) == ("draft", f"{UPSTREAM}/v1", True)
    assert [m["public_name"] for m in body["models"]] == ["acme-chat"]
    assert AuditEvent.objects.filter(action="version.create").first().changes == {  # type: ignore[union-attr]
        "version": "1.1.0",
        "copied_from": "1.0.0",
    }
    unknown = assert_problem(
        member_api.post(product_url("llm", "versions/"), {"version": "1.2.0", "copy_from": "0.9.0"}), 400, errors=True
    )
    assert unknown["errors"] == {"copy_from": ["Llm has no version 0.9.0."]}


def test_a_member_deletes_a_draft(member_api: Api, model_api_draft: dict[str, Any]) -> None:
    assert member_api.delete(version_url("llm", "1.0.0")).status_code == 204

    assert not ProductVersion.objects.exists()
    assert AuditEvent.objects.get(action="version.delete").changes == {"version": "1.0.0"}


def test_an_admin_deprecates_then_retires_a_published_version(
    member_api: Api, admin_api: Api, staff_api: Api, anonymous_api: Api, model_api_draft: dict[str, Any]
) -> None:
    submit_and_approve(member_api, staff_api, "llm")
    url = version_url("llm", "1.0.0")

    past = assert_problem(admin_api.post(f"{url}deprecate/", {"sunset_at": "2000-01-01T00:00:00Z"}), 400, errors=True)
    assert past["errors"] == {"sunset_at": ["The sunset date must be in the future."]}
    missing = assert_problem(admin_api.post(f"{url}deprecate/", {}), 400, errors=True)
    assert set(missing["errors"]) == {"sunset_at"}
    sunset = timezone.now() + dt.timedelta(days=30)

    deprecated = ok(admin_api.post(f"{url}deprecate/", {"sunset_at": sunset.isoformat()}))

    assert deprecated["status"] == "deprecated"
    catalog = ok(anonymous_api.get("/api/v1/catalog/llm/"))
    assert [(v["version"], v["status"]) for v in catalog["versions"]] == [("1.0.0", "deprecated")]

    retired = ok(admin_api.post(f"{url}retire/"))

    assert retired["status"] == "retired"
    assert_problem(anonymous_api.get("/api/v1/catalog/llm/"), 404)
    assert {"version.deprecate", "version.retire"} <= set(AuditEvent.objects.values_list("action", flat=True))
