"""Publishing each kind of product through the provider pages, and the catalog pages.

Upstreams are real: OpenAPI documents and agent cards are fetched over loopback HTTP,
and MCP tools are discovered from the demo MCP server built with the `mcp` SDK."""

from __future__ import annotations

import html
import json

import pytest
from django.core import mail
from django.test import Client

from accounts.models import AuditEvent, User
from demo_upstreams import demo_mcp, echo
from demo_upstreams.inprocess import serve_aiohttp, serve_asgi
from marketplace.models import Product, ProductVersion
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

ECHO_OPENAPI = None


@pytest.fixture(scope="module")
def echo_url():
    with serve_aiohttp(echo.create_app()) as url:
        yield url


@pytest.fixture(scope="module")
def mcp_url():
    with serve_asgi(lambda port: demo_mcp.create_app(port=port)) as url:
        yield f"{url}/mcp"


def _create(client: Client, kind: str, slug: str, **extra: str) -> ProductVersion:
    data = {
        "kind": kind,
        "slug": slug,
        "name": slug.replace("-", " ").title(),
        "summary": f"The {slug} product.",
        "visibility": "public",
        "tags": "demo, test",
        "categories": ["developer-tools"],
        **extra,
    }
    response = client.post("/provider/products/new/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    version = ProductVersion.objects.get(product__slug=slug)
    assert response.headers["Location"] == f"/provider/products/{slug}/versions/{version.pk}/"
    return version


def _action(client: Client, version: ProductVersion, action: str, data: dict | None = None, status: int = 302):
    url = f"/provider/products/{version.product.slug}/versions/{version.pk}/{action}/"
    response = client.post(url, data or {})
    assert response.status_code == status, response.content.decode()[:3000]
    version.refresh_from_db()
    return response


def _approve(staff: User, version: ProductVersion, capture) -> None:
    with capture(execute=True):
        response = client_for(staff).post(f"/console/reviews/{version.pk}/approve/")
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.status == ProductVersion.Status.PUBLISHED


def _upstream(url: str, **extra: str) -> dict[str, str]:
    return {"upstream_url": url, "connect_timeout_ms": "5000", "read_timeout_ms": "60000", "tls_verify": "on", **extra}


def test_a_rest_api_is_published_from_an_openapi_url(owner, staff, echo_url, django_capture_on_commit_callbacks):
    client = client_for(owner)
    version = _create(client, "rest_api", "echo-api")
    _action(client, version, "upstream", _upstream(echo_url))
    _action(client, version, "openapi", {"openapi-url": f"{echo_url}/openapi.json"})
    assert version.operations.filter(method="GET", path="/get").exists()
    assert version.spec_source_url == f"{echo_url}/openapi.json"

    with django_capture_on_commit_callbacks(execute=True):
        _action(client, version, "submit")
    assert version.status == ProductVersion.Status.IN_REVIEW
    assert any(staff.email in m.to for m in mail.outbox), "staff are told there is something to review"

    _approve(staff, version, django_capture_on_commit_callbacks)
    assert any(owner.email in m.to and "published" in m.subject for m in mail.outbox)
    page = Client().get("/catalog/echo-api/")
    assert page.status_code == 200
    body = html.unescape(page.content.decode())
    assert "/get" in body
    assert "http://127.0.0.1:8080/api/echo-api/anything" in body, "the curl snippet points at the gateway"


def test_an_invalid_openapi_document_is_explained_and_changes_nothing(owner):
    client = client_for(owner)
    version = _create(client, "rest_api", "broken-api")
    bad = json.dumps({"openapi": "3.1.0", "info": {"title": "x"}, "paths": {"/a": {"get": {"responses": "nope"}}}})
    response = _action(client, version, "openapi", {"openapi-document": bad}, status=400)
    assert "responses" in response.content.decode()
    assert version.spec == {}
    assert not version.operations.exists()


def test_a_model_api_is_published_with_models_and_prices(owner, staff, django_capture_on_commit_callbacks):
    client = client_for(owner)
    version = _create(client, "model_api", "llm-api")
    _action(client, version, "upstream", _upstream("http://127.0.0.1:9102/v1"))
    models = {
        "models-TOTAL_FORMS": "2",
        "models-INITIAL_FORMS": "0",
        "models-MIN_NUM_FORMS": "0",
        "models-MAX_NUM_FORMS": "50",
        "models-0-public_name": "demo-chat",
        "models-0-upstream_name": "demo-chat",
        "models-0-context_window": "8192",
        "models-0-input_price_per_mtok": "0.5",
        "models-0-output_price_per_mtok": "1.5",
        "models-0-capabilities": ["chat", "streaming"],
        "models-1-public_name": "",
        "models-1-context_window": "8192",
        "models-1-input_price_per_mtok": "0",
        "models-1-output_price_per_mtok": "0",
    }
    _action(client, version, "models", models)
    offering = version.models.get()
    assert (offering.public_name, str(offering.output_price_per_mtok)) == ("demo-chat", "1.500000")
    _action(client, version, "submit")
    _approve(staff, version, django_capture_on_commit_callbacks)
    body = html.unescape(Client().get("/catalog/llm-api/").content.decode())
    assert "demo-chat" in body
    assert 'base_url="http://127.0.0.1:8080/v1"' in body


def test_an_mcp_server_is_published_after_live_discovery(owner, staff, mcp_url, django_capture_on_commit_callbacks):
    client = client_for(owner)
    version = _create(client, "mcp_server", "demo-tools-copy")
    _action(client, version, "upstream", _upstream(mcp_url, mcp_transport="streamable_http"))
    _action(client, version, "discover")
    names = set(version.tools.values_list("name", flat=True))
    assert {"add_numbers", "convert_units"} <= names
    assert version.tools.get(name="add_numbers").output_schema, "structured output schemas are kept"
    assert version.spec["discovered_at"]
    _action(client, version, "submit")
    _approve(staff, version, django_capture_on_commit_callbacks)
    body = html.unescape(Client().get("/catalog/demo-tools-copy/").content.decode())
    assert "add_numbers" in body
    assert '"url": "http://127.0.0.1:8080/mcp/demo-tools-copy"' in body


def test_discovery_of_an_unreachable_server_is_explained(owner):
    client = client_for(owner)
    version = _create(client, "mcp_server", "nowhere")
    _action(client, version, "upstream", _upstream("http://127.0.0.1:9/mcp"))
    response = _action(client, version, "discover", status=400)
    assert "127.0.0.1:9" in response.content.decode() or "no answer" in response.content.decode().lower()
    assert not version.tools.exists()


def test_an_agent_is_published_from_its_pasted_card(owner, staff, django_capture_on_commit_callbacks):
    client = client_for(owner)
    version = _create(client, "agent", "helper-agent")
    card = {
        "name": "Helper",
        "description": "Helps.",
        "url": "http://127.0.0.1:9200/a2a",
        "version": "1.0.0",
        "protocolVersion": "0.3.0",
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "summarize", "name": "Summarize", "description": "Summarizes text.", "tags": ["text"]}],
    }
    _action(client, version, "agent_card", {"card-document": json.dumps(card)})
    assert version.upstream_url == "http://127.0.0.1:9200/a2a"
    _action(client, version, "submit")
    _approve(staff, version, django_capture_on_commit_callbacks)
    assert "Summarizes text." in Client().get("/catalog/helper-agent/").content.decode()


def test_submitting_an_incomplete_version_says_what_is_missing(owner):
    client = client_for(owner)
    version = _create(client, "rest_api", "empty-api")
    response = _action(client, version, "submit", status=400)
    assert "an upstream URL, an OpenAPI document" in response.content.decode()
    assert version.status == ProductVersion.Status.DRAFT


def test_a_published_version_cannot_change(owner, staff, echo_url, django_capture_on_commit_callbacks):
    client = client_for(owner)
    version = _create(client, "rest_api", "frozen-api")
    _action(client, version, "upstream", _upstream(echo_url))
    _action(client, version, "openapi", {"openapi-url": f"{echo_url}/openapi.json"})
    _action(client, version, "submit")
    _approve(staff, version, django_capture_on_commit_callbacks)
    response = _action(client, version, "upstream", _upstream("http://127.0.0.1:1/"), status=400)
    assert "only drafts change" in response.content.decode()
    assert version.upstream_url == echo_url


def test_rejection_needs_a_reason_and_returns_the_version_to_draft(owner, staff, django_capture_on_commit_callbacks):
    client = client_for(owner)
    version = _create(client, "agent", "rejected-agent")
    card = {
        "name": "R",
        "description": "R.",
        "url": "http://127.0.0.1:9200/",
        "version": "1",
        "protocolVersion": "0.3.0",
        "capabilities": {},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [],
    }
    _action(client, version, "agent_card", {"card-document": json.dumps(card)})
    _action(client, version, "submit")
    staff_client = client_for(staff)
    staff_client.post(f"/console/reviews/{version.pk}/reject/", {"reason": ""})
    version.refresh_from_db()
    assert version.status == ProductVersion.Status.IN_REVIEW
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(f"/console/reviews/{version.pk}/reject/", {"reason": "Describe the skills."})
    version.refresh_from_db()
    assert (version.status, version.review_note) == (ProductVersion.Status.DRAFT, "Describe the skills.")
    assert any("Describe the skills." in m.body for m in mail.outbox if owner.email in m.to)
    assert (
        "Describe the skills."
        in client.get(f"/provider/products/rejected-agent/versions/{version.pk}/").content.decode()
    )


def test_only_staff_see_the_review_queue(member, staff):
    assert client_for(member).get("/console/reviews/").status_code == 403
    assert client_for(staff).get("/console/reviews/").status_code == 200


def test_outsiders_cannot_see_or_touch_a_providers_products(owner, outsider):
    version = _create(client_for(owner), "rest_api", "secret-api")
    client = client_for(outsider)
    assert client.get("/provider/products/secret-api/").status_code == 404
    assert client.get(f"/provider/products/secret-api/versions/{version.pk}/").status_code == 404
    assert client.post(f"/provider/products/secret-api/versions/{version.pk}/delete/").status_code == 404
    assert ProductVersion.objects.filter(pk=version.pk).exists()


def test_unpublished_and_private_products_stay_out_of_the_catalog(owner, outsider, member):
    _create(client_for(owner), "rest_api", "draft-api")
    assert Client().get("/catalog/draft-api/").status_code == 404
    assert "Draft Api" not in Client().get("/catalog/").content.decode()


def test_markdown_descriptions_are_sanitised(owner, staff, django_capture_on_commit_callbacks):
    client = client_for(owner)
    version = _create(
        client, "agent", "xss-agent", description="Hi <script>alert(1)</script> [x](javascript:alert(1)) **bold**"
    )
    card = {
        "name": "X",
        "description": "X.",
        "url": "http://127.0.0.1:9200/",
        "version": "1",
        "protocolVersion": "0.3.0",
        "capabilities": {},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [],
    }
    _action(client, version, "agent_card", {"card-document": json.dumps(card)})
    _action(client, version, "submit")
    _approve(staff, version, django_capture_on_commit_callbacks)
    body = Client().get("/catalog/xss-agent/").content.decode()
    assert "<strong>bold</strong>" in body
    assert "<script>alert(1)" not in body
    assert "javascript:alert" not in body


def test_product_actions_are_audited(owner):
    version = _create(client_for(owner), "rest_api", "audited-api")
    actions = set(AuditEvent.objects.filter(organization=version.product.organization).values_list("action", flat=True))
    assert {"product.create", "version.create"} <= actions


def test_a_duplicate_slug_is_refused_on_the_form(owner):
    client = client_for(owner)
    _create(client, "rest_api", "taken")
    response = client.post(
        "/provider/products/new/",
        {"kind": "rest_api", "slug": "taken", "name": "Again", "summary": "Again.", "visibility": "public"},
    )
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert Product.objects.filter(slug="taken").count() == 1
