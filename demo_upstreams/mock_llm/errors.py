"""OpenAI error objects: every failure of the mock, asked for or not, speaks this shape::

{"error": {"message": "...", "type": "...", "param": "..." | null, "code": "..." | null}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

JSONObject = dict[str, Any]


class OpenAIError(Exception):
    """Raised anywhere in a handler; the app's middleware answers with ``response()``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or default_error_type(status)
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> JSONObject:
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def default_error_type(status: int) -> str:
    """The ``type`` OpenAI uses for a status, where the caller names none."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def requested_failure(status: int, *, retry_after: int | None) -> OpenAIError:
    """The failure the ``fail`` knob asks for, shaped like OpenAI's own."""
    headers: dict[str, str] = {}
    if status in (429, 503):
        headers["Retry-After"] = str(1 if retry_after is None else retry_after)
    elif retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    code = {429: "rate_limit_exceeded", 503: "service_unavailable"}.get(status)
    message = {
        429: "Rate limit reached for demo-llm (requested by the fail knob).",
        500: "The server had an error while processing your request (requested by the fail knob).",
        503: "The engine is currently overloaded, please try again later (requested by the fail knob).",
    }.get(status, f"demo-llm failed with status {status}, as the fail knob asked.")
    return OpenAIError(status, message, code=code, headers=headers)
