"""The mock's aiohttp application: routes, API-key check and error translation."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from demo_upstreams.mock_llm.chat import chat_completions
from demo_upstreams.mock_llm.completions import completions
from demo_upstreams.mock_llm.embeddings import embeddings
from demo_upstreams.mock_llm.errors import OpenAIError
from demo_upstreams.mock_llm.plumbing import (
    CONFIG,
    MODEL_CREATED,
    ClientDisconnected,
    MockLLMConfig,
    config_of,
    json_response,
    read_call,
)

PRODUCT = "demo-llm"
MAX_REQUEST_BODY = 8 * 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bearer_or_api_key(request: web.Request) -> str | None:
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("api-key")


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the API key (when one is configured), and answer every error, raised by a handler
    or by aiohttp itself (404, 405, 413), as an OpenAI error object."""
    try:
        expected = config_of(request).api_key
        if expected is not None and request.path.startswith("/v1/"):
            given = _bearer_or_api_key(request)
            if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
                raise OpenAIError(401, "Incorrect API key provided.", code="invalid_api_key")
        return await handler(request)
    except OpenAIError as exc:
        return exc.response()
    except ClientDisconnected as exc:
        return exc.response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = f"Unknown request URL: {request.method} {request.path}."
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}."
        else:
            message = exc.text or exc.reason
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        code = "unknown_url" if exc.status == 404 else None
        return OpenAIError(exc.status, message, code=code, headers=headers).response()


def _model_object(model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": PRODUCT}


async def list_models(request: web.Request) -> web.Response:
    await read_call(request, has_body=False)
    config = config_of(request)
    models = [*config.chat_models, *config.embedding_models]
    return json_response({"object": "list", "data": [_model_object(model) for model in models]})


async def retrieve_model(request: web.Request) -> web.Response:
    await read_call(request, has_body=False)
    model = request.match_info["model"]
    if config_of(request).kind_of(model) is None:
        raise OpenAIError(
            404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
        )
    return json_response(_model_object(model))


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "product": PRODUCT})


def create_app(config: MockLLMConfig | None = None) -> web.Application:
    """The demo-llm application. It keeps no state between requests."""
    app = web.Application(middlewares=[openai_errors], client_max_size=MAX_REQUEST_BODY)
    app[CONFIG] = config or MockLLMConfig()
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", retrieve_model)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/healthz", healthz)
    return app
