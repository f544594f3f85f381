"""A provider registers an MCP server, an admin approves it, it appears in the catalog,
and search by meaning finds it for a question that shares no word with its name or
summary."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from demo_upstreams.inprocess import serve_asgi
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.fixtures_mcp import app_for, weather_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def weather_mcp_url():
    with serve_asgi(lambda port: app_for(weather_server(), port)) as url:
        yield f"{url}/mcp"


def _sign_in(page: Page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_placeholder("Email address").fill(email)
    page.get_by_placeholder("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()


def test_provider_publishes_an_mcp_server_that_semantic_search_finds(new_page, weather_mcp_url):
    provider = MembershipFactory(organization__name="Skies Inc", organization__slug="skies-inc", role="owner").user
    admin = UserFactory(email="reviewer@platform.test", is_staff=True)

    page = new_page()
    _sign_in(page, provider.email)
    page.get_by_role("link", name="Provider", exact=True).click()
    page.get_by_role("link", name="New product").first.click()
    page.get_by_label("MCP server").check()
    page.get_by_label("Slug").fill("skies")
    page.get_by_label("Name").fill("Skies")
    page.get_by_label("Summary").fill("Hyperlocal conditions for any place on Earth.")
    page.get_by_role("button", name="Create product").click()
    expect(page.get_by_role("heading", name=re.compile("Skies"))).to_be_visible()

    page.get_by_label("Upstream URL").fill(weather_mcp_url)
    page.get_by_role("button", name="Save upstream").click()
    expect(page.get_by_text("Upstream saved.")).to_be_visible()
    page.get_by_role("button", name="Discover tools").click()
    expect(page.get_by_text("Discovered 2 tools.")).to_be_visible()
    expect(page.locator("details.tool").filter(has_text="get_forecast")).to_be_visible()
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_text("Submitted for review.")).to_be_visible()

    reviewer = new_page()
    _sign_in(reviewer, admin.email)
    reviewer.get_by_role("link", name="Admin console").click()
    reviewer.get_by_role("link", name=re.compile("Reviews")).first.click()
    reviewer.get_by_role("button", name="Approve and publish").click()
    expect(reviewer.get_by_text("Published Skies 1.0.0.")).to_be_visible()

    visitor = new_page()
    visitor.goto("/catalog/")
    expect(visitor.get_by_role("heading", name="Skies")).to_be_visible()
    visitor.get_by_label("Search").fill("will it rain tomorrow")
    visitor.get_by_label("Match").select_option("semantic")
    visitor.get_by_role("button", name="Search").click()
    first = visitor.locator("#catalog-results .product-card").first
    expect(first).to_contain_text("Skies")
    expect(first).to_contain_text("get_forecast")
    first.click()
    expect(visitor.get_by_role("heading", name="Skies")).to_be_visible()
    expect(visitor.get_by_text('"url": "http://127.0.0.1:8080/mcp/skies"')).to_be_visible()
