"""Publishing a REST API end to end through the API: its OpenAPI document pasted or
fetched from a URL (a real HTTP server on loopback), its operations listed, reviewed,
then in the catalog for anonymous users. Bad documents and refused URLs change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from accounts.models import AuditEvent
from marketplace.models import ApiOperation, ProductVersion
from tests.marketplace.api.documents import INVALID_OPENAPI_YAML, OPENAPI_YAML, UPSTREAM
from tests.marketplace.api.helpers import (
    Api,
    all_messages,
    assert_problem,
    create_product,
    create_version,
    ok,
    submit_and_approve,
    version_url,
)

OPERATIONS = [("GET", "/alerts/{region}"), ("POST", "/alerts/{region}"), ("GET", "/forecast")]
OPENAPI_URL = version_url("weather", "1.0.0", "openapi/")


@pytest.fixture
def weather(member_api: Api) -> None:
    create_product(member_api, "weather", "rest_api", categories=["data"])
    create_version(member_api, "weather", "1.0.0")


def operations(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(op["method"], op["path"]) for op in body["operations"]]


def test_a_rest_api_is_published_with_a_pasted_openapi_document(
    weather: None, member_api: Api, staff_api: Api, anonymous_api: Api
) -> None:
    body = ok(member_api.post(OPENAPI_URL, {"document": OPENAPI_YAML}))

    assert operations(body) == OPERATIONS
    forecast = body["operations"][2]
    assert (forecast["operation_id"], forecast["summary"], forecast["tags"]) == (
        "getForecast",
        "Get the forecast",
        ["forecast"],
    )
    assert body["spec"]["openapi"]["info"]["title"] == "Weather API"
    assert body["upstream_url"] == f"{UPSTREAM}/v1"  # from the document's servers
    assert body["missing_for_submission"] == []
    event = AuditEvent.objects.get(action="version.set_openapi")
    assert event.changes == {"title": "Weather API", "operations": 3, "source_url": ""}

    submit_and_approve(member_api, staff_api, "weather")

    listed = ok(anonymous_api.get("/api/v1/catalog/"))
    assert [p["slug"] for p in listed["results"]] == ["weather"]
    page = ok(anonymous_api.get("/api/v1/catalog/weather/"))
    assert operations(page["latest_version"]) == OPERATIONS
    assert [v["version"] for v in page["versions"]] == ["1.0.0"]


def test_a_rest_api_is_published_with_an_openapi_document_fetched_by_url(
    weather: None, member_api: Api, staff_api: Api, anonymous_api: Api, document_server: str
) -> None:
    body = ok(member_api.post(OPENAPI_URL, {"url": f"{document_server}/openapi.yaml"}))

    assert operations(body) == OPERATIONS
    assert body["spec_source_url"] == f"{document_server}/openapi.yaml"
    submit_and_approve(member_api, staff_api, "weather")
    assert operations(ok(anonymous_api.get("/api/v1/catalog/weather/"))["latest_version"]) == OPERATIONS


def test_an_invalid_document_is_refused_precisely_and_nothing_is_half_saved(weather: None, member_api: Api) -> None:
    ok(member_api.post(OPENAPI_URL, {"document": OPENAPI_YAML}))
    before = ProductVersion.objects.get()

    problem = assert_problem(member_api.post(OPENAPI_URL, {"document": INVALID_OPENAPI_YAML}), 400, errors=True)

    where = "paths./things/{id}.get.parameters[0]"
    assert problem["errors"] == {
        "openapi": [
            f"The OpenAPI document is invalid: {where}: 'required' is a required property.",
            f"{where}: 'required' is a required property",
        ]
    }
    after = ProductVersion.objects.get()
    assert (after.spec, after.updated_at) == (before.spec, before.updated_at)
    assert sorted(ApiOperation.objects.values_list("method", "path")) == sorted(OPERATIONS)
    assert AuditEvent.objects.filter(action="version.set_openapi").count() == 1


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("openapi: 2.0\ninfo: {title: x, version: '1'}\npaths: {}\n", "3.0"),
        ("- a list\n- not an object\n", "object"),
    ],
)
def test_documents_that_are_not_openapi_3_are_refused(
    weather: None, member_api: Api, document: str, expected: str
) -> None:
    problem = assert_problem(member_api.post(OPENAPI_URL, {"document": document}), 400, errors=True)

    assert expected in all_messages(problem)
    assert not ApiOperation.objects.exists()


def test_an_oversized_document_is_refused(weather: None, member_api: Api, document_server: str) -> None:
    padding = "#" + "x" * 2_000_000 + "\n"

    pasted = assert_problem(member_api.post(OPENAPI_URL, {"document": OPENAPI_YAML + padding}), 400, errors=True)
    fetched = assert_problem(member_api.post(OPENAPI_URL, {"url": f"{document_server}/huge.json"}), 400, errors=True)

    assert pasted["errors"] == {"openapi": ["The document is larger than the 2,000,000-byte limit."]}
    assert fetched["errors"] == {"openapi": ["The document is larger than the 2,000,000-byte limit."]}
    assert not ApiOperation.objects.exists()


def test_a_document_and_a_url_exclude_each_other(weather: None, member_api: Api, document_server: str) -> None:
    for body in ({}, {"document": OPENAPI_YAML, "url": f"{document_server}/openapi.yaml"}):
        problem = assert_problem(member_api.post(OPENAPI_URL, body), 400, errors=True)
        assert problem["errors"] == {"openapi": ["Give either the document or a URL to fetch it from, not both."]}


def test_a_url_that_fails_is_reported(weather: None, member_api: Api, document_server: str) -> None:
    missing = assert_problem(member_api.post(OPENAPI_URL, {"url": f"{document_server}/nope.yaml"}), 400, errors=True)
    assert missing["errors"] == {"openapi": [f"{document_server}/nope.yaml answered HTTP 404."]}
    scheme = assert_problem(member_api.post(OPENAPI_URL, {"url": "file:///etc/passwd"}), 400, errors=True)
    assert scheme["errors"] == {"openapi": ["Only http:// and https:// URLs are allowed."]}


@override_settings(SSRF_ALLOW_LOOPBACK=False)
def test_private_addresses_are_refused_by_the_ssrf_guard(weather: None, member_api: Api, document_server: str) -> None:
    refused = "127.0.0.1 resolves to a loopback address, which the platform does not call."

    fetch = assert_problem(member_api.post(OPENAPI_URL, {"url": f"{document_server}/openapi.yaml"}), 400, errors=True)
    upstream = assert_problem(
        member_api.patch(version_url("weather", "1.0.0"), {"upstream_url": "http://127.0.0.1:8080/"}), 400, errors=True
    )
    metadata = assert_problem(
        member_api.patch(version_url("weather", "1.0.0"), {"upstream_url": "http://169.254.169.254/latest/"}),
        400,
        errors=True,
    )

    assert fetch["errors"] == {"openapi": [refused]}
    assert upstream["errors"] == {"upstream_url": [refused]}
    assert metadata["errors"] == {
        "upstream_url": [
            "169.254.169.254 resolves to a link-local address (such as the cloud metadata service), "
            "which the platform does not call."
        ]
    }
    assert ProductVersion.objects.get().upstream_url == ""


def test_an_openapi_document_does_not_apply_to_other_kinds(member_api: Api) -> None:
    create_product(member_api, "agent", "agent")
    create_version(member_api, "agent", "1.0.0")

    problem = assert_problem(
        member_api.post(version_url("agent", "1.0.0", "openapi/"), {"document": OPENAPI_YAML}), 400, errors=True
    )

    assert "does not apply" in all_messages(problem)
