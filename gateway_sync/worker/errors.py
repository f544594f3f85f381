"""RFC 9457 problem details, the error format of the worker's ``/api`` routes.

Bodies never echo what the consumer sent as a credential: callers pass fixed wording."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem(
    status: int, title: str, detail: str, code: str, *, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A ``application/problem+json`` response: ``{type, title, status, detail, code}``."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}
    response = web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
    return response
