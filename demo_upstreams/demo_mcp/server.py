"""The demo-tools MCP server and its Streamable HTTP application."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import MCPServer, UserMessage
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from demo_upstreams.demo_mcp.countries import COUNTRIES, find_country
from demo_upstreams.demo_mcp.tools import register_tools
from demo_upstreams.demo_mcp.units import units_by_quantity

PRODUCT = "demo-tools"
VERSION = "1.0.0"
MCP_PATH = "/mcp"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
INSTRUCTIONS = (
    "Small, deterministic utilities: arithmetic, unit conversion, word counts, the time in a time zone, "
    "country facts and URL slugs. Every tool returns structured content described by its output schema."
)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_cursor(cursor: object) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(str(cursor).encode()))
        offset = decoded["offset"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise MCPError(code=INVALID_PARAMS, message="Invalid cursor", data={"cursor": cursor})
    return offset


def tools_pagination(page_size: int) -> ServerMiddleware[Any]:
    """A middleware that serves ``tools/list`` in pages of ``page_size`` tools, with an opaque
    ``nextCursor`` on every page but the last. (MCPServer lists every tool at once and has
    no page-size setting, so the listing it produces is sliced here.)"""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")

    async def paginate(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/list":
            return await call_next(ctx)
        cursor = (ctx.params or {}).get("cursor")
        offset = 0 if cursor is None else _decode_cursor(cursor)
        result = await call_next(ctx)
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return result
        tools = result["tools"]
        if offset > len(tools):
            raise MCPError(code=INVALID_PARAMS, message="Invalid cursor", data={"cursor": cursor})
        page = {**result, "tools": tools[offset : offset + page_size]}
        page.pop("nextCursor", None)
        if offset + page_size < len(tools):
            page["nextCursor"] = _encode_cursor(offset + page_size)
        return page

    return paginate


async def prompt_errors_as_invalid_params(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Answer an unknown prompt or a missing prompt argument with -32602 (Invalid params), as
    the MCP spec asks. MCPServer raises both as a bare ValueError, which would otherwise
    reach the client as an internal error (and the log as a traceback). The demo prompts
    themselves raise nothing, so every ValueError here is the caller's."""
    if ctx.method != "prompts/get":
        return await call_next(ctx)
    try:
        return await call_next(ctx)
    except ValueError as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from exc


def _register_resources(server: MCPServer) -> None:
    @server.resource(
        "demo://countries",
        name="countries",
        title="Countries",
        description="Every country the lookup_country tool knows, as a JSON list.",
        mime_type="application/json",
    )
    def countries() -> str:
        return json.dumps([country.as_dict() for country in COUNTRIES], ensure_ascii=False)

    @server.resource(
        "demo://countries/{code}",
        name="country",
        title="One country",
        description="One country by ISO alpha-2 or alpha-3 code (or name), as JSON.",
        mime_type="application/json",
    )
    def country(code: str) -> str:
        record = find_country(code)
        if record is None:
            raise ResourceNotFoundError(f"no country matches {code!r}")
        return json.dumps(record.as_dict(), ensure_ascii=False)

    @server.resource(
        "demo://units",
        name="units",
        title="Units",
        description="The units convert_units accepts, grouped by quantity, as JSON.",
        mime_type="application/json",
    )
    def units() -> str:
        return json.dumps(units_by_quantity())


def _register_prompts(server: MCPServer) -> None:
    @server.prompt(name="country_briefing", title="Country briefing")
    def country_briefing(country: str) -> list[UserMessage]:
        """Ask for a short travel briefing on a country, grounded in the lookup_country tool."""
        return [
            UserMessage(
                f"Use the lookup_country tool to look up {country!r}. Then write a three-line travel briefing: "
                "the capital, the currency (with its code) and the international calling code."
            )
        ]

    @server.prompt(name="convert_recipe", title="Convert a recipe")
    def convert_recipe(recipe: str, system: str = "metric") -> list[UserMessage]:
        """Ask to rewrite a recipe's quantities in another measurement system, using convert_units."""
        return [
            UserMessage(
                f"Rewrite every quantity in this recipe in {system} units, calling convert_units for each "
                f"conversion and rounding sensibly:\n\n{recipe}"
            )
        ]


def create_server(*, tools_page_size: int | None = None) -> MCPServer:
    """The demo-tools server: six tools, three resources (one a template) and two prompts.

    ``tools_page_size`` splits ``tools/list`` into pages (None: one page).
    """
    server: MCPServer = MCPServer(PRODUCT, title="Demo tools", version=VERSION, instructions=INSTRUCTIONS)
    register_tools(server)
    _register_resources(server)
    _register_prompts(server)
    server.middleware.append(prompt_errors_as_invalid_params)
    if tools_page_size is not None:
        server.middleware.append(tools_pagination(tools_page_size))
    return server


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "product": PRODUCT})


def transport_security(port: int, extra_hosts: Sequence[str] = ()) -> TransportSecuritySettings:
    """DNS-rebinding protection that admits this server's own loopback addresses.

    Accepted Host headers are exactly ``127.0.0.1:PORT``, ``localhost:PORT`` and
    ``[::1]:PORT`` (what a local client, or a gateway forwarding to the registered upstream
    URL, sends), plus ``extra_hosts`` (``host:port`` values, for a server reached under another
    name). A browser Origin must name one of the same hosts over http.
    """
    hosts = [f"{name}:{port}" for name in LOOPBACK_NAMES] + list(extra_hosts)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{host}" for host in hosts],
    )


def create_app(
    *,
    port: int,
    extra_hosts: Sequence[str] = (),
    tools_page_size: int | None = None,
    stateless: bool = False,
    json_response: bool = False,
) -> Starlette:
    """The Streamable HTTP application serving demo-tools at ``/mcp`` (and ``GET /healthz``).

    ``port`` is the port it will listen on: Host headers are checked against it.
    ``stateless`` serves without sessions; ``json_response`` answers POSTs with JSON instead
    of an SSE stream.
    """
    server = create_server(tools_page_size=tools_page_size)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=stateless,
        json_response=json_response,
        transport_security=transport_security(port, extra_hosts),
    )
    app.router.add_route("/healthz", healthz, methods=["GET"])
    return app
