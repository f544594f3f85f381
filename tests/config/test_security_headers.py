"""Security headers, the Content-Security-Policy, and the error pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client, override_settings

from tests.conftest import client_for

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/accounts/signup/"])
def test_pages_carry_the_security_headers(client, path):
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response.headers["Permissions-Policy"]


def test_templates_have_no_inline_scripts_or_handlers():
    """The CSP forbids inline script; a template that used one would silently break."""
    offenders = []
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(r"\son[a-z]+\s*=", text):
            offenders.append(str(template.relative_to(ROOT)))
        if "style=" in text:
            offenders.append(f"{template.relative_to(ROOT)} (inline style)")
    assert offenders == []


def test_htmx_is_vendored_and_served_from_our_origin(client):
    page = client.get("/").content.decode()
    match = re.search(r'<script src="(/static/vendor/htmx/htmx-2\.[0-9.]+\.min\.js)"', page)
    assert match, "htmx is loaded from /static/, never a CDN"
    assert "https://" not in re.sub(r'href="https://[^"]*"', "", page.split("<body")[0])
    assert (ROOT / match.group(1).lstrip("/")).exists()


def test_unknown_page_gets_the_404_page(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_unknown_api_url_gets_problem_json(client):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_forbidden_page_gets_the_403_page(member):
    response = client_for(member).get("/console/")
    assert response.status_code == 403
    assert "Permission denied" in response.content.decode()


def test_console_sends_anonymous_users_to_sign_in(client):
    response = client.get("/console/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/")


@override_settings(DEBUG=False)
def test_a_crash_gets_the_500_page_and_no_traceback(staff, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("gateway_sync.selectors.console_overview", explode)
    client = Client(raise_request_exception=False)
    client.force_login(staff)
    response = client.get("/console/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body
    assert "secret internals" not in body


def test_a_post_without_csrf_token_is_refused(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post("/orgs/", {"name": "Sneaky"})
    assert response.status_code == 403
    assert "expired" in response.content.decode()
