"""Fixtures of the registry tests: MCP servers in every state, and a client that checks
every answer against the official schemas (the vendored server.json schema, and the
response envelope of the registry's openapi.yaml)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from jsonschema import Draft7Validator, FormatChecker

from accounts.models import Organization
from marketplace.models import Product, ProductVersion
from tests.marketplace.factories import McpToolFactory, ProductFactory, ProductVersionFactory

SCHEMA_PATH = Path(__file__).with_name("server.schema.json")
NAMESPACE = "io.github.ai-open-platform"
OFFICIAL = "io.modelcontextprotocol.registry/official"
PLATFORM = f"{NAMESPACE}/platform"

LOOPBACK_URL = "http://127.0.0.1:9/mcp"  # the tests' settings allow loopback upstreams
PUBLIC_URL = "https://93.184.215.14/sse"  # a public address: no DNS lookup needed

# ServerResponse._meta of docs/reference/api/openapi.yaml in modelcontextprotocol/registry:
# the official key's object admits exactly these properties.
OFFICIAL_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "publishedAt", "updatedAt", "isLatest"],
    "properties": {
        "status": {"type": "string", "enum": ["active", "deprecated", "deleted"]},
        "statusMessage": {"type": "string", "maxLength": 500},
        "statusChangedAt": {"type": "string", "format": "date-time"},
        "publishedAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
        "isLatest": {"type": "boolean"},
    },
    "additionalProperties": False,
}


def _checker() -> FormatChecker:
    """Draft 7's format checker, plus ``uri`` (which jsonschema checks only with an
    optional package): an absolute http(s) URL with a host, or another scheme's URI."""
    checker = FormatChecker()

    @checker.checks("uri")
    def is_uri(value: object) -> bool:
        if not isinstance(value, str) or re.search(r"\s", value):
            return not isinstance(value, str)
        parts = urlsplit(value)
        if parts.scheme in {"http", "https"}:
            return bool(parts.hostname)
        return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", parts.scheme))

    return checker


@pytest.fixture(scope="session")
def server_validator() -> Draft7Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=_checker())


@pytest.fixture(scope="session")
def official_meta_validator() -> Draft7Validator:
    return Draft7Validator(OFFICIAL_META_SCHEMA, format_checker=_checker())


class RegistryClient:
    """GETs the registry API and checks the answer's shape before a test looks at it."""

    def __init__(self, server: Draft7Validator, official: Draft7Validator) -> None:
        self.client = Client()
        self.server_validator = server
        self.official_validator = official

    def check_entry(self, entry: dict[str, Any]) -> None:
        assert set(entry) == {"server", "_meta"}
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in self.server_validator.iter_errors(entry["server"])]
        assert errors == [], errors
        assert set(entry["_meta"]) == {OFFICIAL, PLATFORM}
        errors = [
            f"{list(e.absolute_path)}: {e.message}"
            for e in self.official_validator.iter_errors(entry["_meta"][OFFICIAL])
        ]
        assert errors == [], errors

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.client.get(path, params)
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "application/json"
        body: dict[str, Any] = response.json()
        if "servers" in body:
            assert set(body) == {"servers", "metadata"}
            assert body["metadata"]["count"] == len(body["servers"])
            assert set(body["metadata"]) <= {"count", "nextCursor"}
            for entry in body["servers"]:
                self.check_entry(entry)
        else:
            self.check_entry(body)
        return body

    def error(self, path: str, status: int, **params: Any) -> dict[str, Any]:
        response = self.client.get(path, params)
        assert response.status_code == status, response.content
        assert response["Content-Type"] == "application/problem+json"
        body: dict[str, Any] = response.json()
        assert body["status"] == status
        assert body["title"]
        assert body["detail"]
        return body

    def names(self, **params: Any) -> list[tuple[str, str]]:
        """(name, version) of every entry of the list, following every cursor."""
        seen: list[tuple[str, str]] = []
        cursor = None
        for _ in range(100):
            page = self.get("/v0.1/servers", **params, **({"cursor": cursor} if cursor else {}))
            seen += [(e["server"]["name"], e["server"]["version"]) for e in page["servers"]]
            cursor = page["metadata"].get("nextCursor")
            if not cursor:
                return seen
        raise AssertionError("the cursor never ends")


@pytest.fixture
def registry(server_validator: Draft7Validator, official_meta_validator: Draft7Validator) -> RegistryClient:
    return RegistryClient(server_validator, official_meta_validator)


def mcp_server(
    organization: Organization,
    slug: str,
    versions: Iterable[tuple[str, str]] = (("1.0.0", ProductVersion.Status.PUBLISHED),),
    *,
    tools: Iterable[str] = ("search", "fetch"),
    visibility: str = Product.Visibility.PUBLIC,
    kind: str = Product.Kind.MCP_SERVER,
    summary: str = "Searches and fetches documents.",
    name: str = "",
) -> Product:
    """A product with one version per (version, status), published a day apart in that
    order (so the last live one is the latest), each with the given tools."""
    product = ProductFactory(
        organization=organization,
        kind=kind,
        slug=slug,
        name=name or slug.title(),
        summary=summary,
        visibility=visibility,
    )
    start = timezone.now() - dt.timedelta(days=30)
    for day, (number, status) in enumerate(versions):
        moment = start + dt.timedelta(days=day)
        was_published = status in {"published", "deprecated", "retired"}
        version = ProductVersionFactory(
            product=product,
            version=number,
            status=status,
            mcp_transport=ProductVersion.McpTransport.STREAMABLE_HTTP if kind == Product.Kind.MCP_SERVER else "",
            published_at=moment if was_published else None,
            deprecated_at=moment + dt.timedelta(hours=1) if status in {"deprecated", "retired"} else None,
            sunset_at=timezone.now() + dt.timedelta(days=30) if status == "deprecated" else None,
            retired_at=moment + dt.timedelta(hours=2) if status == "retired" else None,
        )
        for tool in tools:
            McpToolFactory(version=version, name=tool)
    return product


def server(
    name: str, version: str = "1.0.0", url: str = LOOPBACK_URL, kind: str = "streamable-http", **extra: Any
) -> dict[str, Any]:
    """A server.json document with one remote (none when ``url`` is empty); ``extra``
    adds or replaces fields."""
    document: dict[str, Any] = {"name": name, "description": f"The {name} server.", "version": version}
    if url:
        document["remotes"] = [{"type": kind, "url": url}]
    return document | extra
