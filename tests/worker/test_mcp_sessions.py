"""MCP sessions shared through Redis: a session started on worker A continues on worker B;
sessions are bound to their app and expire when idle. Two worker apps in process, one
Redis, the official mcp SDK client. No Django."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from mcp import MCPError

from gateway_sync.worker.mcp_sessions import KEY_PREFIX
from tests.worker.mcp_world import (
    ALLOWED,
    GOOD,
    SERVER,
    McpUpstream,
    Reroute,
    closed_port_url,
    gateway,
    mcp_client,
    serve_mcp_upstream,
    settings_for,
    world,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def upstream() -> Iterator[McpUpstream]:
    with serve_mcp_upstream() as served:
        yield served


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_a_session_started_on_worker_a_continues_on_worker_b(
    tmp_path: Path, upstream: McpUpstream, redis_url: str
) -> None:
    settings_a = settings_for(tmp_path / "a", redis_url=redis_url, worker_id="worker-a")
    settings_b = settings_for(tmp_path / "b", redis_url=redis_url, worker_id="worker-b")
    snapshot = world(settings_a, upstream.url)
    async with gateway(settings_a, snapshot) as worker_a, gateway(settings_b, snapshot) as worker_b:
        route = Reroute(port_of(worker_a.url))
        async with mcp_client(worker_a.mcp_url(), transport=route) as client:
            listed = await client.list_tools()
            assert sorted(tool.name for tool in listed.tools) == sorted(ALLOWED)
            route.port = port_of(worker_b.url)  # every later request lands on worker B
            result = await client.call_tool("add_numbers", {"a": 20, "b": 22})
            assert result.structured_content == {"sum": 42.0}
            assert sorted(tool.name for tool in (await client.list_tools()).tools) == sorted(ALLOWED)
        assert [r.tool_name for r in worker_b.observer.tool_calls()] == ["add_numbers"]
        assert worker_a.observer.tool_calls() == []
        served_by_b = [r for r in worker_b.observer.records if r.method == "POST"]
        assert served_by_b
        assert all(r.status in (200, 202) for r in served_by_b), [(r.status, r.tool_name) for r in served_by_b]
        assert not any(r.client_closed for r in served_by_b)
    # The client's DELETE (sent to B) removed the mapping.
    client_redis = redis.Redis.from_url(redis_url)
    try:
        assert list(client_redis.scan_iter(f"{KEY_PREFIX}*")) == []
    finally:
        client_redis.close()


async def test_the_mapping_lives_in_redis_with_an_idle_ttl_and_expires(
    tmp_path: Path, upstream: McpUpstream, redis_url: str
) -> None:
    settings = settings_for(tmp_path, redis_url=redis_url, mcp_session_idle_s=1)
    client_redis = redis.Redis.from_url(redis_url)
    try:
        async with (
            gateway(settings, world(settings, upstream.url)) as worker,
            mcp_client(worker.mcp_url()) as client,
        ):
            await client.list_tools()
            [key] = list(client_redis.scan_iter(f"{KEY_PREFIX}*"))
            stored = json.loads(client_redis.get(key) or b"{}")
            assert stored["app_id"] == 7
            assert stored["initialize_params"]["clientInfo"]["name"]
            assert GOOD not in json.dumps(stored)
            assert 0 < client_redis.pttl(key) <= 1000
            await asyncio.sleep(1.2)  # idle past MCP_SESSION_IDLE_S
            with pytest.raises(MCPError):
                await client.list_tools()
    finally:
        client_redis.close()


async def test_an_unreachable_session_store_is_a_503_not_a_hang(tmp_path: Path, upstream: McpUpstream) -> None:
    settings = settings_for(tmp_path, redis_url=closed_port_url().replace("http://", "redis://"))
    async with gateway(settings, world(settings, upstream.url)) as worker:
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        headers = {"Authorization": f"Bearer {GOOD}", "Accept": "application/json, text/event-stream"}
        response = await worker.http.post(f"/mcp/{SERVER}", json=initialize, headers=headers)
        assert response.status == 503
        assert (await response.json())["error"]["data"]["reason"] == "sessions_unavailable"
