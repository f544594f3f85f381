"""OpenAI error objects, the error format of the worker's ``/v1`` routes::

    {"error": {"message": "...", "type": "...", "param": "..." | null, "code": "..." | null}}

Statuses follow OpenAI's, so the official SDKs raise the matching exception classes (401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 429 RateLimitError, 400
BadRequestError, 5xx InternalServerError). On a stream whose headers are already sent, the
same object travels as a last SSE event (``sse_error_event``). Bodies never echo what the
consumer sent as a credential.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

from gateway_sync.worker.admission import QuotaRefusal

INVALID_REQUEST = "invalid_request_error"


def default_error_type(status: int) -> str:
    """The ``type`` OpenAI uses for a status, where the caller names none."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "api_error"
    return INVALID_REQUEST


def error_object(
    status: int, message: str, *, code: str | None, param: str | None = None, error_type: str | None = None
) -> dict[str, dict[str, str | None]]:
    return {
        "error": {
            "message": message,
            "type": error_type or default_error_type(status),
            "param": param,
            "code": code,
        }
    }


def openai_error(
    status: int,
    message: str,
    *,
    code: str | None,
    param: str | None = None,
    error_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = error_object(status, message, code=code, param=param, error_type=error_type)
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> web.Response:
    return openai_error(400, message, code=code, param=param)


def sse_error_event(message: str, *, code: str, error_type: str = "api_error", event_id: str = "") -> bytes:
    """The last event of a stream that cannot go on: ``data: {"error": {...}}``."""
    payload = json.dumps(error_object(500, message, code=code, error_type=error_type))
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {payload}\n\n".encode()


def not_ready() -> web.Response:
    return openai_error(503, "The gateway has no configuration yet.", code="not_ready")


def too_large(limit: int) -> web.Response:
    return openai_error(
        413,
        f"Request bodies are limited to {limit} bytes.",
        code="request_too_large",
        error_type="invalid_request_error",
    )


def quota_refused(quota: QuotaRefusal) -> web.Response:
    detail = "The rate limiter is unavailable; try again shortly." if quota.degraded else None
    return openai_error(
        429,
        detail or "Request rate limit reached; retry after the Retry-After delay.",
        code="rate_limit_exceeded",
        error_type="requests",
        headers=quota.headers,
    )


def unknown_stream() -> web.Response:
    return openai_error(
        404, "No resumable stream with this id (unknown, expired, or not this app's).", code="stream_not_found"
    )
