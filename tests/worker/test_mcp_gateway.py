"""/mcp/{server} with the official mcp SDK client, through the worker app in process, to the
demo-tools MCP server (official SDK) on loopback, answering in SSE and in JSON: the
session, per-tool permissions, the provider's credential, usage records. No Django."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import MCPError
from mcp.types import INVALID_PARAMS, TextContent, TextResourceContents

from gateway_sync.worker.proxy_mcp import MCP_KEY
from tests.worker.mcp_world import (
    ALL_TOOLS,
    ALLOWED,
    GOOD,
    OTHER,
    PROVIDER_SECRET,
    Gateway,
    McpUpstream,
    gateway,
    mcp_client,
    serve_mcp_upstream,
    settings_for,
    world,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=["sse", "json"])
def upstream(request: pytest.FixtureRequest) -> Iterator[McpUpstream]:
    """The upstream answering POSTs with SSE streams, then with JSON bodies."""
    with serve_mcp_upstream(json_response=request.param == "json") as served:
        yield served


@pytest.fixture
async def gw(tmp_path: Path, upstream: McpUpstream) -> AsyncIterator[Gateway]:
    settings = settings_for(tmp_path)
    async with gateway(settings, world(settings, upstream.url)) as served:
        yield served


def text_of(result: object) -> str:
    content = result.content[0]  # type: ignore[attr-defined]
    assert isinstance(content, TextContent)
    return content.text


async def test_initialize_names_the_upstream_server(gw: Gateway) -> None:
    async with mcp_client(gw.mcp_url()) as client:
        assert client.server_info is not None
        assert client.server_info.name == "demo-tools"
        assert client.protocol_version == "2025-11-25"
        assert client.server_capabilities.tools is not None


async def test_tools_list_shows_only_the_plans_tools(gw: Gateway) -> None:
    async with mcp_client(gw.mcp_url()) as client:
        listed = await client.list_tools()
    assert sorted(tool.name for tool in listed.tools) == sorted(ALLOWED)


async def test_a_plan_without_allowed_tools_lists_every_tool(gw: Gateway) -> None:
    async with mcp_client(gw.mcp_url(), OTHER) as client:
        listed = await client.list_tools()
    assert sorted(tool.name for tool in listed.tools) == sorted(ALL_TOOLS)


async def test_an_allowed_tool_is_called_and_recorded(gw: Gateway) -> None:
    async with mcp_client(gw.mcp_url()) as client:
        result = await client.call_tool("add_numbers", {"a": 2, "b": 40})
    assert result.is_error is False
    assert result.structured_content == {"sum": 42.0}
    calls = gw.observer.tool_calls()
    assert [(r.tool_name, r.is_error, r.status, r.protocol) for r in calls] == [("add_numbers", False, 200, "mcp")]
    record = calls[0]
    assert record.app_id == 7
    assert record.product_slug == "demo-tools"
    assert record.duration_s > 0
    assert record.upstream_latency_s is not None


async def test_a_tool_error_is_recorded_as_is_error(gw: Gateway) -> None:
    async with mcp_client(gw.mcp_url()) as client:
        result = await client.call_tool("lookup_country", {"query": "Atlantis"})
    assert result.is_error is True
    assert [(r.tool_name, r.is_error) for r in gw.observer.tool_calls()] == [("lookup_country", True)]


async def test_a_disallowed_tool_is_refused_without_calling_the_upstream(gw: Gateway, upstream: McpUpstream) -> None:
    async with mcp_client(gw.mcp_url()) as client:
        await client.list_tools()  # the handshake's last message has gone upstream before this
        before = upstream.log.posts()
        with pytest.raises(MCPError) as refused:
            await client.session.call_tool("slugify", {"text": "Hello World"})
        assert upstream.log.posts() == before
        assert refused.value.error.code == INVALID_PARAMS
        assert "slugify" in refused.value.error.message
        # The session goes on.
        assert (await client.call_tool("word_count", {"text": "one two three"})).is_error is False
    assert [(r.tool_name, r.is_error) for r in gw.observer.tool_calls()] == [("slugify", True), ("word_count", False)]


async def test_resources_and_prompts_pass_through(gw: Gateway) -> None:
    async with mcp_client(gw.mcp_url()) as client:
        resources = await client.list_resources()
        assert "demo://countries" in {str(resource.uri) for resource in resources.resources}
        read = await client.read_resource("demo://countries/FR")
        content = read.contents[0]
        assert isinstance(content, TextResourceContents)
        assert json.loads(content.text)["capital"] == "Paris"
        prompts = await client.list_prompts()
        assert {prompt.name for prompt in prompts.prompts} == {"country_briefing", "convert_recipe"}
        prompt = await client.get_prompt("country_briefing", {"country": "Japan"})
        assert "Japan" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_the_provider_credential_goes_upstream_and_the_consumer_key_does_not(
    gw: Gateway, upstream: McpUpstream
) -> None:
    before = len(upstream.log.requests)
    async with mcp_client(gw.mcp_url()) as client:
        await client.list_tools()
    seen = upstream.log.requests[before:]
    assert seen
    for _, headers in seen:
        assert headers["x-provider-key"] == PROVIDER_SECRET
        assert "authorization" not in headers
        assert GOOD not in json.dumps(headers)
        assert headers["host"] == upstream.url.removeprefix("http://").removesuffix("/mcp")


async def test_the_client_sees_the_gateways_session_id_never_the_upstreams(gw: Gateway, upstream: McpUpstream) -> None:
    async with mcp_client(gw.mcp_url()) as client:
        await client.list_tools()
        store = gw.app[MCP_KEY].sessions
        [(gateway_id, (_, session))] = store.sessions.items()  # type: ignore[attr-defined]
        assert gateway_id != session.upstream_session_id
        assert session.app_id == 7
        used = {headers.get("mcp-session-id") for _, headers in upstream.log.requests}
        assert gateway_id not in used
        assert session.upstream_session_id in used
    # The client's DELETE on leaving ended both sessions.
    assert store.sessions == {}  # type: ignore[attr-defined]
    assert upstream.log.requests[-1][0] == "DELETE"


async def test_an_expired_upstream_session_is_reinitialized_transparently(gw: Gateway, upstream: McpUpstream) -> None:
    import httpx2

    async with mcp_client(gw.mcp_url()) as client:
        await client.list_tools()
        store = gw.app[MCP_KEY].sessions
        [(_, (_, session))] = store.sessions.items()  # type: ignore[attr-defined]
        # The upstream forgets the session (as after a restart or its own idle expiry).
        async with httpx2.AsyncClient() as direct:
            ended = await direct.delete(
                upstream.url,
                headers={"Mcp-Session-Id": session.upstream_session_id, "MCP-Protocol-Version": "2025-11-25"},
            )
        assert ended.status_code in (200, 204)
        result = await client.call_tool("add_numbers", {"a": 1, "b": 2})
        assert result.structured_content == {"sum": 3.0}
        [(_, (_, renewed))] = store.sessions.items()  # type: ignore[attr-defined]
        assert renewed.upstream_session_id != session.upstream_session_id
        assert (await client.list_tools()).tools


async def test_the_stateless_2026_era_passes_through_with_the_same_permissions(gw: Gateway) -> None:
    async with mcp_client(gw.mcp_url(), mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        listed = await client.list_tools()
        assert sorted(tool.name for tool in listed.tools) == sorted(ALLOWED)
        assert (await client.call_tool("add_numbers", {"a": 1, "b": 2})).structured_content == {"sum": 3.0}
        with pytest.raises(MCPError) as refused:
            await client.call_tool("slugify", {"text": "a b"})
        assert refused.value.error.code == INVALID_PARAMS
    assert [(r.tool_name, r.is_error) for r in gw.observer.tool_calls()] == [("add_numbers", False), ("slugify", True)]
    assert gw.app[MCP_KEY].sessions.sessions == {}  # type: ignore[attr-defined]  # no session in this era
