"""The three demo upstreams, each served once per test session on a free loopback port, in a
thread of this process. No database: these tests never touch Django."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from demo_upstreams import echo, mock_llm
from demo_upstreams.demo_mcp import create_app as create_mcp_app
from demo_upstreams.inprocess import serve_aiohttp, serve_asgi

# Small enough that the six tools span several pages, so every tools/list test pages.
MCP_TOOLS_PAGE_SIZE = 4


@pytest.fixture(scope="session")
def echo_url() -> Iterator[str]:
    with serve_aiohttp(echo.create_app()) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def llm_url() -> Iterator[str]:
    with serve_aiohttp(mock_llm.create_app()) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def mcp_url() -> Iterator[str]:
    with serve_asgi(lambda port: create_mcp_app(port=port, tools_page_size=MCP_TOOLS_PAGE_SIZE)) as base_url:
        yield f"{base_url}/mcp"


@pytest.fixture
def llm(llm_url: str) -> Iterator[openai.OpenAI]:
    """The official SDK, pointed at the mock. No retries: a requested 429 must surface at once."""
    with openai.OpenAI(base_url=f"{llm_url}/v1", api_key="x", max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
