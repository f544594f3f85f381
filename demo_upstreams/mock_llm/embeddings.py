"""``POST /v1/embeddings``: deterministic pseudo-embeddings (see ``text.pseudo_embedding``).

``input`` is a string, a list of strings, a token array or a list of token arrays (at most
2048 items, none empty). ``dimensions`` defaults to the server's configured size;
``encoding_format`` is ``float`` (default) or ``base64``, as the openai SDK asks by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from demo_upstreams.mock_llm.errors import bad_request
from demo_upstreams.mock_llm.plumbing import config_of, json_response, optional_int, read_call, require_model
from demo_upstreams.mock_llm.text import count_tokens, embedding_base64, pseudo_embedding

JSONObject = dict[str, Any]
MAX_INPUTS = 2048
_INPUT_ERROR = "input must be a non-empty string, a list of them, a token array, or a list of token arrays"


def _is_tokens(value: object) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool) for t in value)
    )


def _inputs(body: JSONObject) -> list[str | list[int]]:
    raw = body.get("input")
    if raw is None:
        raise bad_request("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    items: list[Any]
    if isinstance(raw, str) or _is_tokens(raw):
        items = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise bad_request(_INPUT_ERROR, param="input", code="invalid_type")
    if len(items) > MAX_INPUTS:
        raise bad_request(f"at most {MAX_INPUTS} inputs per request", param="input", code="invalid_value")
    for index, item in enumerate(items):
        if not ((isinstance(item, str) and item) or _is_tokens(item)):
            raise bad_request(_INPUT_ERROR, param=f"input[{index}]", code="invalid_value")
    return items


def _tokens(item: str | Sequence[int]) -> int:
    return count_tokens(item) if isinstance(item, str) else len(item)


async def embeddings(request: web.Request) -> web.Response:
    call = await read_call(request)
    body, knobs = call.body, call.knobs
    model = require_model(request, body, "embedding")
    items = _inputs(body)
    config = config_of(request)
    dimensions = (
        optional_int(body, "dimensions", low=1, high=config.max_embedding_dimensions) or config.embedding_dimensions
    )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad_request("encoding_format must be 'float' or 'base64'", param="encoding_format", code="invalid_value")
    data: list[JSONObject] = []
    for index, item in enumerate(items):
        vector = pseudo_embedding(model, item, dimensions)
        embedding: list[float] | str = embedding_base64(vector) if encoding == "base64" else list(vector)
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    payload: JSONObject = {"object": "list", "data": data, "model": model}
    if not knobs.no_usage:
        prompt_tokens = sum(_tokens(item) for item in items)
        payload["usage"] = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return json_response(payload)
