"""The MCP gateway's per-server endpoint: ``POST/GET/DELETE /mcp/{server}`` (Streamable
HTTP, 2025-11-25), in front of the remote MCP server a ``mcp_server`` product names.

Per request: the pinned snapshot → the MCP product → ``Origin`` (403 unless allowed) →
``MCP-Protocol-Version`` (400 if unknown) → the caller (mcp_auth.py) → quotas
(admission.py) → the session (mcp_sessions.py: the gateway's id, mapped to the upstream's)
→ one upstream call through the REST path's shared ``ClientSession``, with the provider's
credential and never the consumer's → the answer, JSON or SSE, streamed event by event
(mcp_relay.py). Refusals are JSON-RPC error bodies with the spec's HTTP status.

Sessions: an ``initialize`` answered with an upstream session id gets a fresh gateway id
in its place. When the upstream answers 404 to a known session (it expired or restarted),
the gateway re-initializes it with the stored ``initialize`` params and sends the request
again, so the client never notices. DELETE ends both.

Per-tool permissions: the plan's ``allowed_tools`` (empty: every tool) filter
``tools/list`` results, and a ``tools/call`` of another tool is answered, without calling
the upstream, with the JSON-RPC error an unknown tool gets (-32602).

Routing headers (2026-07-28): an ``Mcp-Method`` or ``Mcp-Name`` header that disagrees with
the body is a 400 with -32020, without calling the upstream; absent ones are not required.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import redis
from aiohttp import web

from gateway_sync.contract.schema import Product
from gateway_sync.worker.admission import QuotaRefusal, check_request_quotas
from gateway_sync.worker.app import SETTINGS_KEY, notify_observers, request_snapshot
from gateway_sync.worker.auth import Caller
from gateway_sync.worker.ids import new_id
from gateway_sync.worker.mcp_auth import METADATA_PREFIX, authenticate_mcp, mcp_product, protected_resource_metadata
from gateway_sync.worker.mcp_relay import Upstream, UpstreamFailure, answer, initialize_upstream, send
from gateway_sync.worker.mcp_sessions import (
    McpSession,
    MemorySessionStore,
    RedisSessionStore,
    SessionStore,
    new_session_id,
    session_redis_client,
)
from gateway_sync.worker.mcp_wire import (
    DEFAULT_VERSION,
    INVALID_PARAMS,
    KNOWN_VERSIONS,
    SESSION_HEADER,
    UNSUPPORTED_VERSION,
    VERSION_HEADER,
    Message,
    call_failed,
    filter_tools,
    header_mismatch,
    parse_message,
    refusal,
    rpc_error,
)
from gateway_sync.worker.proxy_rest import PROXY_KEY
from gateway_sync.worker.record import RequestRecord
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.wire import REQUEST_ID

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class McpGateway:
    settings: WorkerSettings
    sessions: SessionStore


MCP_KEY = web.AppKey("mcp_gateway", McpGateway)


def register_mcp_proxy(app: web.Application) -> None:
    """Route registrar for ``create_app`` (after ``register_rest_proxy``, whose upstream
    client and limiter it shares): /mcp/{server}, its RFC 9728 document, the session store."""
    for method in ("POST", "GET", "DELETE"):
        app.router.add_route(method, "/mcp/{server}", handle_mcp)
    app.router.add_get(f"{METADATA_PREFIX}/mcp/{{server}}", protected_resource_metadata)
    app.cleanup_ctx.append(_mcp_lifespan)


async def _mcp_lifespan(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    sessions: SessionStore
    if settings.redis_url:
        sessions = RedisSessionStore(session_redis_client(settings.redis_url), settings.mcp_session_idle_s)
    else:
        sessions = MemorySessionStore(settings.mcp_session_idle_s)
    app[MCP_KEY] = McpGateway(settings=settings, sessions=sessions)
    try:
        yield
    finally:
        await sessions.aclose()


async def handle_mcp(request: web.Request) -> web.StreamResponse:
    request_id = request.headers.get(REQUEST_ID, "").strip()[:200] or new_id()
    record = RequestRecord(protocol="mcp", method=request.method, path=request.path, request_id=request_id)
    response: web.StreamResponse | None = None
    try:
        response = await _handle(request, request_id, record)
        if not response.prepared:
            response.headers[REQUEST_ID] = request_id
            record.bytes_out = response.content_length or 0
        return response
    except (ConnectionResetError, asyncio.CancelledError):  # the client went away mid-way
        raise
    except Exception:
        record.status = 500
        raise
    finally:
        if response is not None:
            record.status = response.status
        notify_observers(request.app, record)


async def _handle(request: web.Request, request_id: str, record: RequestRecord) -> web.StreamResponse:
    gateway = request.app[MCP_KEY]
    settings = gateway.settings
    snapshot = request_snapshot(request)
    if snapshot is None:
        return refusal(503, "The gateway has no configuration yet.", "not_ready")
    slug = request.match_info["server"]
    product = mcp_product(snapshot, slug)
    if product is None:
        return refusal(404, f"No MCP server {slug!r} on this gateway.", "unknown_server")
    record.product_id, record.product_slug, record.version_id = product.id, product.slug, product.version_id
    if product.mcp_transport not in ("", "streamable_http"):  # legacy SSE and REST-to-MCP: later slices
        return refusal(501, f"{slug!r} is not served over Streamable HTTP yet.", "transport_not_served")

    origin = request.headers.get("Origin", "").strip().rstrip("/")
    if origin and origin not in settings.mcp_allowed_origins:
        # DNS rebinding: a page in a browser must not reach MCP servers through the gateway.
        return refusal(403, "This Origin may not call the gateway's MCP endpoints.", "origin_not_allowed")
    version = request.headers.get(VERSION_HEADER, "").strip()
    if version and version not in KNOWN_VERSIONS:
        data = {"supported": sorted(KNOWN_VERSIONS), "requested": version[:40]}
        return rpc_error(400, UNSUPPORTED_VERSION, "Unsupported MCP-Protocol-Version.", data=data)

    caller = authenticate_mcp(request, snapshot, product, pepper=settings.key_hash_pepper)
    if isinstance(caller, web.Response):
        return caller
    record.app_id, record.key_prefix = caller.key.app_id, caller.key.prefix
    checked = await check_request_quotas(request.app[PROXY_KEY].limiter, caller, None, record)
    if isinstance(checked, QuotaRefusal):
        detail = "The rate limiter is unavailable." if checked.degraded else "The request quota is spent."
        return refusal(429, detail, "rate_limited", headers=checked.headers)

    exchange = _Exchange(request, gateway, product, caller, record, request_id, checked, version)
    try:
        return await exchange.run()
    except UpstreamFailure as failure:
        return failure.response
    except ConnectionError:  # the client went away (an OSError, but no store trouble)
        raise
    except (redis.RedisError, OSError, TimeoutError):
        log.exception("MCP session store unavailable")
        return refusal(503, "The session store is unavailable; try again shortly.", "sessions_unavailable")


class _Exchange:
    """One client request on /mcp/{server}: its session, its upstream call(s), its answer."""

    def __init__(
        self,
        request: web.Request,
        gateway: McpGateway,
        product: Product,
        caller: Caller,
        record: RequestRecord,
        request_id: str,
        quota_headers: dict[str, str],
        version: str,
    ) -> None:
        self.request = request
        self.gateway = gateway
        self.product = product
        self.caller = caller
        self.record = record
        self.version = version
        self.upstream = Upstream(
            request.app[PROXY_KEY], product, request, record, {**quota_headers, REQUEST_ID: request_id}
        )
        self.session_id = request.headers.get(SESSION_HEADER, "").strip()
        self.session: McpSession | None = None

    async def run(self) -> web.StreamResponse:
        if self.session_id:
            found = await self.gateway.sessions.get(self.session_id)
            if found is None or found.app_id != self.caller.key.app_id or found.product_id != self.product.id:
                # Another app's session is as unknown as an expired one: nothing to learn from it.
                return refusal(404, "Session not found; initialize a new one.", "unknown_session")
            self.session = found
        if self.request.method == "DELETE":
            return await self._delete()
        if self.request.method == "GET":
            return await self._get()
        return await self._post()

    def _headers(self) -> dict[str, str]:
        """The session and version headers of the next upstream call."""
        headers: dict[str, str] = {}
        if self.session is not None:
            headers[SESSION_HEADER] = self.session.upstream_session_id
        version = self.version or (self.session.protocol_version if self.session else "")
        if version:
            headers[VERSION_HEADER] = version
        return headers

    async def _delete(self) -> web.StreamResponse:
        if self.session is None:
            return await self.upstream.passthrough(await send(self.upstream, "DELETE", self._headers()))
        try:
            upstream_response = await send(self.upstream, "DELETE", self._headers())
        finally:
            await self.gateway.sessions.delete(self.session_id)
        if upstream_response.status == 404:  # the upstream had already forgotten it: ended all the same
            upstream_response.release()
            return web.Response(status=204)
        return await self.upstream.passthrough(upstream_response)

    async def _get(self) -> web.StreamResponse:
        upstream_response = await send(self.upstream, "GET", self._headers(), stream=True)
        if upstream_response.status == 404 and self.session is not None:
            upstream_response.release()
            await self._reinitialize(self.session)
            upstream_response = await send(self.upstream, "GET", self._headers(), stream=True)
        return await answer(
            self.upstream, upstream_response, self.session_id, rpc_id=None, on_message=None, json_only=False
        )

    async def _post(self) -> web.StreamResponse:
        body = await self.upstream.read_body()
        if isinstance(body, web.Response):
            return body
        message = parse_message(body)
        if isinstance(message, web.Response):
            return message
        mismatch = header_mismatch(message, self.request.headers)
        if mismatch is not None:  # 2026-07-28: the routing headers must repeat the body
            return mismatch
        allowed = frozenset(self.caller.plan.allowed_tools)
        tool = message.tool_name
        if tool is not None:
            self.record.tool_name = tool
            if allowed and tool not in allowed:
                # As for a tool the server does not have (spec: "Unknown tools" are -32602),
                # which is what tools/list has told this client.
                self.record.is_error = True
                return rpc_error(200, INVALID_PARAMS, f"Unknown tool: {tool}", request_id=message.request_id)
        if message.method == "initialize" and self.session is None:
            return await self._initialize(body, message)
        upstream_response = await send(self.upstream, "POST", self._headers(), data=body)
        if upstream_response.status == 404 and self.session is not None:
            upstream_response.release()
            await self._reinitialize(self.session)
            upstream_response = await send(self.upstream, "POST", self._headers(), data=body)
        return await answer(
            self.upstream,
            upstream_response,
            self.session_id,
            rpc_id=message.request_id if message.is_request else None,
            on_message=self._watcher(message, allowed),
            json_only=not self.upstream.client_accepts_sse,
        )

    def _watcher(self, message: Message, allowed: frozenset[str]) -> _Watcher | None:
        if not message.is_request or message.method not in ("tools/list", "tools/call"):
            return None
        return _Watcher(message, allowed, self.record)

    async def _initialize(self, body: bytes, message: Message) -> web.StreamResponse:
        upstream_response = await send(self.upstream, "POST", self._headers(), data=body)
        upstream_session = upstream_response.headers.get(SESSION_HEADER, "").strip()
        watcher = None
        if upstream_session and upstream_response.status == 200:
            requested = message.params.get("protocolVersion")
            self.session_id = new_session_id()
            self.session = McpSession(
                app_id=self.caller.key.app_id,
                product_id=self.product.id,
                upstream_session_id=upstream_session,
                protocol_version=requested if isinstance(requested, str) else DEFAULT_VERSION,
                initialize_params=message.params,
            )
            await self.gateway.sessions.put(self.session_id, self.session)
            watcher = _Negotiated(self)
        return await answer(
            self.upstream,
            upstream_response,
            self.session_id,
            rpc_id=message.request_id,
            on_message=watcher,
            json_only=not self.upstream.client_accepts_sse,
        )

    async def _reinitialize(self, session: McpSession) -> None:
        """The upstream forgot this session: open a new one with the same ``initialize``
        params and point the gateway's session id at it."""
        log.info("MCP server %s: upstream session expired; re-initializing", self.product.slug)
        upstream_session, version = await initialize_upstream(self.upstream, session.initialize_params)
        self.session = replace(session, upstream_session_id=upstream_session, protocol_version=version)
        await self.gateway.sessions.put(self.session_id, self.session)


class _Watcher:
    """Sees the response to a tools/list (filters it) or a tools/call (notes its outcome)."""

    def __init__(self, message: Message, allowed: frozenset[str], record: RequestRecord) -> None:
        self.method = message.method
        self.allowed = allowed
        self.record = record

    async def __call__(self, response: dict[str, Any]) -> dict[str, Any] | None:
        if self.method == "tools/call":
            self.record.is_error = call_failed(response)
            return None
        return filter_tools(response, self.allowed)


class _Negotiated:
    """Sees the InitializeResult: stores the version the upstream chose, if not the one asked."""

    def __init__(self, exchange: _Exchange) -> None:
        self.exchange = exchange

    async def __call__(self, response: dict[str, Any]) -> dict[str, Any] | None:
        result = response.get("result")
        session = self.exchange.session
        chosen = result.get("protocolVersion") if isinstance(result, dict) else None
        if session is not None and isinstance(chosen, str) and chosen != session.protocol_version:
            self.exchange.session = replace(session, protocol_version=chosen)
            await self.exchange.gateway.sessions.put(self.exchange.session_id, self.exchange.session)
        return None
