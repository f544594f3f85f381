"""Fixtures of the marketplace API tests: the personas' API clients and real servers on
loopback. Search by meaning uses the real embedding model (installed by `make test`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.marketplace.api.documents import OPENAPI_YAML, agent_card_text
from tests.marketplace.api.personas import (  # noqa: F401 (fixtures)
    admin_api,
    anonymous_api,
    member_api,
    outsider_api,
    owner_api,
    staff_api,
)
from tests.marketplace.api.servers import serve_files, serve_mcp, weather_mcp_server


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    """The Streamable HTTP endpoint of a real MCP server (the weather server)."""
    with serve_mcp(weather_mcp_server()) as url:
        yield url


@pytest.fixture(scope="module")
def document_server() -> Iterator[str]:
    """A plain HTTP server with an OpenAPI document, an agent card, an HTML page and a
    file over the document size limit."""
    files = {
        "/openapi.yaml": ("application/yaml", OPENAPI_YAML.encode()),
        "/agent/.well-known/agent-card.json": ("application/json", agent_card_text().encode()),
        "/index.html": ("text/html", b"<!doctype html><title>Not MCP</title><p>Hello</p>"),
        "/huge.json": ("application/json", b'{"x": "' + b"a" * 2_100_000 + b'"}'),
    }
    with serve_files(files) as base_url:
        yield base_url
