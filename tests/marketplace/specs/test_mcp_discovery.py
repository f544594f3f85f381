"""Discovery against real MCP servers built with the ``mcp`` SDK, served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx2
import pytest

from marketplace.specs.errors import SpecError
from marketplace.specs.mcp_discovery import (
    McpPrompt,
    McpPromptArgument,
    McpResourceTemplate,
    McpTool,
    discover_mcp_server,
    discover_mcp_server_sync,
)
from marketplace.specs.mcp_failures import ResponseLog, explain_failure
from tests.marketplace.specs import mcp_servers
from tests.marketplace.specs.mcp_servers import BEARER_TOKEN, closed_port, serve


@pytest.fixture(scope="module")
def paged_url() -> Iterator[str]:
    with serve(mcp_servers.paginated_server().streamable_http_app()) as base:
        yield f"{base}/mcp"


@pytest.fixture(scope="module")
def bearer_url() -> Iterator[str]:
    with serve(mcp_servers.RequireBearer(mcp_servers.paginated_server().streamable_http_app())) as base:
        yield f"{base}/mcp"


def test_every_list_is_followed_across_pages(paged_url: str) -> None:
    found = discover_mcp_server_sync(paged_url, timeout=10)
    assert (found.server.name, found.server.version, found.server.title) == ("paged-server", "3.1.4", "Paged Server")
    assert found.server.instructions == "Call the tools in order."
    assert found.server.protocol_version
    assert set(found.server.capabilities) == {"tools", "resources", "prompts"}
    assert [t.name for t in found.tools] == [f"tool_{i:02d}" for i in range(7)]  # 3 pages of up to 3
    assert found.tools[0] == McpTool(
        name="tool_00",
        title="Tool 0",
        description="Does thing 0.",
        input_schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        output_schema={"type": "object", "properties": {"result": {"type": "integer"}}},
        annotations={"readOnlyHint": True},
    )
    assert [r.uri for r in found.resources] == [f"file:///docs/{i}.md" for i in range(4)]
    assert (found.resources[1].mime_type, found.resources[1].size) == ("text/markdown", 101)
    assert found.resource_templates == [
        McpResourceTemplate(uri_template="file:///docs/{name}.md", name="doc", mime_type="text/markdown")
    ]
    assert [p.name for p in found.prompts] == ["prompt_0", "prompt_1", "prompt_2"]
    assert found.prompts[0] == McpPrompt(
        name="prompt_0", description="Prompt 0", arguments=[McpPromptArgument("topic", "What about", True)]
    )
    assert found.truncated == []


def test_lists_stop_at_max_items(paged_url: str) -> None:
    found = discover_mcp_server_sync(paged_url, timeout=10, max_items=4)
    assert [t.name for t in found.tools] == ["tool_00", "tool_01", "tool_02", "tool_03"]
    assert len(found.prompts) == 3
    assert len(found.resources) == 4  # exactly the limit, and no page left: not truncated
    assert found.truncated == ["tools"]


def test_the_async_api(paged_url: str) -> None:
    found = asyncio.run(discover_mcp_server(paged_url, timeout=10))
    assert len(found.tools) == 7


def test_the_sync_wrapper_works_inside_a_running_event_loop(paged_url: str) -> None:
    async def view() -> int:
        return len(discover_mcp_server_sync(paged_url, timeout=10).tools)

    assert asyncio.run(view()) == 7


def test_a_server_that_needs_a_bearer_token(bearer_url: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync(bearer_url, timeout=10)
    assert excinfo.value.message == (
        "The server asked for credentials (HTTP 401): add the Authorization header or API key it expects."
    )
    assert excinfo.value.field == "headers"
    found = discover_mcp_server_sync(bearer_url, headers={"Authorization": f"Bearer {BEARER_TOKEN}"}, timeout=10)
    assert len(found.tools) == 7


def test_the_injected_http_client_factory_is_used(bearer_url: str) -> None:
    calls: list[dict[str, str] | None] = []

    def factory(
        headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
    ) -> httpx2.AsyncClient:
        calls.append(headers)
        return httpx2.AsyncClient(
            headers={**(headers or {}), "Authorization": f"Bearer {BEARER_TOKEN}"}, timeout=timeout, auth=auth
        )

    found = discover_mcp_server_sync(bearer_url, headers={"X-Trace": "1"}, timeout=10, httpx_client_factory=factory)
    assert len(found.tools) == 7
    assert calls == [{"X-Trace": "1"}]


class _RefusingTransport(httpx2.AsyncBaseTransport):
    """What an SSRF guard does: refuse the destination with a SpecError of its own."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        raise SpecError(f"{request.url.host} is a private address; the marketplace does not connect to it.")


def test_an_error_raised_by_the_injected_transport_is_passed_through(paged_url: str) -> None:
    def guarded(
        headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, transport=_RefusingTransport())

    with pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync(paged_url, timeout=10, httpx_client_factory=guarded)
    assert excinfo.value.message == "127.0.0.1 is a private address; the marketplace does not connect to it."


class _GuardError(Exception):
    """Not a SpecError: like the outbound guard's own exception type."""


class _RefusingWithItsOwnError(httpx2.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        raise _GuardError(f"{request.url.host} resolves to a private address.")


def test_a_foreign_error_from_the_injected_transport_keeps_its_message(paged_url: str) -> None:
    def guarded(
        headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, transport=_RefusingWithItsOwnError())

    with pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync(paged_url, timeout=10, httpx_client_factory=guarded)
    assert excinfo.value.message == f"Discovering {paged_url} failed: 127.0.0.1 resolves to a private address."


def test_an_html_site_is_not_an_mcp_server() -> None:
    with serve(mcp_servers.html_site()) as base, pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync(f"{base}/mcp", timeout=10)
    assert excinfo.value.message == f"This is not an MCP server: {base}/mcp answered with text/html."


def test_a_json_api_that_does_not_speak_json_rpc() -> None:
    with serve(mcp_servers.plain_json_api()) as base, pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync(f"{base}/mcp", timeout=10)
    assert excinfo.value.message == (
        f"This is not an MCP server: {base}/mcp answered with JSON that is not a JSON-RPC message."
    )


def test_a_closed_port() -> None:
    port = closed_port()
    with pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync(f"http://127.0.0.1:{port}/mcp", timeout=10)
    assert excinfo.value.message == f"Cannot connect to 127.0.0.1 port {port}: the connection was refused."


def test_an_unresolvable_host() -> None:
    with pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync("http://mcp.does-not-exist.invalid/mcp", timeout=10)
    if excinfo.value.message.endswith("gave no answer within 10 s."):
        pytest.skip("no DNS resolver answers in this environment")
    assert excinfo.value.message == "The host name 'mcp.does-not-exist.invalid' cannot be resolved (DNS lookup failed)."


def test_dns_failures_are_recognised_inside_exception_groups() -> None:
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx2.ConnectError(str(exc)) from exc
    except httpx2.ConnectError as exc:
        group = ExceptionGroup("unhandled errors in a TaskGroup", [ExceptionGroup("inner", [exc])])
    error = explain_failure(group, url="https://mcp.example.test/mcp", timeout=5, log=ResponseLog())
    assert error.message == "The host name 'mcp.example.test' cannot be resolved (DNS lookup failed)."


def test_a_2025_era_server_is_reached_through_the_initialize_handshake() -> None:
    with serve(mcp_servers.HandshakeEraOnly(mcp_servers.paginated_server().streamable_http_app())) as base:
        found = discover_mcp_server_sync(f"{base}/mcp", timeout=10)
    assert found.server.protocol_version == "2025-11-25"
    assert (found.server.name, found.server.instructions) == ("paged-server", "Call the tools in order.")
    assert len(found.tools) == 7


def test_a_server_that_does_not_answer_in_time() -> None:
    with serve(mcp_servers.slow_site()) as base, pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync(f"{base}/mcp", timeout=0.5)
    assert excinfo.value.message == f"{base}/mcp gave no answer within 0.5 s."


def test_illegal_tool_names_are_all_reported() -> None:
    server = mcp_servers.tool_server(["get weather", "ok_tool", "a/b", "ok_tool", "weather.get"])
    with serve(server.streamable_http_app()) as base, pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync(f"{base}/mcp", timeout=10)
    assert excinfo.value.message == (
        "The server's tools have 3 illegal names: 'get weather' contains characters MCP does not allow in tool "
        "names: ' ' (space) (and more). Tool names must be 1 to 128 characters of letters, digits, '_', '-' and '.'."
    )
    assert excinfo.value.details == [
        "'get weather' contains characters MCP does not allow in tool names: ' ' (space)",
        "'a/b' contains characters MCP does not allow in tool names: '/'",
        "'ok_tool' is the name of more than one tool",
    ]


def test_a_pagination_loop_is_detected() -> None:
    with serve(mcp_servers.looping_server().streamable_http_app()) as base, pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync(f"{base}/mcp", timeout=10)
    assert excinfo.value.message == "The server's tools pagination loops: the cursor 'again' came back."


def test_the_legacy_sse_transport() -> None:
    with serve(mcp_servers.sse_mcp_server()) as base:
        found = discover_mcp_server_sync(f"{base}/sse", transport="sse", timeout=10)
    assert (found.server.name, found.server.version) == ("sse-weather", "0.9.0")
    assert found.server.instructions == "Legacy transport."
    assert [t.name for t in found.tools] == ["get_forecast"]
    assert found.tools[0].description == "Forecast for a city."
    assert found.tools[0].input_schema["required"] == ["city"]
    assert [p.name for p in found.prompts] == ["plan_trip"]


def test_an_html_site_is_not_an_sse_mcp_server() -> None:
    with serve(mcp_servers.html_site()) as base, pytest.raises(SpecError) as excinfo:
        discover_mcp_server_sync(f"{base}/sse", transport="sse", timeout=10)
    assert excinfo.value.message == f"This is not an MCP server: {base}/sse answered with text/html."


@pytest.mark.parametrize("url", ["ftp://example.com/mcp", "/mcp", "http:///mcp"])
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(SpecError, match=r"is not an absolute http\(s\) URL\.$"):
        discover_mcp_server_sync(url, timeout=1)
