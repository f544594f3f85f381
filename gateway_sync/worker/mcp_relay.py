"""How /mcp/{server} talks to the upstream MCP server and answers its client.

- ``send``: one upstream call through the REST path's shared ``ClientSession``, with an
  allow-list of the client's headers, the provider's credential (never the consumer's key)
  and the Host of the upstream; failures become ``UpstreamFailure`` (502/504 JSON-RPC).
- ``answer``: the upstream's answer for the client. SSE streams through event by event
  (never held whole, with keep-alive comments while idle); JSON is read whole. Either
  way the response to the client's request can be rewritten on its way (a ``Watcher``).
  A client that accepts only JSON gets the SSE answer's response as JSON.
- ``initialize_upstream``: a new upstream session from stored ``initialize`` params.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp import web

from gateway_sync.contract.schema import Product
from gateway_sync.worker.ids import new_id
from gateway_sync.worker.mcp_wire import (
    ANY_ID,
    BOTH,
    DEFAULT_VERSION,
    FORWARDED,
    JSON_TYPE,
    RETURNED,
    SESSION_HEADER,
    SSE,
    VERSION_HEADER,
    SseEvents,
    accepts_sse,
    answers,
    event_data,
    refusal,
    with_data,
)
from gateway_sync.worker.record import UPSTREAM_BROKEN, UPSTREAM_TIMEOUT, UPSTREAM_UNREACHABLE, RequestRecord
from gateway_sync.worker.rest_delivery import upstream_credential
from gateway_sync.worker.wire import CHUNK, REQUEST_ID, BodyTooLarge, RequestBody

if TYPE_CHECKING:
    from gateway_sync.worker.proxy_rest import RestProxy

log = logging.getLogger(__name__)

# An idle SSE stream gets a comment this often, so that proxies and clients keep it open.
KEEPALIVE_S = 15.0
# How often an idle stream looks whether its client is still there (aiohttp does not
# cancel a handler whose client left, and an idle GET stream writes nothing to find out).
CLIENT_CHECK_S = 1.0


class UpstreamFailure(Exception):
    """The upstream call failed before an answer; ``response`` is what the client gets."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class Watcher(Protocol):
    """Sees the upstream's response to the client's request (a JSON-RPC result or error)
    and returns a replacement, or None to send it unchanged."""

    async def __call__(self, response: dict[str, Any]) -> dict[str, Any] | None: ...


class Upstream:
    """The upstream MCP server of one client request, and that request's particulars."""

    def __init__(
        self,
        proxy: RestProxy,
        product: Product,
        request: web.Request,
        record: RequestRecord,
        returned: dict[str, str],
    ) -> None:
        self.proxy = proxy
        self.product = product
        self.request = request
        self.record = record
        self.returned = returned  # headers for the client: quotas, X-Request-Id
        self.client_accepts_sse = accepts_sse(request.headers.get("Accept", ""))

    async def read_body(self) -> bytes | web.Response:
        """The client's message (MCP messages are small: read whole, so it can be resent)."""
        limit = self.proxy.settings.max_body_bytes
        too_large = refusal(413, f"Request bodies are limited to {limit} bytes.", "body_too_large")
        if self.request.content_length is not None and self.request.content_length > limit:
            return too_large
        body = RequestBody(self.request, limit)
        try:
            data = b"".join([chunk async for chunk in body.chunks()])
        except BodyTooLarge:
            return too_large
        self.record.bytes_in = len(data)
        return data

    def headers(self, method: str, session_headers: dict[str, str], *, from_client: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        if from_client:
            for name in FORWARDED:
                value = self.request.headers.get(name)
                if value is not None:
                    headers[name] = value
        headers[REQUEST_ID] = self.returned[REQUEST_ID]
        # The upstream gets what the spec requires whatever the client sent (lenient Accept).
        headers["Accept"] = SSE if method == "GET" else BOTH
        if method == "POST":
            headers.setdefault("Content-Type", JSON_TYPE)
        headers.update(session_headers)
        credential = upstream_credential(self.proxy, self.product.upstream, self.product.slug)
        if isinstance(credential, web.Response):
            raise UpstreamFailure(refusal(502, "The upstream credential is unavailable.", "upstream_credential"))
        headers.update(credential)
        return headers

    def client_headers(self, upstream_response: aiohttp.ClientResponse, session_id: str) -> dict[str, str]:
        headers = {name: upstream_response.headers[name] for name in RETURNED if name in upstream_response.headers}
        headers.update(self.returned)
        if session_id:
            headers[SESSION_HEADER] = session_id  # the gateway's, never the upstream's
        return headers

    async def passthrough(self, upstream_response: aiohttp.ClientResponse) -> web.Response:
        """A non-streamed answer as the upstream gave it (status, allowed headers, body)."""
        async with upstream_response:
            body = await _read(upstream_response, self.record)
            return web.Response(
                status=upstream_response.status, body=body, headers=self.client_headers(upstream_response, "")
            )


async def send(
    upstream: Upstream,
    method: str,
    session_headers: dict[str, str],
    *,
    data: bytes | None = None,
    stream: bool = False,
    from_client: bool = True,
) -> aiohttp.ClientResponse:
    """One upstream call; ``stream`` (the GET stream) lifts the idle read timeout."""
    target = upstream.product.upstream
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=target.connect_timeout_ms / 1000,
        sock_read=None if stream else target.read_timeout_ms / 1000,
    )
    record = upstream.record
    record.attempts += 1
    try:
        response = await upstream.proxy.session.request(
            method,
            target.url,
            headers=upstream.headers(method, session_headers, from_client=from_client),
            data=data,
            allow_redirects=False,
            timeout=timeout,
            ssl=target.tls_verify,
        )
    except TimeoutError as exc:
        record.upstream_error = UPSTREAM_TIMEOUT
        raise UpstreamFailure(refusal(504, "The MCP server did not answer in time.", "upstream_timeout")) from exc
    except (aiohttp.ClientError, OSError) as exc:
        record.upstream_error = UPSTREAM_UNREACHABLE
        log.warning("MCP server %s unreachable: %r", upstream.product.slug, exc)
        raise UpstreamFailure(refusal(502, "The MCP server could not be reached.", "upstream_unreachable")) from exc
    if record.upstream_latency_s is None:
        record.upstream_latency_s = time.perf_counter() - record.started
    return response


async def answer(
    upstream: Upstream,
    upstream_response: aiohttp.ClientResponse,
    session_id: str,
    *,
    rpc_id: object,
    on_message: Watcher | None,
    json_only: bool,
) -> web.StreamResponse:
    """The client's answer from the upstream's (see the module docstring). ``rpc_id``:
    the JSON-RPC id of the client's request; None for a GET stream or a notification."""
    async with upstream_response:
        headers = upstream.client_headers(upstream_response, session_id)
        if upstream_response.status == 200 and upstream_response.content_type == SSE:
            if json_only:
                return await _collect(upstream, upstream_response, headers, rpc_id, on_message)
            return await _stream(upstream, upstream_response, headers, rpc_id, on_message)
        body = await _read(upstream_response, upstream.record)
        if on_message is not None and upstream_response.content_type == JSON_TYPE and body:
            try:
                message = json.loads(body)
            except ValueError:
                message = None
            if answers(message, rpc_id):
                replaced = await on_message(message)
                if replaced is not None:
                    body = json.dumps(replaced, separators=(",", ":")).encode()
        return web.Response(status=upstream_response.status, body=body, headers=headers)


async def _read(upstream_response: aiohttp.ClientResponse, record: RequestRecord) -> bytes:
    try:
        return await upstream_response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        record.upstream_error = UPSTREAM_BROKEN
        raise UpstreamFailure(refusal(502, "The MCP server's answer broke off.", "upstream_broken")) from exc


async def _stream(
    upstream: Upstream,
    upstream_response: aiohttp.ClientResponse,
    headers: dict[str, str],
    rpc_id: object,
    on_message: Watcher | None,
) -> web.StreamResponse:
    """Relay the upstream's SSE stream event by event. Once the response to the client's
    request has gone out, the exchange is complete: a client leaving after that (as the SDK
    does on reading it) is no early disconnect."""
    record = upstream.record
    response = web.StreamResponse(status=upstream_response.status, headers=headers)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx and kin: pass each event on at once
    await response.prepare(upstream.request)
    record.status = response.status  # sent: whatever happens next, this is the status
    loop = asyncio.get_running_loop()
    events = SseEvents()
    delivered = False
    last_write = loop.time()
    # One read in flight at a time, awaited in ticks but never cancelled by one: a read
    # cancelled on a tick could lose bytes it had already taken from the stream.
    reading: asyncio.Future[bytes] | None = None
    try:
        while True:
            if reading is None:
                reading = asyncio.ensure_future(upstream_response.content.readany())
            done, _ = await asyncio.wait((reading,), timeout=CLIENT_CHECK_S)
            if not done:
                transport = upstream.request.transport
                if transport is None or transport.is_closing():
                    record.client_closed = rpc_id is not None and not delivered
                    return response
                if loop.time() - last_write >= KEEPALIVE_S:
                    # Only whole events are ever written, so a comment fits here.
                    if not await _write(response, b": keep-alive\n\n", record):
                        record.client_closed = rpc_id is not None and not delivered
                        return response
                    last_write = loop.time()
                continue
            finished, reading = reading, None
            try:
                chunk = finished.result()
            except (aiohttp.ClientError, TimeoutError) as exc:
                return _broke_off(upstream, response, exc)
            if not chunk:
                break
            for event in events.feed(chunk):
                is_answer = False
                if rpc_id is not None and b"data:" in event:
                    message = event_data(event)
                    if answers(message, rpc_id):
                        is_answer = True
                        replaced = await on_message(message) if on_message is not None else None
                        if replaced is not None:
                            event = with_data(event, replaced)
                if not await _write(response, event, record):
                    record.client_closed = rpc_id is not None and not delivered
                    return response
                delivered = delivered or is_answer
                last_write = loop.time()
    except asyncio.CancelledError:  # a server cancelling handlers whose client left (aiohttp's option)
        record.client_closed = rpc_id is not None and not delivered
        raise
    finally:
        if reading is not None:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
    if events.pending and not await _write(response, events.pending, record):
        return response
    try:
        await response.write_eof()
    except ConnectionError:
        record.client_closed = rpc_id is not None and not delivered
    return response


def _broke_off(upstream: Upstream, response: web.StreamResponse, exc: BaseException) -> web.StreamResponse:
    # Headers are gone: nothing left but to cut the client's connection short.
    upstream.record.upstream_error = UPSTREAM_BROKEN
    log.warning("MCP server %s: stream broke off: %r", upstream.product.slug, exc)
    if upstream.request.transport is not None:
        upstream.request.transport.close()
    return response


async def _write(response: web.StreamResponse, data: bytes, record: RequestRecord) -> bool:
    """False when the client has gone away."""
    try:
        await response.write(data)
    except ConnectionError:
        return False
    record.bytes_out += len(data)
    return True


async def _collect(
    upstream: Upstream,
    upstream_response: aiohttp.ClientResponse,
    headers: dict[str, str],
    rpc_id: object,
    on_message: Watcher | None,
) -> web.Response:
    """For a client that accepts only JSON: the SSE answer's response, as JSON (the
    notifications before it are dropped: this client could not have taken them)."""
    message = await _answer_in_stream(upstream_response, rpc_id, upstream.record)
    if on_message is not None and message is not None:
        message = await on_message(message) or message
    if message is None:
        return refusal(502, "The MCP server's stream ended without a response.", "upstream_no_response")
    headers["Content-Type"] = JSON_TYPE
    return web.Response(status=200, body=json.dumps(message, separators=(",", ":")).encode(), headers=headers)


async def _answer_in_stream(
    upstream_response: aiohttp.ClientResponse, request_id: object, record: RequestRecord
) -> dict[str, Any] | None:
    """The first response in an SSE stream (to ``request_id`` when given)."""
    events = SseEvents()
    while True:
        try:
            chunk = await upstream_response.content.read(CHUNK)
        except (aiohttp.ClientError, TimeoutError) as exc:
            record.upstream_error = UPSTREAM_BROKEN
            raise UpstreamFailure(refusal(502, "The MCP server's answer broke off.", "upstream_broken")) from exc
        if not chunk:
            return None
        for event in events.feed(chunk):
            message = event_data(event)
            if answers(message, request_id if request_id is not None else ANY_ID):
                return message


async def initialize_upstream(upstream: Upstream, params: dict[str, Any]) -> tuple[str, str]:
    """Open a new upstream session with ``params`` (initialize, then initialized);
    its session id and protocol version. UpstreamFailure when the upstream will not."""
    request_id = f"gateway-reinit-{new_id()}"
    initialize = {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params}
    body = json.dumps(initialize, separators=(",", ":")).encode()
    failed = UpstreamFailure(refusal(502, "The MCP server would not re-open the session.", "upstream_reinitialize"))
    async with await send(upstream, "POST", {}, data=body, from_client=False) as upstream_response:
        session_id = upstream_response.headers.get(SESSION_HEADER, "").strip()
        if upstream_response.status != 200 or not session_id:
            raise failed
        if upstream_response.content_type == SSE:
            message = await _answer_in_stream(upstream_response, request_id, upstream.record)
        else:
            try:
                message = json.loads(await _read(upstream_response, upstream.record))
            except ValueError:
                message = None
    result = message.get("result") if isinstance(message, dict) else None
    if not isinstance(result, dict):
        raise failed
    chosen = result.get("protocolVersion")
    version = chosen if isinstance(chosen, str) else str(params.get("protocolVersion") or DEFAULT_VERSION)
    initialized = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
    headers = {SESSION_HEADER: session_id, VERSION_HEADER: version}
    notified = await send(upstream, "POST", headers, data=initialized, from_client=False)
    notified.release()
    return session_id, version
