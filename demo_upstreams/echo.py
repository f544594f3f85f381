"""demo-echo: an httpbin-like echo server, the upstream of the demo REST API product.

Run it with ``python -m demo_upstreams.echo --host 127.0.0.1 --port 9101``, or build it in
process with ``create_app()``.

Endpoints (errors are ``application/problem+json``, RFC 9457):

- ``GET /get``, ``POST /post``, ``PUT /put``, ``PATCH /patch``, ``DELETE /delete`` and
  ``ANY /anything[/{path}]``: echo the request as JSON (see ``request_echo``).
- ``ANY /status/{code}``: answer with that status (200..599; a 1xx cannot be a final answer).
- ``ANY /delay/{seconds}``: wait (0..30 s, fractions allowed), then echo.
- ``GET /stream/{n}``: n JSON lines (NDJSON), sent chunked, one write per line;
  ``?interval=SECONDS`` (0..10) paces them.
- ``GET /bytes/{n}``: n random bytes (at most 10 MiB); ``?seed=INT`` makes them reproducible.
- ``GET /headers``, ``GET /healthz``, and ``GET /openapi.json`` (OpenAPI 3.1, describing all
  of the above, with the server URL the request came in on).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiMapping

from demo_upstreams import _cli
from demo_upstreams._echo_openapi import (
    MAX_BYTES,
    MAX_DELAY_SECONDS,
    MAX_STREAM_INTERVAL_SECONDS,
    MAX_STREAM_LINES,
    echo_openapi_document,
)

__all__ = ["DEFAULT_PORT", "PRODUCT", "create_app", "echo_openapi_document", "main", "problem", "request_echo"]

PRODUCT = "demo-echo"
DESCRIPTION = "demo-echo: an httpbin-like echo server (the demo REST API's upstream)."
DEFAULT_PORT = 9101
MAX_REQUEST_BODY = 10 * 1024 * 1024
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_BODYLESS_STATUSES = frozenset({204, 304})

JSONObject = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unassigned"


def problem(status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """An RFC 9457 problem document with the given status."""
    body = {"type": "about:blank", "title": _phrase(status), "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type="application/problem+json", headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's own error answers (404, 405, 413) into problem documents."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status == 404:
            detail = f"{request.path} is not an endpoint of {PRODUCT} (see /openapi.json)"
        elif exc.status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        elif exc.text and not exc.text.startswith(f"{exc.status}:"):
            detail = exc.text  # aiohttp's own explanation, e.g. the body size limit
        else:
            detail = exc.reason
        return problem(exc.status, detail, headers=headers)


def _flatten(values: MultiMapping[str]) -> dict[str, str | list[str]]:
    """httpbin's convention: a key given once maps to its value, a repeated key to a list."""
    flat: dict[str, str | list[str]] = {}
    for key in values:
        if key in flat:
            continue
        every = values.getall(key)
        flat[key] = every[0] if len(every) == 1 else list(every)
    return flat


def _headers(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _as_text_or_data_url(raw: bytes, content_type: str) -> str:
    """Text stays text; anything that is not UTF-8 becomes a base64 ``data:`` URL."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return f"data:{content_type or 'application/octet-stream'};base64,{base64.b64encode(raw).decode()}"


async def request_echo(request: web.Request) -> JSONObject:
    """The request as JSON: ``method``, ``url``, ``path``, ``args`` (query), ``headers``,
    ``origin`` (the client's address), and the body as ``data`` (raw text, or a base64 data
    URL when not UTF-8), ``json`` (parsed, or null), ``form`` and ``files`` (form posts; their
    ``data`` is then empty)."""
    form: dict[str, str | list[str]] = {}
    files: dict[str, str] = {}
    data = ""
    parsed_json: Any = None
    if request.body_exists and request.content_type in _FORM_TYPES:
        fields: MultiDict[str] = MultiDict()
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files[value.name] = _as_text_or_data_url(value.file.read(), value.content_type)
            else:
                fields.add(key, str(value))
        form = _flatten(fields)
    elif request.body_exists:
        raw = await request.read()
        data = _as_text_or_data_url(raw, request.content_type)
        if request.content_type == "application/json" or request.content_type.endswith("+json"):
            try:
                parsed_json = json.loads(raw)
            except ValueError:
                parsed_json = None
    return {
        "method": request.method,
        "url": str(request.url),
        "path": request.path,
        "args": _flatten(request.query),
        "headers": _headers(request),
        "origin": request.remote,
        "data": data,
        "json": parsed_json,
        "form": form,
        "files": files,
    }


async def echo(request: web.Request) -> web.Response:
    return web.json_response(await request_echo(request))


def _int_in_range(raw: str, low: int, high: int, what: str) -> int | web.Response:
    """``raw`` as an int in [low, high], or the 400 problem that says why it is not."""
    try:
        value = int(raw)
    except ValueError:
        return problem(400, f"{what} must be an integer, not {raw!r}")
    if not low <= value <= high:
        return problem(400, f"{what} must be between {low} and {high}, not {value}")
    return value


def _seconds_in_range(raw: str, high: float, what: str) -> float | web.Response:
    try:
        value = float(raw)
    except ValueError:
        return problem(400, f"{what} must be a number of seconds, not {raw!r}")
    if not math.isfinite(value) or not 0 <= value <= high:
        return problem(400, f"{what} must be between 0 and {high:g} seconds, not {raw}")
    return value


async def status(request: web.Request) -> web.Response:
    code = _int_in_range(request.match_info["code"], 100, 599, "status code")
    if isinstance(code, web.Response):
        return code
    if code < 200:
        # An informational status is never a final answer: a client would wait forever.
        return problem(400, f"status code {code} is informational (1xx) and cannot end a response")
    if code in _BODYLESS_STATUSES:
        return web.Response(status=code)
    return web.json_response({"status": code, "reason": _phrase(code)}, status=code)


async def delay(request: web.Request) -> web.Response:
    seconds = _seconds_in_range(request.match_info["seconds"], MAX_DELAY_SECONDS, "delay")
    if isinstance(seconds, web.Response):
        return seconds
    await asyncio.sleep(seconds)
    return web.json_response({**await request_echo(request), "delay": seconds})


async def stream(request: web.Request) -> web.StreamResponse:
    count = _int_in_range(request.match_info["n"], 0, MAX_STREAM_LINES, "line count")
    if isinstance(count, web.Response):
        return count
    interval = _seconds_in_range(request.query.get("interval", "0"), MAX_STREAM_INTERVAL_SECONDS, "interval")
    if isinstance(interval, web.Response):
        return interval
    echoed = await request_echo(request)
    line_base = {key: echoed[key] for key in ("url", "args", "headers", "origin")}
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        for index in range(count):
            if index and interval:
                await asyncio.sleep(interval)
            await response.write(json.dumps({"id": index, **line_base}).encode() + b"\n")
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client hung up: nothing more to send, and nothing wrong on our side
    return response


async def random_bytes(request: web.Request) -> web.Response:
    size = _int_in_range(request.match_info["n"], 0, MAX_BYTES, "byte count")
    if isinstance(size, web.Response):
        return size
    seed_raw = request.query.get("seed")
    if seed_raw is None:
        payload = os.urandom(size)
    else:
        seed = _int_in_range(seed_raw, -(2**63), 2**63 - 1, "seed")
        if isinstance(seed, web.Response):
            return seed
        # Reproducible test data, not secrets: a seeded PRNG is the point here.
        payload = random.Random(seed).randbytes(size)  # noqa: S311
    return web.Response(body=payload, content_type="application/octet-stream")


async def headers(request: web.Request) -> web.Response:
    return web.json_response({"headers": _headers(request)})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "product": PRODUCT})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(echo_openapi_document(f"{request.scheme}://{request.host}"))


def create_app() -> web.Application:
    """The demo-echo application: stateless, so one instance can serve any number of tests."""
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_REQUEST_BODY)
    router = app.router
    router.add_get("/get", echo)
    for method in ("post", "put", "patch", "delete"):
        router.add_route(method.upper(), f"/{method}", echo)
    router.add_route("*", "/anything", echo)
    router.add_route("*", "/anything/{path:.*}", echo)
    router.add_route("*", "/status/{code}", status)
    router.add_route("*", "/delay/{seconds}", delay)
    router.add_get("/stream/{n}", stream)
    router.add_get("/bytes/{n}", random_bytes)
    router.add_get("/headers", headers)
    router.add_get("/healthz", healthz)
    router.add_get("/openapi.json", openapi)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = _cli.parser_for("python -m demo_upstreams.echo", DESCRIPTION, default_port=DEFAULT_PORT)
    _cli.main_for(lambda _args: create_app(), parser, name=PRODUCT, argv=argv)


if __name__ == "__main__":
    main()
