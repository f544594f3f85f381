"""Small real MCP servers (and impostors) for the discovery tests, served by uvicorn.

Each app runs on a free loopback port in a background thread; `serve` yields its base URL.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server import Server
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BEARER_TOKEN = "s3cret-token"


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1:<free port> until the block ends; yields ``http://127.0.0.1:<port>``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="error", lifespan="auto", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _paged(items: Sequence[Any], cursor: str | None, size: int) -> tuple[list[Any], str | None]:
    start = int(cursor) if cursor else 0
    end = start + size
    return list(items[start:end]), (str(end) if end < len(items) else None)


def paginated_server(*, tool_count: int = 7, page_size: int = 3) -> Server[Any]:
    """A low-level server whose every list is paginated with ``nextCursor``."""
    tools = [
        types.Tool(
            name=f"tool_{i:02d}",
            title=f"Tool {i}",
            description=f"Does thing {i}.",
            input_schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
            output_schema={"type": "object", "properties": {"result": {"type": "integer"}}},
            annotations=types.ToolAnnotations(read_only_hint=True),
        )
        for i in range(tool_count)
    ]
    resources = [
        types.Resource(uri=f"file:///docs/{i}.md", name=f"doc-{i}", mime_type="text/markdown", size=100 + i)
        for i in range(4)
    ]
    templates = [types.ResourceTemplate(uri_template="file:///docs/{name}.md", name="doc", mime_type="text/markdown")]
    prompts = [
        types.Prompt(
            name=f"prompt_{i}",
            description=f"Prompt {i}",
            arguments=[types.PromptArgument(name="topic", description="What about", required=True)],
        )
        for i in range(3)
    ]

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        page, cursor = _paged(tools, params.cursor if params else None, page_size)
        return types.ListToolsResult(tools=page, next_cursor=cursor)

    async def list_resources(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        page, cursor = _paged(resources, params.cursor if params else None, 3)
        return types.ListResourcesResult(resources=page, next_cursor=cursor)

    async def list_templates(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=templates)

    async def list_prompts(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        page, cursor = _paged(prompts, params.cursor if params else None, 2)
        return types.ListPromptsResult(prompts=page, next_cursor=cursor)

    return Server(
        "paged-server",
        version="3.1.4",
        title="Paged Server",
        instructions="Call the tools in order.",
        on_list_tools=list_tools,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_list_prompts=list_prompts,
    )


def tool_server(names: Sequence[str]) -> Server[Any]:
    """A low-level server listing tools with exactly these names (legal or not)."""
    tools = [types.Tool(name=name, input_schema={"type": "object"}) for name in names]

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    return Server("named-tools", version="1.0", on_list_tools=list_tools)


def looping_server() -> Server[Any]:
    """A server whose tools/list always answers with the same next cursor."""

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[], next_cursor="again")

    return Server("looping", version="1.0", on_list_tools=list_tools)


def sse_mcp_server() -> Starlette:
    """A high-level MCPServer served over the legacy HTTP+SSE transport."""
    mcp = MCPServer("sse-weather", version="0.9.0", instructions="Legacy transport.")

    @mcp.tool()
    def get_forecast(city: str, days: int = 3) -> str:
        """Forecast for a city."""
        return f"{city}: sunny for {days} days"

    @mcp.prompt()
    def plan_trip(city: str) -> str:
        """Plan a trip."""
        return f"Plan a trip to {city}"

    return mcp.sse_app()


class RequireBearer:
    """Pure ASGI middleware: 401 unless ``Authorization: Bearer BEARER_TOKEN``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {BEARER_TOKEN}".encode():
                response = JSONResponse(
                    {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="mcp"'}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HandshakeEraOnly:
    """Pure ASGI middleware making a server look like a 2025-era one: it answers the 2026
    ``server/discover`` probe with "method not found", so clients fall back to ``initialize``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("method") == "server/discover":
            error = {"code": -32601, "message": "Method not found"}
            await JSONResponse({"jsonrpc": "2.0", "id": payload.get("id"), "error": error})(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _any_method(endpoint: Any) -> list[Route]:
    return [Route("/mcp", endpoint, methods=["GET", "POST", "DELETE"]), Route("/sse", endpoint, methods=["GET"])]


async def _html(request: Request) -> Response:
    return HTMLResponse("<!doctype html><html><body><h1>Welcome to our website</h1></body></html>")


async def _not_json_rpc(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": "1.2.3"})


async def _slow(request: Request) -> Response:
    await asyncio.sleep(3)
    return JSONResponse({})


def html_site() -> Starlette:
    return Starlette(routes=_any_method(_html))


def plain_json_api() -> Starlette:
    return Starlette(routes=_any_method(_not_json_rpc))


def slow_site() -> Starlette:
    return Starlette(routes=_any_method(_slow))
