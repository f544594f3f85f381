"""/mcp/{server} and the 2026-07-28 routing headers: an ``Mcp-Method`` or ``Mcp-Name``
header that disagrees with the body is refused by the gateway itself (400, -32020, the
request's id), without calling the upstream and with a usage record; matching or absent
headers pass. Raw requests (aiohttp), stateless era. No Django."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.worker.mcp_world import GOOD, SERVER, Gateway, McpUpstream, gateway, serve_mcp_upstream, settings_for, world

pytestmark = pytest.mark.anyio

VERSION = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": VERSION,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
}
HEADER_MISMATCH = -32020


@pytest.fixture(scope="module")
def upstream() -> Iterator[McpUpstream]:
    with serve_mcp_upstream(json_response=True) as served:
        yield served


@pytest.fixture
async def gw(tmp_path: Path, upstream: McpUpstream) -> AsyncIterator[Gateway]:
    settings = settings_for(tmp_path)
    async with gateway(settings, world(settings, upstream.url)) as served:
        yield served


def request(method: str, params: dict[str, Any], rpc_id: int | None = 7) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": {**params, "_meta": META}}
    if rpc_id is not None:
        message["id"] = rpc_id
    return message


async def post(gw: Gateway, message: dict[str, Any], **routing: str) -> Any:
    sent = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {GOOD}",
        "MCP-Protocol-Version": VERSION,
        **routing,
    }
    return await gw.http.post(f"/mcp/{SERVER}", data=json.dumps(message), headers=sent)


async def refused(gw: Gateway, upstream: McpUpstream, message: dict[str, Any], **routing: str) -> dict[str, Any]:
    """Posts ``message``; asserts the 400 -32020 answer, the upstream untouched, the record."""
    posts = upstream.log.posts()
    records = len(gw.observer.records)
    response = await post(gw, message, **routing)
    assert response.status == 400, await response.text()
    body = await response.json()
    assert body["id"] == message.get("id")
    assert body["error"]["code"] == HEADER_MISMATCH
    assert upstream.log.posts() == posts
    written = gw.observer.records[records:]
    assert [(r.protocol, r.status) for r in written] == [("mcp", 400)]
    return dict(body["error"])


async def test_a_method_header_not_the_bodys_method_is_a_400(gw: Gateway, upstream: McpUpstream) -> None:
    error = await refused(gw, upstream, request("tools/list", {}), **{"Mcp-Method": "prompts/list"})
    assert "Mcp-Method" in error["message"]


@pytest.mark.parametrize(
    ("method", "params", "name"),
    [
        ("tools/call", {"name": "add_numbers", "arguments": {"a": 1, "b": 2}}, "word_count"),
        ("prompts/get", {"name": "country_briefing", "arguments": {"country": "Japan"}}, "convert_recipe"),
        ("resources/read", {"uri": "demo://countries/FR"}, "demo://countries/JP"),
    ],
)
async def test_a_name_header_not_the_bodys_name_or_uri_is_a_400(
    gw: Gateway, upstream: McpUpstream, method: str, params: dict[str, Any], name: str
) -> None:
    error = await refused(gw, upstream, request(method, params), **{"Mcp-Method": method, "Mcp-Name": name})
    assert "Mcp-Name" in error["message"]


async def test_a_name_header_alone_is_checked_too(gw: Gateway, upstream: McpUpstream) -> None:
    message = request("tools/call", {"name": "add_numbers", "arguments": {"a": 1, "b": 2}})
    await refused(gw, upstream, message, **{"Mcp-Name": "slugify"})


async def test_a_notification_with_a_mismatched_method_is_a_400_with_a_null_id(
    gw: Gateway, upstream: McpUpstream
) -> None:
    message = request("notifications/cancelled", {"requestId": 3}, rpc_id=None)
    await refused(gw, upstream, message, **{"Mcp-Method": "notifications/progress"})


async def test_matching_headers_pass(gw: Gateway, upstream: McpUpstream) -> None:
    posts = upstream.log.posts()
    call = request("tools/call", {"name": "add_numbers", "arguments": {"a": 1, "b": 2}})
    response = await post(gw, call, **{"Mcp-Method": "tools/call", "Mcp-Name": "add_numbers"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["id"] == 7
    assert body["result"]["structuredContent"] == {"sum": 3.0}
    read = request("resources/read", {"uri": "demo://countries/FR"})
    response = await post(gw, read, **{"Mcp-Method": "resources/read", "Mcp-Name": "demo://countries/FR"})
    assert response.status == 200, await response.text()
    assert json.loads((await response.json())["result"]["contents"][0]["text"])["capital"] == "Paris"
    assert upstream.log.posts() == posts + 2
    assert [(r.tool_name, r.is_error, r.status) for r in gw.observer.tool_calls()] == [("add_numbers", False, 200)]


async def test_a_base64_name_header_is_compared_decoded(gw: Gateway, upstream: McpUpstream) -> None:
    encoded = "=?base64?" + base64.b64encode(b"add_numbers").decode() + "?="
    call = request("tools/call", {"name": "add_numbers", "arguments": {"a": 1, "b": 2}})
    response = await post(gw, call, **{"Mcp-Method": "tools/call", "Mcp-Name": encoded})
    assert response.status == 200, await response.text()
    wrong = "=?base64?" + base64.b64encode(b"slugify").decode() + "?="
    await refused(gw, upstream, call, **{"Mcp-Method": "tools/call", "Mcp-Name": wrong})


async def test_absent_headers_pass_as_before(gw: Gateway, upstream: McpUpstream) -> None:
    posts = upstream.log.posts()
    response = await post(gw, request("tools/list", {}))
    assert upstream.log.posts() == posts + 1
    # The gateway does not require them: the upstream gets the request and has its say.
    assert response.status == 400
    assert (await response.json())["error"]["message"].startswith("mcp-method header")  # the SDK's words
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    response = await gw.http.post(
        f"/mcp/{SERVER}",
        data=json.dumps(initialize),
        headers={"Accept": "application/json", "Content-Type": "application/json", "Authorization": f"Bearer {GOOD}"},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["result"]["serverInfo"]["name"] == "demo-tools"
    assert upstream.log.posts() == posts + 2
