"""What every endpoint of the mock shares: its configuration, reading a request (JSON body,
knobs, the delay and failure they ask for, the model), validating fields, and writing SSE."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from demo_upstreams.mock_llm.errors import OpenAIError, bad_request, requested_failure
from demo_upstreams.mock_llm.knobs import BODY_FIELD, Knobs, parse_knobs

JSONObject = dict[str, Any]
ModelKind = Literal["chat", "embedding"]
MODEL_CREATED = 1_700_000_000  # a fixed date: listings are deterministic


@dataclass(frozen=True)
class MockLLMConfig:
    """What a mock instance serves. ``api_key`` None accepts any key (or none)."""

    chat_models: tuple[str, ...] = ("demo-chat",)
    embedding_models: tuple[str, ...] = ("demo-embed",)
    embedding_dimensions: int = 256
    max_embedding_dimensions: int = 4096
    api_key: str | None = None

    def kind_of(self, model: str) -> ModelKind | None:
        if model in self.chat_models:
            return "chat"
        if model in self.embedding_models:
            return "embedding"
        return None


CONFIG = web.AppKey("mock_llm_config", MockLLMConfig)


@dataclass(frozen=True)
class Call:
    """One request, read: its JSON body (without the ``mock`` field) and its knobs."""

    body: JSONObject
    knobs: Knobs


def config_of(request: web.Request) -> MockLLMConfig:
    return request.app[CONFIG]


async def read_call(request: web.Request, *, has_body: bool = True) -> Call:
    """Read the body and the knobs, then honour ``delay_ms`` and ``fail``.

    Raises:
        OpenAIError: 400 for a body that is not a JSON object or a bad knob, or the failure
            the ``fail`` knob asks for.
    """
    body: JSONObject = {}
    if has_body:
        raw = await request.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise bad_request(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                "HTTP library correctly. The OpenAI API expects a JSON payload.)"
            ) from None
        if not isinstance(parsed, dict):
            raise bad_request("The request body must be a JSON object.")
        body = parsed
    knobs = parse_knobs(request.headers, body.pop(BODY_FIELD, None))
    if knobs.delay_ms:
        await asyncio.sleep(knobs.delay_ms / 1000)
    if knobs.fail is not None:
        raise requested_failure(knobs.fail, retry_after=knobs.retry_after)
    return Call(body=body, knobs=knobs)


def require_model(request: web.Request, body: JSONObject, kind: ModelKind) -> str:
    """The request's ``model``, which must exist (else 404) and be of ``kind`` (else 400)."""
    model = body.get("model")
    if model is None or model == "":
        raise bad_request("you must provide a model parameter", param="model", code="missing_required_parameter")
    if not isinstance(model, str):
        raise bad_request("model must be a string", param="model", code="invalid_type")
    actual = config_of(request).kind_of(model)
    if actual is None:
        raise OpenAIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    if actual != kind:
        raise bad_request(
            f"`{model}` is an {actual} model, not a {kind} model.", param="model", code="model_not_supported"
        )
    return model


def optional_int(body: JSONObject, name: str, *, low: int, high: int, default: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer", param=name, code="invalid_type")
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}, not {value}", param=name, code="invalid_value")
    return int(value)


def optional_bool(body: JSONObject, name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be a boolean", param=name, code="invalid_type")
    return value


def include_usage_asked(body: JSONObject) -> bool:
    """Whether a streamed request asked for the final usage chunk (``stream_options``)."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise bad_request("stream_options must be an object", param="stream_options", code="invalid_type")
    value = options.get("include_usage", False)
    if not isinstance(value, bool):
        raise bad_request("include_usage must be a boolean", param="stream_options.include_usage", code="invalid_type")
    return value


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> JSONObject:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def dumps(payload: object) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def json_response(payload: JSONObject) -> web.Response:
    return web.json_response(payload, dumps=dumps)


class ClientDisconnected(Exception):
    """The client went away mid-stream: nothing more to say, and nothing wrong on our side.
    The app's middleware answers with the (already started) ``response``."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("client disconnected")
        self.response = response


class SSEWriter:
    """Server-sent events the OpenAI way: ``data: {json}`` events, then ``data: [DONE]``.

    ``chunk_delay_ms`` is waited before every event but the first. A client that hangs up
    stops the stream with ``ClientDisconnected``.
    """

    def __init__(self, request: web.Request, knobs: Knobs) -> None:
        self._request = request
        self._delay = knobs.chunk_delay_ms / 1000
        self._response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        )
        self._sent = 0

    @property
    def response(self) -> web.StreamResponse:
        return self._response

    async def send(self, payload: JSONObject) -> None:
        if self._sent == 0:
            self._response.enable_chunked_encoding()
            await self._response.prepare(self._request)
        elif self._delay:
            await asyncio.sleep(self._delay)
        self._sent += 1
        await self._write(f"data: {dumps(payload)}\n\n".encode())

    async def finish(self, *, done: bool = True) -> web.StreamResponse:
        """End the stream, with ``data: [DONE]`` unless ``done`` is False (a truncated stream)."""
        if self._sent == 0:
            self._response.enable_chunked_encoding()
            await self._response.prepare(self._request)
        if done:
            await self._write(b"data: [DONE]\n\n")
        try:
            await self._response.write_eof()
        except ConnectionResetError as exc:
            raise ClientDisconnected(self._response) from exc
        return self._response

    async def _write(self, data: bytes) -> None:
        try:
            await self._response.write(data)
        except ConnectionResetError as exc:
            raise ClientDisconnected(self._response) from exc
