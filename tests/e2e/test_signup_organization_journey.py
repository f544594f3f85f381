"""A newcomer signs up, verifies their email, creates an organization and invites a
colleague, who signs up and joins it."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from accounts.models import AuditEvent, Membership, Role

PASSWORD = "a-long-enough-password-1"

pytestmark = pytest.mark.django_db(transaction=True)


def _link_in_email(to: str, pattern: str) -> str:
    messages = [m for m in mail.outbox if to in m.to]
    assert messages, f"no email to {to}"
    match = re.search(pattern, messages[-1].body)
    assert match, messages[-1].body
    return match.group(0)


def _sign_up_and_verify(page: Page, email: str) -> None:
    page.goto("/accounts/signup/")
    page.get_by_placeholder("Email address").fill(email)
    page.get_by_placeholder("Password", exact=True).fill(PASSWORD)
    page.get_by_placeholder("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()

    link = _link_in_email(email, r"https?://[^\s]+/accounts/confirm-email/[^/\s]+/")
    page.goto(re.sub(r"^https?://[^/]+", "", link))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()


def test_sign_up_verify_create_an_organization_and_invite_a_member(new_page, live_server):
    founder = new_page()
    _sign_up_and_verify(founder, "founder@startup.test")

    founder.get_by_role("link", name="Create an organization").click()
    founder.get_by_label("Name").fill("Startup Labs")
    founder.get_by_role("button", name="Create organization").click()
    expect(founder.get_by_role("heading", name="Startup Labs")).to_be_visible()
    expect(founder.locator("#org-switch")).to_have_value("startup-labs")

    invitations = founder.locator("#invitations")
    invitations.get_by_label("Email").fill("colleague@startup.test")
    invitations.get_by_label("Role").select_option("admin")
    invitations.get_by_role("button", name="Send invitation").click()
    expect(invitations.get_by_role("cell", name="colleague@startup.test")).to_be_visible()
    expect(invitations.get_by_text("Invitation sent to colleague@startup.test.")).to_be_visible()

    # Bad input is answered in place, and nothing is sent twice.
    invitations.get_by_label("Email").fill("colleague@startup.test")
    invitations.get_by_role("button", name="Send invitation").click()
    expect(invitations.get_by_text("already has a pending invitation")).to_be_visible()
    assert len([m for m in mail.outbox if "colleague@startup.test" in m.to]) == 1

    colleague = new_page()
    invite_link = _link_in_email("colleague@startup.test", r"https?://[^\s]+/invitations/[A-Za-z0-9]+/")
    _sign_up_and_verify(colleague, "colleague@startup.test")
    colleague.goto(re.sub(r"^https?://[^/]+", "", invite_link))
    expect(colleague.get_by_role("heading", name="Join Startup Labs")).to_be_visible()
    colleague.get_by_role("button", name="Accept invitation").click()
    expect(colleague.get_by_text("Welcome to Startup Labs.")).to_be_visible()
    expect(colleague.locator("#members").get_by_role("cell", name="founder@startup.test", exact=True)).to_be_visible()

    assert Membership.objects.get(user__email="colleague@startup.test").role == Role.ADMIN
    founder.reload()
    expect(founder.locator("#members").get_by_role("cell", name="colleague@startup.test", exact=True)).to_be_visible()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"organization.create", "invitation.create", "invitation.accept"} <= actions
