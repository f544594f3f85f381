"""/mcp/{server} at the HTTP level: auth and its RFC 9728 document, Origin, protocol
versions, sessions bound to their app, quotas, lenient Accept. Raw requests (aiohttp), to
see statuses and headers the SDK client hides. No Django."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.worker.mcp_world import (
    ALLOWED,
    EXPIRED,
    GOOD,
    OTHER,
    SERVER,
    Gateway,
    McpUpstream,
    gateway,
    serve_mcp_upstream,
    settings_for,
    world,
)

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
BOTH = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def upstream() -> Iterator[McpUpstream]:
    with serve_mcp_upstream() as served:
        yield served


@pytest.fixture
async def gw(tmp_path: Path, upstream: McpUpstream) -> AsyncIterator[Gateway]:
    settings = settings_for(tmp_path, mcp_allowed_origins=("https://app.example",))
    async with gateway(settings, world(settings, upstream.url)) as served:
        yield served


def headers(key: str | None = GOOD, **extra: str) -> dict[str, str]:
    sent = {"Accept": BOTH, "Content-Type": "application/json", **extra}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    return sent


async def post(gw: Gateway, message: Any, server: str = SERVER, **kwargs: Any) -> Any:
    sent = kwargs.pop("headers", None) or headers()
    return await gw.http.post(f"/mcp/{server}", data=json.dumps(message), headers=sent, **kwargs)


async def rpc_error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["jsonrpc"] == "2.0"
    return dict(body["error"])


def sse_messages(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]


async def open_session(gw: Gateway, key: str = GOOD) -> str:
    response = await post(gw, INITIALIZE, headers=headers(key))
    assert response.status == 200, await response.text()
    session_id = response.headers["Mcp-Session-Id"]
    await response.read()
    ack = await post(gw, INITIALIZED, headers=headers(key, **{"Mcp-Session-Id": session_id}))
    assert ack.status == 202
    return session_id


async def test_no_key_is_a_401_pointing_at_the_protected_resource_document(gw: Gateway) -> None:
    response = await post(gw, INITIALIZE, headers=headers(None))
    error = await rpc_error_of(response, 401)
    assert error["data"]["reason"] == "missing_api_key"
    challenge = response.headers["WWW-Authenticate"]
    metadata = f"{gw.url}/.well-known/oauth-protected-resource/mcp/{SERVER}"
    assert challenge == f'Bearer resource_metadata="{metadata}"'

    document = await gw.http.get(f"/.well-known/oauth-protected-resource/mcp/{SERVER}")
    assert document.status == 200
    assert await document.json() == {
        "resource": f"{gw.url}/mcp/{SERVER}",
        "bearer_methods_supported": ["header"],
        "resource_name": SERVER,
    }


async def test_the_document_lists_the_authorization_servers_and_uses_gateway_url(
    tmp_path: Path, upstream: McpUpstream
) -> None:
    settings = settings_for(
        tmp_path, gateway_url="https://gw.example.com", mcp_authorization_servers=("https://auth.example.com",)
    )
    async with gateway(settings, world(settings, upstream.url)) as gw:
        document = await (await gw.http.get(f"/.well-known/oauth-protected-resource/mcp/{SERVER}")).json()
        assert document["resource"] == f"https://gw.example.com/mcp/{SERVER}"
        assert document["authorization_servers"] == ["https://auth.example.com"]
        missing = await gw.http.get("/.well-known/oauth-protected-resource/mcp/echo")
        assert missing.status == 404


@pytest.mark.parametrize("key", ["sk-unknown-0123456789", EXPIRED])
async def test_a_bad_key_is_a_401_with_invalid_token(gw: Gateway, key: str) -> None:
    response = await post(gw, INITIALIZE, headers=headers(key))
    error = await rpc_error_of(response, 401)
    assert key not in json.dumps(error)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert "resource_metadata=" in response.headers["WWW-Authenticate"]


async def test_x_api_key_is_accepted(gw: Gateway) -> None:
    sent = {"Accept": BOTH, "Content-Type": "application/json", "x-api-key": GOOD}
    response = await post(gw, INITIALIZE, headers=sent)
    assert response.status == 200
    assert response.headers["Mcp-Session-Id"]


async def test_a_key_without_a_subscription_is_a_403(gw: Gateway) -> None:
    error = await rpc_error_of(await post(gw, INITIALIZE, "demo-tiny", headers=headers(OTHER)), 403)
    assert error["data"]["reason"] == "no_subscription"


@pytest.mark.parametrize("server", ["nope", "echo"])
async def test_an_unknown_server_or_a_non_mcp_product_is_a_404(gw: Gateway, server: str) -> None:
    error = await rpc_error_of(await post(gw, INITIALIZE, server), 404)
    assert error["data"]["reason"] == "unknown_server"


async def test_a_browser_origin_not_allowed_is_a_403_and_an_allowed_one_passes(gw: Gateway) -> None:
    refused = await post(gw, INITIALIZE, headers=headers(Origin="https://evil.example"))
    error = await rpc_error_of(refused, 403)
    assert error["data"]["reason"] == "origin_not_allowed"
    allowed = await post(gw, INITIALIZE, headers=headers(Origin="https://app.example"))
    assert allowed.status == 200, await allowed.text()


async def test_an_unknown_protocol_version_is_a_400(gw: Gateway) -> None:
    session_id = await open_session(gw)
    sent = headers(**{"Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2099-01-01"})
    error = await rpc_error_of(await post(gw, LIST_TOOLS, headers=sent), 400)
    assert error["code"] == -32022
    assert "2025-11-25" in error["data"]["supported"]


async def test_a_missing_protocol_version_is_served(gw: Gateway) -> None:
    session_id = await open_session(gw)
    response = await post(gw, LIST_TOOLS, headers=headers(**{"Mcp-Session-Id": session_id}))
    assert response.status == 200, await response.text()


async def test_an_unknown_session_is_a_404(gw: Gateway) -> None:
    error = await rpc_error_of(await post(gw, LIST_TOOLS, headers=headers(**{"Mcp-Session-Id": "nope"})), 404)
    assert error["data"]["reason"] == "unknown_session"


async def test_a_session_used_by_another_app_is_a_404(gw: Gateway) -> None:
    session_id = await open_session(gw, GOOD)
    stolen = await post(gw, LIST_TOOLS, headers=headers(OTHER, **{"Mcp-Session-Id": session_id}))
    await rpc_error_of(stolen, 404)
    # The owner's session is untouched.
    own = await post(gw, LIST_TOOLS, headers=headers(GOOD, **{"Mcp-Session-Id": session_id}))
    assert own.status == 200


async def test_delete_ends_the_session(gw: Gateway) -> None:
    session_id = await open_session(gw)
    ended = await gw.http.delete(f"/mcp/{SERVER}", headers=headers(**{"Mcp-Session-Id": session_id}))
    assert ended.status in (200, 204)
    after = await post(gw, LIST_TOOLS, headers=headers(**{"Mcp-Session-Id": session_id}))
    await rpc_error_of(after, 404)


async def test_a_client_accepting_only_json_gets_json(gw: Gateway) -> None:
    session_id = await open_session(gw)
    sent = headers(**{"Mcp-Session-Id": session_id, "Accept": "application/json"})
    response = await post(gw, LIST_TOOLS, headers=sent)
    assert response.status == 200
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["id"] == 2
    assert sorted(tool["name"] for tool in body["result"]["tools"]) == sorted(ALLOWED)


@pytest.mark.parametrize("accept", ["*/*", ""])
async def test_a_client_accepting_anything_gets_the_upstreams_stream_filtered(gw: Gateway, accept: str) -> None:
    session_id = await open_session(gw)
    sent = headers(**{"Mcp-Session-Id": session_id, "Accept": accept})
    response = await post(gw, LIST_TOOLS, headers=sent)
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    [message] = [m for m in sse_messages(await response.text()) if m.get("id") == 2]
    assert sorted(tool["name"] for tool in message["result"]["tools"]) == sorted(ALLOWED)


async def test_a_get_opens_the_server_stream(gw: Gateway) -> None:
    session_id = await open_session(gw)
    sent = {"Authorization": f"Bearer {GOOD}", "Accept": "text/event-stream", "Mcp-Session-Id": session_id}
    async with gw.http.get(f"/mcp/{SERVER}", headers=sent) as stream:
        assert stream.status == 200
        assert stream.content_type == "text/event-stream"
        assert stream.headers["Mcp-Session-Id"] == session_id


async def test_batches_are_refused(gw: Gateway) -> None:
    error = await rpc_error_of(await post(gw, [INITIALIZE]), 400)
    assert error["code"] == -32600


async def test_the_quota_is_a_429_with_a_json_rpc_body(gw: Gateway) -> None:
    for _ in range(2):
        assert (await post(gw, INITIALIZE, "demo-tiny")).status == 200
    refused = await post(gw, INITIALIZE, "demo-tiny")
    error = await rpc_error_of(refused, 429)
    assert error["data"]["reason"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1


async def test_an_unreachable_server_is_a_502_with_a_json_rpc_body(gw: Gateway) -> None:
    error = await rpc_error_of(await post(gw, INITIALIZE, "dead-tools"), 502)
    assert error["data"]["reason"] == "upstream_unreachable"
    [record] = [r for r in gw.observer.records if r.product_slug == "dead-tools"]
    assert record.upstream_error == "unreachable"
    assert record.status == 502
