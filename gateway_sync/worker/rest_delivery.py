"""How the REST path talks to an upstream and answers its client: the forwarded request
headers and credential, the response delivered whole (small, known length: one write) or
streamed, and the problem answers for what goes wrong on the way (413, 429, 502, 504)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from cryptography.fernet import InvalidToken
from multidict import CIMultiDict

from gateway_sync.contract.schema import Upstream
from gateway_sync.worker.errors import problem
from gateway_sync.worker.record import (
    UPSTREAM_BROKEN,
    UPSTREAM_TIMEOUT,
    UPSTREAM_UNREACHABLE,
    RequestRecord,
)
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.wire import (
    CHUNK,
    REQUEST_ID,
    RequestBody,
    forwarded_request_headers,
    forwarded_response_headers,
)

if TYPE_CHECKING:
    from gateway_sync.worker.proxy_rest import RestProxy

log = logging.getLogger(__name__)

ATTEMPTS = "X-Gateway-Attempts"
TARGET = "X-Gateway-Target"
# Upstream responses up to this size (by Content-Length) are read whole and sent in one
# write; larger or open-ended ones (SSE, chunked) stream chunk by chunk.
WHOLE_RESPONSE_LIMIT = 64 * 1024


def request_headers(request: web.Request, request_id: str) -> CIMultiDict[str]:
    headers = forwarded_request_headers(request.headers)
    headers[REQUEST_ID] = request_id
    if request.content_length is not None:
        headers["Content-Length"] = str(request.content_length)
    return headers


def upstream_credential(proxy: RestProxy, upstream: Upstream, slug: str) -> dict[str, str] | web.Response:
    if not (upstream.auth_header and upstream.secret_encrypted):
        return {}
    try:
        return {upstream.auth_header: proxy.decrypt(upstream.secret_encrypted)}
    except (InvalidToken, ValueError):
        log.error("product %s: the upstream credential cannot be decrypted (UPSTREAM_SECRET_KEYS?)", slug)
        return problem(502, "Bad Gateway", "The upstream credential is unavailable.", "upstream_credential")


async def deliver(
    request: web.Request,
    upstream_response: aiohttp.ClientResponse,
    quota_headers: dict[str, str],
    request_id: str,
    record: RequestRecord,
    extra: dict[str, str],
) -> web.StreamResponse:
    async with upstream_response:
        if small_and_whole(request, upstream_response):
            return await deliver_whole(upstream_response, quota_headers, request_id, record, extra)
        response = web.StreamResponse(status=upstream_response.status, reason=upstream_response.reason)
        response.headers.extend(forwarded_response_headers(upstream_response.headers))
        response.headers.update(quota_headers)
        response.headers.update(extra)
        response.headers[REQUEST_ID] = request_id
        await response.prepare(request)
        while True:
            try:
                chunk = await upstream_response.content.read(CHUNK)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Headers are gone: nothing left but to cut the connection short.
                record.upstream_error = UPSTREAM_BROKEN
                log.warning("product %s: upstream response broke off: %r", record.product_slug, exc)
                if request.transport is not None:
                    request.transport.close()
                return response
            if not chunk:
                break
            try:
                await response.write(chunk)
            except ConnectionError:
                # The client went away mid-stream: its business, not a gateway error.
                record.client_closed = True
                return response
            record.bytes_out += len(chunk)
        await response.write_eof()
    return response


def small_and_whole(request: web.Request, upstream_response: aiohttp.ClientResponse) -> bool:
    """A response worth reading whole and sending in one write: a known, small length and a
    body to send (not HEAD, 204 or 304). SSE and other open-ended bodies keep streaming."""
    length = upstream_response.content_length
    return (
        length is not None
        and length <= WHOLE_RESPONSE_LIMIT
        and request.method != "HEAD"
        and upstream_response.status not in (204, 304)
    )


async def deliver_whole(
    upstream_response: aiohttp.ClientResponse,
    quota_headers: dict[str, str],
    request_id: str,
    record: RequestRecord,
    extra: dict[str, str],
) -> web.Response:
    try:
        payload = await upstream_response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Nothing was sent yet, so the client gets a clear answer instead of a cut connection.
        record.upstream_error = UPSTREAM_BROKEN
        log.warning("product %s: upstream response broke off: %r", record.product_slug, exc)
        failure = problem(502, "Bad Gateway", "The upstream's response broke off.", "upstream_broken")
        failure.headers.update(extra)
        return failure
    headers = forwarded_response_headers(upstream_response.headers)
    headers.popall("Content-Length", None)  # set from the body
    response = web.Response(
        status=upstream_response.status, reason=upstream_response.reason, body=payload, headers=headers
    )
    response.headers.update(quota_headers)
    response.headers.update(extra)
    response.headers[REQUEST_ID] = request_id
    return response


def too_many(headers: dict[str, str], *, degraded: bool) -> web.Response:
    if degraded:
        detail = "The rate limiter is unavailable; try again shortly."
    else:
        detail = "The request quota is spent; retry after the Retry-After delay."
    return problem(429, "Too Many Requests", detail, "rate_limited", headers=headers)


def too_large(settings: WorkerSettings) -> web.Response:
    return problem(
        413, "Content Too Large", f"Request bodies are limited to {settings.max_body_bytes} bytes.", "body_too_large"
    )


def upstream_failure(
    exc: BaseException, body: RequestBody, settings: WorkerSettings, record: RequestRecord
) -> web.Response:
    if body.too_large:
        return too_large(settings)
    transport = body.request.transport
    if transport is None or transport.is_closing():
        # The client left while its body was being sent on: nobody will read this answer.
        record.client_closed = True
        return problem(400, "Bad Request", "The client closed the connection.", "client_closed")
    if isinstance(exc, TimeoutError):
        record.upstream_error = UPSTREAM_TIMEOUT
        return problem(504, "Gateway Timeout", "The upstream did not answer in time.", "upstream_timeout")
    if isinstance(exc, aiohttp.ClientError | OSError):
        record.upstream_error = UPSTREAM_UNREACHABLE
        log.warning("product %s: upstream unreachable: %r", record.product_slug, exc)
        return problem(502, "Bad Gateway", "The upstream could not be reached.", "upstream_unreachable")
    raise exc
