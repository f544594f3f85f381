"""The provider's subscriptions page: the requests to their products, by status, and the
decisions (approve, reject with a reason, suspend, resume), each emailed and audited.
Acme is the provider here; Buyer's app subscribes."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, Organization, User
from consumers import services
from consumers.models import ConsumerApp, Plan, Subscription
from marketplace.models import Product
from tests.conftest import client_for
from tests.consumers.pages.helpers import text

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def gold(owner: User, acme_product: Product) -> Plan:
    return services.plan_create(
        actor=owner, product=acme_product, name="Gold", price_label="$99 / month", approval_required=True
    )


@pytest.fixture
def pending(buyer: User, buyer_app: ConsumerApp, acme_product: Product, gold: Plan) -> Subscription:
    return services.subscription_request(actor=buyer, app=buyer_app, product=acme_product, plan=gold)


def _decide(user: User, subscription: Subscription, action: str, note: str = "", **extra: str):
    url = f"/provider/subscriptions/{subscription.pk}/{action}/"
    return client_for(user).post(url, {"note": note, "tab": "pending"}, **extra)


def test_anonymous_visitors_are_sent_to_sign_in(pending):
    response = Client().get("/provider/subscriptions/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("persona", "sees"),
    [("owner", True), ("admin_member", True), ("member", False), ("outsider", False), ("staff", True)],
)
def test_who_sees_the_pending_requests(request, pending, persona, sees):
    response = client_for(request.getfixturevalue(persona)).get("/provider/subscriptions/")
    assert response.status_code == 200
    page = text(response)
    assert (f'id="subscription-{pending.pk}"' in page) == sees


def test_a_member_is_told_who_decides(member, pending):
    page = text(client_for(member).get("/provider/subscriptions/"))
    assert "organizations where you are an admin or an owner" in page


def test_the_list_filters_by_status_and_defaults_to_pending(owner, pending, buyer, buyer_app, acme_product):
    client = client_for(owner)
    page = text(client.get("/provider/subscriptions/"))
    assert 'href="/provider/subscriptions/?status=pending" aria-current="page"' in page
    assert "Buyer app" in page
    assert "Gold plan · $99 / month" in page
    assert "owner@buyer.test" in page
    assert f'id="subscription-{pending.pk}"' not in text(client.get("/provider/subscriptions/?status=approved"))
    assert f'id="subscription-{pending.pk}"' in text(client.get("/provider/subscriptions/?status=all"))
    # An unknown status falls back to pending.
    assert f'id="subscription-{pending.pk}"' in text(client.get("/provider/subscriptions/?status=nonsense"))


def test_the_list_does_not_query_once_per_subscription(owner, buyer, acme_product, gold, pending):
    client = client_for(owner)
    with CaptureQueriesContext(connection) as one:
        client.get("/provider/subscriptions/")
    buyer_org = Organization.objects.get(slug="buyer")
    for n in range(4):
        app = services.app_create(actor=buyer, organization=buyer_org, name=f"App {n}")
        services.subscription_request(actor=buyer, app=app, product=acme_product, plan=gold)
    with CaptureQueriesContext(connection) as five:
        client.get("/provider/subscriptions/")
    assert len(five) == len(one)


def test_the_list_has_an_empty_state(owner, acme_product):
    assert "No request waits for a decision." in text(client_for(owner).get("/provider/subscriptions/"))


def test_the_provider_and_console_pages_link_to_it(owner, staff, acme_product):
    assert 'href="/provider/subscriptions/"' in text(client_for(owner).get("/provider/"))
    assert 'href="/provider/subscriptions/"' in text(client_for(staff).get("/console/"))


def test_approving_swaps_the_row_emails_the_consumer_and_is_audited(owner, pending, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _decide(owner, pending, "approve", "Welcome aboard.", **HTMX)
    assert response.status_code == 200
    row = text(response)
    assert row.startswith(f'<tr id="subscription-{pending.pk}">')
    assert "sub-approved" in row
    assert "Approved: the consumer&#x27;s keys now work with the product." in row
    assert "Suspend" in row  # the next possible decision
    pending.refresh_from_db()
    assert (pending.status, pending.decided_by, pending.decision_note) == ("approved", owner, "Welcome aboard.")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["owner@buyer.test"]
    assert "Buyer app can use Acme Llm" in mail.outbox[0].subject
    assert "Welcome aboard." in mail.outbox[0].body
    event = AuditEvent.objects.get(action="subscription.approve", target_id=str(pending.pk))
    assert event.actor == owner
    assert event.changes["status"] == "approved"


def test_approving_without_htmx_redirects_back_to_the_list(owner, pending):
    response = _decide(owner, pending, "approve")
    assert response.status_code == 302
    assert response.headers["Location"] == "/provider/subscriptions/?status=pending"


def test_rejecting_needs_a_reason(owner, pending):
    response = _decide(owner, pending, "reject", "  ", **HTMX)
    assert response.status_code == 400
    row = text(response)
    assert row.startswith(f'<tr id="subscription-{pending.pk}">')
    assert "Tell the consumer why: the reason is emailed to them." in row
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert not mail.outbox


def test_rejecting_without_htmx_shows_the_error_on_the_list(owner, pending):
    response = _decide(owner, pending, "reject")
    assert response.status_code == 400
    page = text(response)
    assert "<h1>Subscriptions</h1>" in page
    assert "Tell the consumer why: the reason is emailed to them." in page


def test_rejecting_emails_the_reason(owner, pending, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _decide(owner, pending, "reject", "We only serve hospitals.", **HTMX)
    assert response.status_code == 200
    assert "sub-rejected" in text(response)
    pending.refresh_from_db()
    assert pending.status == "rejected"
    assert [m.to for m in mail.outbox] == [["owner@buyer.test"]]
    assert "We only serve hospitals." in mail.outbox[0].body
    assert AuditEvent.objects.filter(action="subscription.reject", target_id=str(pending.pk)).exists()


def test_suspending_and_resuming(owner, pending, django_capture_on_commit_callbacks):
    services.subscription_approve(actor=owner, subscription=pending)
    response = _decide(owner, pending, "suspend", "", **HTMX)
    assert response.status_code == 400
    assert "Tell the consumer why" in text(response)
    with django_capture_on_commit_callbacks(execute=True):
        response = _decide(owner, pending, "suspend", "Unpaid invoice.", **HTMX)
    assert response.status_code == 200
    assert "Resume" in text(response)
    pending.refresh_from_db()
    assert (pending.status, pending.decision_note) == ("suspended", "Unpaid invoice.")
    assert [m.to for m in mail.outbox] == [["owner@buyer.test"]]
    assert "Unpaid invoice." in mail.outbox[0].body
    with django_capture_on_commit_callbacks(execute=True):
        response = _decide(owner, pending, "resume", **HTMX)
    assert response.status_code == 200
    pending.refresh_from_db()
    assert pending.status == "approved"
    assert len(mail.outbox) == 2
    assert mail.outbox[1].to == ["owner@buyer.test"]
    actions = set(AuditEvent.objects.filter(target_id=str(pending.pk)).values_list("action", flat=True))
    assert {"subscription.suspend", "subscription.resume"} <= actions


def test_a_decision_on_the_wrong_status_says_why(owner, pending):
    response = _decide(owner, pending, "resume", **HTMX)
    assert response.status_code == 400
    assert "This subscription is pending approval; this needs it suspended." in text(response)


def test_an_unknown_decision_is_not_found(owner, pending):
    assert _decide(owner, pending, "promote").status_code == 404


@pytest.mark.parametrize(
    ("persona", "status"),
    [("owner", 200), ("admin_member", 200), ("member", 403), ("outsider", 404), ("staff", 200), ("buyer", 403)],
)
def test_who_decides(request, pending, persona, status):
    response = _decide(request.getfixturevalue(persona), pending, "approve", **HTMX)
    assert response.status_code == status
    pending.refresh_from_db()
    assert pending.status == ("approved" if status == 200 else "pending")


@pytest.mark.parametrize(("persona", "status"), [("member", 403), ("outsider", 404), ("buyer", 403)])
def test_who_may_not_reject_suspend_or_resume(request, owner, pending, persona, status):
    user = request.getfixturevalue(persona)
    assert _decide(user, pending, "reject", "No.").status_code == status
    services.subscription_approve(actor=owner, subscription=pending)
    assert _decide(user, pending, "suspend", "No.").status_code == status
    services.subscription_suspend(actor=owner, subscription=pending, note="Paused.")
    assert _decide(user, pending, "resume").status_code == status
    pending.refresh_from_db()
    assert pending.status == "suspended"
