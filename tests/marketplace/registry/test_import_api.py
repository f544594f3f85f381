"""POST /api/v1/registry/import/: who may import, what it answers, its OpenAPI entry."""

from __future__ import annotations

import json
from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

from accounts.models import Organization, User
from marketplace.models import Product
from tests.conftest import client_for
from tests.marketplace.registry.conftest import LOOPBACK_URL, server

pytestmark = pytest.mark.django_db


def test_a_member_imports_through_the_api(organization: Organization, member: User) -> None:
    document = {
        "servers": [
            {"server": server("com.example/weather")},
            {"server": server("com.example/local", url="")},
            {"server": {}},
        ]
    }

    response = client_for(member).post(
        "/api/v1/registry/import/", {"organization": "acme", "document": document}, content_type="application/json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["created"] == [
        {
            "index": 0,
            "name": "com.example/weather",
            "version": "1.0.0",
            "product_slug": "weather",
            "upstream_url": LOOPBACK_URL,
            "transport": "streamable_http",
            "notes": [],
        }
    ]
    assert [(s["index"], s["name"]) for s in body["skipped"]] == [(1, "com.example/local")]
    assert body["errors"][0]["index"] == 2
    assert "servers[2].server: 'name' is required" in body["errors"][0]["errors"]


def test_the_api_accepts_the_document_as_json_text_and_reports_required_headers(
    organization: Organization, member: User
) -> None:
    document = server("com.example/keyed")
    document["remotes"][0]["headers"] = [{"name": "X-Api-Key", "isRequired": True, "isSecret": True}]

    response = client_for(member).post(
        "/api/v1/registry/import/",
        {"organization": "acme", "document": json.dumps(document)},
        content_type="application/json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["created"][0]["notes"] == [
        "The server expects the header X-Api-Key (a secret): set the upstream credentials."
    ]


def test_an_outsider_gets_404_for_another_organization(organization: Organization, outsider: User) -> None:
    response = client_for(outsider).post(
        "/api/v1/registry/import/",
        {"organization": "acme", "document": server("com.example/weather")},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert not Product.objects.exists()


def test_an_anonymous_client_cannot_import(organization: Organization) -> None:
    response = Client().post(
        "/api/v1/registry/import/",
        {"organization": "acme", "document": server("com.example/weather")},
        content_type="application/json",
    )
    assert response.status_code in {401, 403}
    assert not Product.objects.exists()


def test_the_api_answers_a_bad_request_with_the_field_in_error(organization: Organization, member: User) -> None:
    client = client_for(member)
    missing = client.post("/api/v1/registry/import/", {"document": {}}, content_type="application/json")
    assert missing.status_code == 400
    assert "organization" in missing.json()["errors"]

    shapeless = client.post(
        "/api/v1/registry/import/", {"organization": "acme", "document": 7}, content_type="application/json"
    )
    assert shapeless.status_code == 400
    assert "Give a server.json" in shapeless.json()["errors"]["document"][0]


def test_staff_who_are_not_members_cannot_import_either(organization: Organization, staff: User) -> None:
    # Staff may see every organization, but importing creates products: a member's act.
    response = client_for(staff).post(
        "/api/v1/registry/import/",
        {"organization": "acme", "document": server("com.example/weather")},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert not Product.objects.exists()


def test_the_api_takes_json_only(organization: Organization, member: User) -> None:
    response = client_for(member).post("/api/v1/registry/import/", {"organization": "acme", "document": "{}"})
    assert response.status_code == 415


def test_the_import_endpoint_is_in_the_openapi_schema_without_warnings() -> None:
    out = StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    operation = yaml.safe_load(out.getvalue())["paths"]["/api/v1/registry/import/"]["post"]
    assert list(operation["requestBody"]["content"]) == ["application/json"]
    assert set(operation["responses"]) == {"200", "400", "403", "404"}
