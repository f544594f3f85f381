"""Subscribing from the catalog's product page, and the subscriptions on the app page:
status, the provider's note, cancelling, and the Connect panel's snippets."""

from __future__ import annotations

import html

import pytest
from django.core import mail
from django.test import Client

from accounts.models import AuditEvent, Organization
from consumers import services
from consumers.models import Subscription
from marketplace.models import Product
from tests.conftest import client_for
from tests.consumers.pages.helpers import publish_model_api, text

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_everyone_sees_the_plans_and_anonymous_visitors_are_asked_to_sign_in(vendor_product, pro_plan):
    page = text(Client().get(f"/catalog/{vendor_product.slug}/"))
    assert 'id="subscribe-panel"' in page
    assert "Pro" in page
    assert "$49 / month" in page
    assert "600 requests/minute" in page
    assert "1000000 tokens/day" in page
    assert "needs the provider's approval" in page
    assert "automatic" in page  # the default Free plan
    assert f'href="/accounts/login/?next=/catalog/{vendor_product.slug}/"' in page
    assert "Sign in to subscribe" in page
    assert 'name="plan"' not in page


def test_signed_in_users_choose_one_of_their_apps_and_a_plan(owner, app, vendor_product, free_plan, pro_plan):
    page = text(client_for(owner).get(f"/catalog/{vendor_product.slug}/"))
    assert f'<option value="{app.pk}">Support bot (production)</option>' in page
    assert f'value="{free_plan.pk}" required checked>' in page
    assert f'value="{pro_plan.pk}" required>' in page
    assert "Pro · $49 / month · needs approval" in page


def test_an_organization_without_apps_is_asked_to_create_one(owner, vendor_product):
    page = text(client_for(owner).get(f"/catalog/{vendor_product.slug}/"))
    assert "Acme has no app yet." in page
    assert 'href="/consumer/"' in page


def test_a_user_without_an_organization_is_asked_to_create_one(staff, vendor_product):
    page = text(client_for(staff).get(f"/catalog/{vendor_product.slug}/"))
    assert "Create an organization</a>, then an app, to subscribe." in page


def test_subscribing_to_an_automatic_plan_is_approved_at_once(
    owner, app, vendor_product, free_plan, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).post(
            f"/consumer/subscribe/{vendor_product.slug}/", {"app": app.pk, "plan": free_plan.pk}, follow=True
        )
    assert response.redirect_chain == [(f"/consumer/apps/{app.pk}/", 302)]
    subscription = Subscription.objects.get(app=app)
    assert (subscription.status, subscription.plan) == ("approved", free_plan)
    page = text(response)
    assert "Support bot is subscribed to Vendor Llm: approved, ready to call." in page
    assert "sub-approved" in page
    assert [m.to for m in mail.outbox] == [["owner@acme.test"]]
    assert AuditEvent.objects.filter(action="subscription.request", target_id=str(subscription.pk)).exists()


def test_subscribing_to_a_plan_that_needs_approval_waits(
    owner, app, vendor_product, pro_plan, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/consumer/subscribe/{vendor_product.slug}/", {"app": app.pk, "plan": pro_plan.pk}, HTTP_HX_REQUEST="true"
        )
    assert response.headers["HX-Redirect"] == f"/consumer/apps/{app.pk}/"
    assert Subscription.objects.get(app=app).status == "pending"
    assert [m.to for m in mail.outbox] == [["owner@vendor.test"]]
    page = text(client.get(f"/consumer/apps/{app.pk}/"))
    assert "waiting for the provider&#x27;s approval" in page
    assert "Pending approval" in page
    assert "Waiting for Vendor to approve." in page
    assert "Connect" not in page  # no snippets before approval


def test_subscribing_twice_says_so(owner, app, vendor_product, free_plan, pro_plan):
    services.subscription_request(actor=owner, app=app, product=vendor_product, plan=pro_plan)
    response = client_for(owner).post(
        f"/consumer/subscribe/{vendor_product.slug}/", {"app": app.pk, "plan": free_plan.pk}, **HTMX
    )
    assert response.status_code == 400
    page = text(response)
    assert page.startswith('<section class="card" id="subscribe-panel">')
    assert "Support bot is already subscribed to Vendor Llm; change or cancel that subscription." in page
    assert Subscription.objects.count() == 1


def test_subscribing_without_choices_gets_field_errors_on_its_own_page(owner, app, vendor_product, free_plan):
    response = client_for(owner).post(f"/consumer/subscribe/{vendor_product.slug}/", {})
    assert response.status_code == 400
    page = text(response)
    assert "<h1>Subscribe to Vendor Llm</h1>" in page
    assert page.count("This field is required.") == 2
    assert not Subscription.objects.exists()


def test_an_archived_plan_is_not_offered_and_cannot_be_chosen(owner, vendor, app, vendor_product, pro_plan):
    services.plan_archive(actor=vendor, plan=pro_plan)
    client = client_for(owner)
    assert "$49 / month" not in text(client.get(f"/catalog/{vendor_product.slug}/"))
    response = client.post(f"/consumer/subscribe/{vendor_product.slug}/", {"app": app.pk, "plan": pro_plan.pk})
    assert response.status_code == 400
    assert "Select a valid choice." in text(response)
    assert not Subscription.objects.exists()


def test_a_plan_of_another_product_cannot_be_chosen(owner, app, vendor_product, acme_product):
    other_plan = acme_product.plans.get()
    response = client_for(owner).post(
        f"/consumer/subscribe/{vendor_product.slug}/", {"app": app.pk, "plan": other_plan.pk}
    )
    assert response.status_code == 400
    assert not Subscription.objects.exists()


def test_outsiders_cannot_subscribe_another_organizations_app(outsider, app, vendor_product, free_plan):
    services.app_create(actor=outsider, organization=Organization.objects.get(slug="other"), name="Theirs")
    response = client_for(outsider).post(
        f"/consumer/subscribe/{vendor_product.slug}/", {"app": app.pk, "plan": free_plan.pk}
    )
    assert response.status_code == 400
    assert "Select a valid choice." in text(response)
    assert not Subscription.objects.exists()


def test_a_private_product_is_not_found_by_outsiders(owner, outsider, staff, app):
    private = publish_model_api(
        owner=outsider,
        staff=staff,
        organization=Organization.objects.get(slug="other"),
        slug="secret-llm",
        visibility=Product.Visibility.PRIVATE,
    )
    plan = private.plans.get()
    client = client_for(owner)
    assert client.get("/catalog/secret-llm/").status_code == 404
    assert client.get("/consumer/subscribe/secret-llm/").status_code == 404
    assert client.post("/consumer/subscribe/secret-llm/", {"app": app.pk, "plan": plan.pk}).status_code == 404
    assert not Subscription.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in_to_subscribe(vendor_product, app, free_plan):
    response = Client().post(f"/consumer/subscribe/{vendor_product.slug}/", {"app": app.pk, "plan": free_plan.pk})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/")


# --- On the app page ---------------------------------------------------------------------


def test_an_approved_subscription_has_a_connect_panel_with_the_placeholder_key(owner, app, vendor_product, free_plan):
    _key, plaintext = services.api_key_create(actor=owner, app=app, name="server")
    subscription = services.subscription_request(actor=owner, app=app, product=vendor_product, plan=free_plan)
    page = html.unescape(text(client_for(owner).get(f"/consumer/apps/{app.pk}/")))
    assert "<summary>Connect</summary>" in page
    assert "OpenAI SDK (Python)" in page
    assert 'base_url="http://127.0.0.1:8080/v1", api_key="$PLATFORM_KEY"' in page
    assert 'model="chat-' in page  # one of the product's models
    assert f'data-copy="#snippet-{subscription.pk}-1"' in page
    assert plaintext not in page


def test_the_providers_note_is_shown_with_the_status(owner, vendor, app, vendor_product, pro_plan):
    subscription = services.subscription_request(actor=owner, app=app, product=vendor_product, plan=pro_plan)
    services.subscription_reject(actor=vendor, subscription=subscription, note="Tell us your use case first.")
    page = text(client_for(owner).get(f"/consumer/apps/{app.pk}/"))
    assert "sub-rejected" in page
    assert "Reason from the provider:</strong> Tell us your use case first." in page


# Platform staff may end any subscription (the service allows it, for abuse); the page
# offers them no button, since they are not members.
@pytest.mark.parametrize(("persona", "status"), [("member", 200), ("outsider", 404), ("staff", 200)])
def test_who_cancels_a_subscription(request, owner, app, vendor_product, free_plan, persona, status):
    subscription = services.subscription_request(actor=owner, app=app, product=vendor_product, plan=free_plan)
    response = client_for(request.getfixturevalue(persona)).post(
        f"/consumer/apps/{app.pk}/subscriptions/{subscription.pk}/cancel/", **HTMX
    )
    assert response.status_code == status
    subscription.refresh_from_db()
    assert subscription.status == ("cancelled" if status == 200 else "approved")


def test_cancelling_tells_the_provider_and_shows_the_new_status(
    owner, app, vendor_product, free_plan, django_capture_on_commit_callbacks
):
    subscription = services.subscription_request(actor=owner, app=app, product=vendor_product, plan=free_plan)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).post(f"/consumer/apps/{app.pk}/subscriptions/{subscription.pk}/cancel/", **HTMX)
    page = text(response)
    assert page.startswith('<div id="subscriptions">')
    assert "sub-cancelled" in page
    assert [m.to for m in mail.outbox] == [["owner@vendor.test"]]
    assert AuditEvent.objects.filter(action="subscription.cancel", target_id=str(subscription.pk)).exists()


def test_cancelling_twice_says_why_not(owner, app, vendor_product, free_plan):
    subscription = services.subscription_request(actor=owner, app=app, product=vendor_product, plan=free_plan)
    services.subscription_cancel(actor=owner, subscription=subscription)
    response = client_for(owner).post(f"/consumer/apps/{app.pk}/subscriptions/{subscription.pk}/cancel/", **HTMX)
    assert response.status_code == 400
    assert "This subscription is cancelled" in text(response)


def test_a_subscription_of_another_app_is_not_found_under_this_one(owner, organization, app, vendor_product, free_plan):
    other = services.app_create(actor=owner, organization=organization, name="Other")
    subscription = services.subscription_request(actor=owner, app=other, product=vendor_product, plan=free_plan)
    response = client_for(owner).post(f"/consumer/apps/{app.pk}/subscriptions/{subscription.pk}/cancel/")
    assert response.status_code == 404


def test_the_subscribe_panel_also_has_a_page_of_its_own(owner, app, vendor_product, free_plan):
    page = text(client_for(owner).get(f"/consumer/subscribe/{vendor_product.slug}/"))
    assert "<h1>Subscribe to Vendor Llm</h1>" in page
    assert f'<option value="{app.pk}">Support bot (production)</option>' in page
