"""A consumer creates an app, gets a key (copied once), subscribes to a plan that needs
approval; the provider approves, and the consumer sees the subscription approved."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Organization
from consumers import services
from consumers.models import ApiKey, Subscription
from tests.consumers.pages.helpers import publish_model_api
from tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _sign_in(page: Page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_placeholder("Email address").fill(email)
    page.get_by_placeholder("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()


def test_a_consumer_subscribes_with_a_new_key_and_the_provider_approves(new_page):
    staff = UserFactory(email="reviewer@platform.test", is_staff=True)
    provider = MembershipFactory(
        organization__name="Vendor", organization__slug="vendor", role="owner", user__email="owner@vendor.test"
    ).user
    consumer = MembershipFactory(
        organization__name="Acme", organization__slug="acme", role="owner", user__email="dev@acme.test"
    ).user
    product = publish_model_api(
        owner=provider, staff=staff, organization=Organization.objects.get(slug="vendor"), slug="vendor-llm"
    )
    services.plan_create(
        actor=provider,
        product=product,
        name="Pro",
        price_label="$49 / month",
        requests_per_minute=600,
        approval_required=True,
    )

    # The consumer creates an app...
    page = new_page()
    _sign_in(page, consumer.email)
    page.get_by_role("link", name="Consumer", exact=True).click()
    expect(page.get_by_text("No apps yet")).to_be_visible()
    page.get_by_label("Name").fill("Support bot")
    page.get_by_label("Environment").select_option("production")
    page.get_by_role("button", name="Create app").click()
    expect(page.get_by_role("heading", name="Support bot")).to_be_visible()

    # ...gets a key, shown once, and copies it...
    page.locator("#key-form").get_by_label("Name").fill("server")
    page.get_by_role("button", name="Create key").click()
    dialog = page.locator("dialog.secret-once")
    expect(dialog).to_contain_text("you will not see it again")
    plaintext = page.locator("#new-key").input_value()
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}", plaintext)
    copy = dialog.locator("button[data-copy]")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    expect(page.locator("#keys table")).to_contain_text(plaintext[:11])
    page.reload()
    expect(page.locator("#new-key")).to_have_count(0)
    expect(page.locator("#keys table")).to_contain_text(plaintext[:11])
    assert plaintext not in page.content()
    assert ApiKey.objects.get(prefix=plaintext[:11]).status == "active"

    # ...and subscribes to the plan that needs approval, from the catalog.
    page.goto("/catalog/vendor-llm/")
    panel = page.locator("#subscribe-panel")
    expect(panel.locator("table")).to_contain_text("$49 / month")
    expect(panel.get_by_label("App of Acme")).to_have_value(str(ApiKey.objects.get().app_id))
    panel.get_by_role("radio", name=re.compile(r"\bPro\b")).check()
    panel.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_text("waiting for the provider's approval")).to_be_visible()
    expect(page.locator("#subscriptions .badge")).to_have_text("Pending approval")

    # The provider approves on their subscriptions page.
    vendor = new_page()
    _sign_in(vendor, provider.email)
    vendor.get_by_role("link", name="Provider", exact=True).click()
    vendor.get_by_role("link", name="Subscriptions").click()
    row = vendor.locator("tr", has_text="Support bot")
    expect(row).to_contain_text("Pro plan · $49 / month")
    row.get_by_label("Note to Support bot").fill("Welcome!")
    row.get_by_role("button", name="Approve").click()
    expect(row.locator(".badge")).to_have_text("Approved")
    expect(row.get_by_role("button", name="Suspend")).to_be_visible()
    assert Subscription.objects.get().status == "approved"

    # The consumer sees it approved, with the provider's note and ready-to-run snippets.
    page.reload()
    expect(page.locator("#subscriptions .badge")).to_have_text("Approved")
    expect(page.locator("#subscriptions")).to_contain_text("Welcome!")
    connect = page.locator("details.connect")
    expect(connect).to_contain_text("$PLATFORM_KEY")
    expect(connect).to_contain_text("http://127.0.0.1:8080/v1")
    assert plaintext not in page.content()
