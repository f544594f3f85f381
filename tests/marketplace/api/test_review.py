"""Review through the API: a submitted version waits in the staff queue; staff approve it
(the provider's owners and admins are emailed) or reject it with a reason (emailed too).
Only staff review; every step is audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from accounts.models import AuditEvent, User
from marketplace.models import ProductVersion
from tests.marketplace.api.documents import UPSTREAM
from tests.marketplace.api.helpers import Api, assert_problem, create_product, create_version, ok, version_url

PROVIDER_ADMINS = ["admin@acme.test", "owner@acme.test"]


@pytest.fixture
def submitted(
    member_api: Api, owner: User, admin_member: User, staff: User, django_capture_on_commit_callbacks: Any
) -> dict[str, Any]:
    """Model API "llm" 1.0.0, submitted by a member (the staff notification captured)."""
    create_product(member_api, "llm", "model_api")
    create_version(member_api, "llm", "1.0.0")
    ok(member_api.patch(version_url("llm", "1.0.0"), {"upstream_url": f"{UPSTREAM}/v1"}))
    ok(member_api.put(version_url("llm", "1.0.0", "models/"), {"models": [{"public_name": "acme-chat"}]}))
    with django_capture_on_commit_callbacks(execute=True):
        return ok(member_api.post(version_url("llm", "1.0.0", "submit/")))  # type: ignore[no-any-return]


def test_submitting_emails_staff_and_queues_the_version(
    submitted: dict[str, Any], staff_api: Api, member: User
) -> None:
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["staff@platform.test"]
    assert "Llm 1.0.0 is waiting for review" in message.subject
    event = AuditEvent.objects.get(action="version.submit")
    assert (event.actor, event.target_id) == (member, str(submitted["id"]))

    queue = ok(staff_api.get("/api/v1/reviews/"))

    assert queue["count"] == 1
    entry = queue["results"][0]
    assert (entry["id"], entry["version"], entry["status"]) == (submitted["id"], "1.0.0", "in_review")
    assert entry["product"] == {"slug": "llm", "name": "Llm", "kind": "model_api", "organization": "acme"}


def test_staff_approve_and_the_providers_admins_are_emailed(
    submitted: dict[str, Any], staff_api: Api, staff: User, django_capture_on_commit_callbacks: Any
) -> None:
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        body = ok(staff_api.post(f"/api/v1/reviews/{submitted['id']}/approve/"))

    assert body["status"] == "published"
    assert body["published_at"] is not None
    assert [sorted(m.to) for m in mail.outbox] == [PROVIDER_ADMINS]
    assert "Llm 1.0.0 is published" in mail.outbox[0].subject
    event = AuditEvent.objects.get(action="version.approve")
    assert (event.actor, event.organization.slug) == (staff, "acme")  # type: ignore[union-attr]
    assert ok(staff_api.get("/api/v1/reviews/"))["count"] == 0
    again = assert_problem(staff_api.post(f"/api/v1/reviews/{submitted['id']}/approve/"), 400, errors=True)
    assert again["errors"] == {"non_field_errors": ["Version 1.0.0 is published; this needs it to be in review."]}


def test_a_rejection_needs_a_reason_which_is_emailed_to_the_provider(
    submitted: dict[str, Any], staff_api: Api, django_capture_on_commit_callbacks: Any
) -> None:
    url = f"/api/v1/reviews/{submitted['id']}/reject/"
    mail.outbox.clear()

    for body in ({}, {"reason": "   "}):
        problem = assert_problem(staff_api.post(url, body), 400, errors=True)
        assert problem["errors"] == {"reason": ["Tell the provider why: the reason is emailed to them."]}
    assert ProductVersion.objects.get().status == "in_review"

    with django_capture_on_commit_callbacks(execute=True):
        rejected = ok(staff_api.post(url, {"reason": "The models have no prices."}))

    assert (rejected["status"], rejected["review_note"]) == ("draft", "The models have no prices.")
    assert [sorted(m.to) for m in mail.outbox] == [PROVIDER_ADMINS]
    assert "The models have no prices." in str(mail.outbox[0].body)
    assert AuditEvent.objects.get(action="version.reject").changes == {"reason": "The models have no prices."}


@pytest.mark.parametrize("persona", ["owner_api", "admin_api", "member_api", "outsider_api"])
def test_only_staff_review(submitted: dict[str, Any], persona: str, request: pytest.FixtureRequest) -> None:
    api: Api = request.getfixturevalue(persona)

    for response in (
        api.get("/api/v1/reviews/"),
        api.post(f"/api/v1/reviews/{submitted['id']}/approve/"),
        api.post(f"/api/v1/reviews/{submitted['id']}/reject/", {"reason": "No."}),
    ):
        problem = assert_problem(response, 403)
        assert problem["detail"] == "Only platform staff review versions."
    assert ProductVersion.objects.get().status == "in_review"


def test_anonymous_users_cannot_review(submitted: dict[str, Any], anonymous_api: Api) -> None:
    assert anonymous_api.get("/api/v1/reviews/").status_code in {401, 403}
    assert anonymous_api.post(f"/api/v1/reviews/{submitted['id']}/approve/").status_code in {401, 403}


def test_reviewing_an_unknown_version_is_404(staff_api: Api) -> None:
    assert_problem(staff_api.post("/api/v1/reviews/999999/approve/"), 404)
