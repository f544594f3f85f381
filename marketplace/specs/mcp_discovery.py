"""Discovering what a remote MCP server offers, with the official ``mcp`` SDK (2.x) client.

`discover_mcp_server` connects (Streamable HTTP, or the legacy SSE transport), negotiates the
protocol (the SDK's ``auto`` mode: the 2026 ``server/discover`` probe, falling back to the
``initialize`` handshake), then lists tools, resources, resource templates and prompts,
following ``nextCursor`` pagination, for each capability the server declares.

Every failure becomes a `SpecError` a provider can act on; see `mcp_failures`.

The HTTP client is built by ``httpx_client_factory`` (the SDK's ``McpHttpClientFactory``
shape: ``(headers=, timeout=, auth=) -> httpx2.AsyncClient``), so a caller can inject a
client whose transport refuses private addresses. Note that the SDK speaks ``httpx2``, the
maintained fork of httpx, not ``httpx`` itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
import httpx2
import mcp_types as types
from mcp import Client, MCPError
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from marketplace.specs.errors import SpecError
from marketplace.specs.mcp_failures import ResponseLog, explain_failure
from marketplace.specs.tool_names import mcp_tool_name_problem

__all__ = [
    "HttpClientFactory",
    "McpDiscovery",
    "McpPrompt",
    "McpPromptArgument",
    "McpResource",
    "McpResourceTemplate",
    "McpServerInfo",
    "McpTool",
    "discover_mcp_server",
    "discover_mcp_server_sync",
]

TransportName = Literal["streamable_http", "sse"]
_CLIENT_INFO = types.Implementation(name="ai-open-platform-discovery", version="1.0")
_T = TypeVar("_T")


class HttpClientFactory(Protocol):
    """Builds the ``httpx2.AsyncClient`` the transport uses (the SDK's McpHttpClientFactory)."""

    def __call__(
        self,
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient: ...


@dataclass(frozen=True, slots=True)
class McpServerInfo:
    name: str
    version: str
    protocol_version: str
    title: str | None = None
    instructions: str | None = None
    capabilities: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class McpTool:
    name: str
    title: str | None
    description: str | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class McpResource:
    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class McpResourceTemplate:
    uri_template: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None


@dataclass(frozen=True, slots=True)
class McpPromptArgument:
    name: str
    description: str | None = None
    required: bool = False


@dataclass(frozen=True, slots=True)
class McpPrompt:
    name: str
    title: str | None = None
    description: str | None = None
    arguments: list[McpPromptArgument] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class McpDiscovery:
    """What the server offers. ``truncated`` names the lists cut at ``max_items``."""

    server: McpServerInfo
    tools: list[McpTool] = field(default_factory=list)
    resources: list[McpResource] = field(default_factory=list)
    resource_templates: list[McpResourceTemplate] = field(default_factory=list)
    prompts: list[McpPrompt] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)


def _default_factory(
    headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth)


async def discover_mcp_server(
    url: str,
    *,
    transport: TransportName = "streamable_http",
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
    max_items: int = 1000,
    httpx_client_factory: HttpClientFactory | None = None,
) -> McpDiscovery:
    """Connect to ``url`` and list everything the server offers.

    - ``timeout`` bounds the whole discovery (connection, handshake and every page), and each
      HTTP exchange within it.
    - Each list stops at ``max_items`` entries (and is then named in ``truncated``).
    - Raises SpecError when the server cannot be reached, asks for credentials, is not an MCP
      server, breaks the protocol, or names tools illegally (all such names are listed).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError(f"{url!r} is not an absolute http(s) URL.", field="url")
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    log = ResponseLog()
    factory = httpx_client_factory or _default_factory

    def observed_factory(
        headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
    ) -> httpx2.AsyncClient:
        client = factory(headers=headers, timeout=timeout, auth=auth)
        client.event_hooks["response"].append(log.record)
        return client

    try:
        with anyio.fail_after(timeout):
            return await _discover(url, transport, dict(headers or {}), timeout, max_items, observed_factory)
    except Exception as exc:
        # Our own SpecErrors (illegal names, looping cursors) come out of the SDK's task groups
        # wrapped in exception groups.
        raise explain_failure(exc, url=url, timeout=timeout, log=log) from None


def discover_mcp_server_sync(
    url: str,
    *,
    transport: TransportName = "streamable_http",
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
    max_items: int = 1000,
    httpx_client_factory: HttpClientFactory | None = None,
) -> McpDiscovery:
    """`discover_mcp_server` for synchronous callers (Django views), in a fresh event loop.

    When the calling thread already runs an event loop, the discovery runs in a worker thread
    with its own loop instead, so this never nests loops.
    """

    def run() -> McpDiscovery:
        return asyncio.run(
            discover_mcp_server(
                url,
                transport=transport,
                headers=headers,
                timeout=timeout,
                max_items=max_items,
                httpx_client_factory=httpx_client_factory,
            )
        )

    try:
        asyncio.get_running_loop()
        in_event_loop = True
    except RuntimeError:
        in_event_loop = False
    if not in_event_loop:
        return run()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-discovery") as pool:
        return pool.submit(run).result()


async def _discover(
    url: str,
    transport: TransportName,
    headers: dict[str, str],
    timeout: float,
    max_items: int,
    factory: HttpClientFactory,
) -> McpDiscovery:
    http_timeout = httpx2.Timeout(timeout)
    if transport == "sse":
        async with Client(
            sse_client(url, headers=headers, timeout=timeout, sse_read_timeout=timeout, httpx_client_factory=factory),
            read_timeout_seconds=timeout,
            client_info=_CLIENT_INFO,
            cache=None,
        ) as client:
            return await _list_everything(client, max_items)
    if transport != "streamable_http":
        raise SpecError(f"transport must be 'streamable_http' or 'sse', not {transport!r}.", field="transport")
    async with (
        factory(headers=headers, timeout=http_timeout) as http_client,
        Client(
            streamable_http_client(url, http_client=http_client),
            read_timeout_seconds=timeout,
            client_info=_CLIENT_INFO,
            cache=None,
        ) as client,
    ):
        return await _list_everything(client, max_items)


async def _list_everything(client: Client, max_items: int) -> McpDiscovery:
    capabilities = client.server_capabilities
    info = client.server_info
    server = McpServerInfo(
        name=info.name if info else "",
        version=info.version if info else "",
        title=info.title if info else None,
        protocol_version=client.protocol_version,
        instructions=client.instructions,
        capabilities=capabilities.model_dump(by_alias=True, exclude_none=True, mode="json"),
    )
    truncated: list[str] = []
    tools: list[McpTool] = []
    if capabilities.tools is not None:

        async def tool_page(cursor: str | None) -> tuple[list[McpTool], str | None]:
            page = await client.list_tools(cursor=cursor, cache_mode="bypass")
            return [_tool(t) for t in page.tools], page.next_cursor

        tools = await _collect(tool_page, max_items, "tools", truncated)
        _check_tool_names(tools)
    resources: list[McpResource] = []
    templates: list[McpResourceTemplate] = []
    if capabilities.resources is not None:

        async def resource_page(cursor: str | None) -> tuple[list[McpResource], str | None]:
            page = await client.list_resources(cursor=cursor, cache_mode="bypass")
            return [_resource(r) for r in page.resources], page.next_cursor

        async def template_page(cursor: str | None) -> tuple[list[McpResourceTemplate], str | None]:
            try:
                page = await client.list_resource_templates(cursor=cursor, cache_mode="bypass")
            except MCPError as exc:
                if exc.code == types.METHOD_NOT_FOUND and cursor is None:
                    return [], None  # resources without templates
                raise
            return [_template(t) for t in page.resource_templates], page.next_cursor

        resources = await _collect(resource_page, max_items, "resources", truncated)
        templates = await _collect(template_page, max_items, "resource_templates", truncated)
    prompts: list[McpPrompt] = []
    if capabilities.prompts is not None:

        async def prompt_page(cursor: str | None) -> tuple[list[McpPrompt], str | None]:
            page = await client.list_prompts(cursor=cursor, cache_mode="bypass")
            return [_prompt(p) for p in page.prompts], page.next_cursor

        prompts = await _collect(prompt_page, max_items, "prompts", truncated)
    return McpDiscovery(
        server=server,
        tools=tools,
        resources=resources,
        resource_templates=templates,
        prompts=prompts,
        truncated=truncated,
    )


async def _collect(
    fetch: Callable[[str | None], Awaitable[tuple[list[_T], str | None]]],
    max_items: int,
    what: str,
    truncated: list[str],
) -> list[_T]:
    """Follow ``nextCursor`` until the last page, ``max_items`` entries, or as many pages.

    A cursor that comes back a second time means the server paginates in a loop.
    """
    items: list[_T] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(max_items):
        page, cursor = await fetch(cursor)
        items.extend(page)
        if len(items) >= max_items:
            if len(items) > max_items or cursor:
                truncated.append(what)
            return items[:max_items]
        if not cursor:
            return items
        if cursor in seen:
            raise SpecError(f"The server's {what} pagination loops: the cursor {cursor!r} came back.")
        seen.add(cursor)
    truncated.append(what)
    return items


def _check_tool_names(tools: list[McpTool]) -> None:
    problems = [problem for t in tools if (problem := mcp_tool_name_problem(t.name)) is not None]
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            problems.append(f"{tool.name!r} is the name of more than one tool")
        seen.add(tool.name)
    if problems:
        count = len(problems)
        raise SpecError(
            f"The server's tools have {'an illegal name' if count == 1 else f'{count} illegal names'}: "
            f"{problems[0]}{' (and more)' if count > 1 else ''}. Tool names must be 1 to 128 characters "
            "of letters, digits, '_', '-' and '.'.",
            field="tools",
            details=problems,
        )


def _tool(tool: types.Tool) -> McpTool:
    annotations = (
        tool.annotations.model_dump(by_alias=True, exclude_none=True, mode="json") if tool.annotations else None
    )
    return McpTool(
        name=tool.name,
        title=tool.title or (tool.annotations.title if tool.annotations else None),
        description=tool.description,
        input_schema=dict(tool.input_schema),
        output_schema=dict(tool.output_schema) if tool.output_schema is not None else None,
        annotations=annotations,
    )


def _resource(resource: types.Resource) -> McpResource:
    return McpResource(
        uri=str(resource.uri),
        name=resource.name,
        title=resource.title,
        description=resource.description,
        mime_type=resource.mime_type,
        size=resource.size,
    )


def _template(template: types.ResourceTemplate) -> McpResourceTemplate:
    return McpResourceTemplate(
        uri_template=template.uri_template,
        name=template.name,
        title=template.title,
        description=template.description,
        mime_type=template.mime_type,
    )


def _prompt(prompt: types.Prompt) -> McpPrompt:
    return McpPrompt(
        name=prompt.name,
        title=prompt.title,
        description=prompt.description,
        arguments=[
            McpPromptArgument(name=a.name, description=a.description, required=bool(a.required))
            for a in prompt.arguments or []
        ],
    )
