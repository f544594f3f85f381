"""``POST /v1/completions`` (legacy): one choice per prompt (times ``n``), whole or streamed.

The completion is the ``text`` knob, else ``reply_tokens`` filler, else "Echo: <prompt>";
``echo: true`` puts the prompt in front. As on OpenAI, ``max_tokens`` defaults to 16. Prompts
are strings or lists of strings; token-array prompts are refused with a 400.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from demo_upstreams.mock_llm.errors import bad_request
from demo_upstreams.mock_llm.knobs import Knobs
from demo_upstreams.mock_llm.plumbing import (
    SSEWriter,
    include_usage_asked,
    json_response,
    new_id,
    now,
    optional_bool,
    optional_int,
    read_call,
    require_model,
    usage,
)
from demo_upstreams.mock_llm.text import count_tokens, filler, split_text, truncate_to_tokens

JSONObject = dict[str, Any]
DEFAULT_MAX_TOKENS = 16
MAX_PROMPTS = 2048


def _prompts(body: JSONObject) -> list[str]:
    prompt = body.get("prompt")
    if prompt is None:
        raise bad_request("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(item, str) for item in prompt):
        if len(prompt) > MAX_PROMPTS:
            raise bad_request(f"at most {MAX_PROMPTS} prompts per request", param="prompt", code="invalid_value")
        return list(prompt)
    raise bad_request(
        "prompt must be a string or a non-empty list of strings (token arrays are not supported by the mock)",
        param="prompt",
        code="invalid_type",
    )


def completion_text(prompt: str, knobs: Knobs) -> str:
    if knobs.text is not None:
        return knobs.text
    if knobs.reply_tokens is not None:
        return filler(knobs.reply_tokens)
    return f"Echo: {prompt}"


async def completions(request: web.Request) -> web.StreamResponse:
    call = await read_call(request)
    body, knobs = call.body, call.knobs
    model = require_model(request, body, "chat")
    prompts = _prompts(body)
    per_prompt = optional_int(body, "n", low=1, high=128, default=1) or 1
    limit = optional_int(body, "max_tokens", low=1, high=1_000_000, default=DEFAULT_MAX_TOKENS)
    echo = optional_bool(body, "echo")
    stream = optional_bool(body, "stream")
    include_usage = include_usage_asked(body) if stream else False

    texts: list[tuple[str, str]] = []  # (text, finish_reason), one per choice
    completion_tokens = 0
    for prompt in prompts:
        text, tokens, cut = truncate_to_tokens(completion_text(prompt, knobs), limit)
        completion_tokens += tokens * per_prompt
        texts.extend([(f"{prompt}{text}" if echo else text, "length" if cut else "stop")] * per_prompt)
    totals = usage(sum(count_tokens(prompt) for prompt in prompts), completion_tokens)
    base: JSONObject = {"id": new_id("cmpl"), "object": "text_completion", "created": now(), "model": model}

    if not stream:
        payload: JSONObject = {
            **base,
            "choices": [
                {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}
                for index, (text, finish_reason) in enumerate(texts)
            ],
        }
        if not knobs.no_usage:
            payload["usage"] = totals
        return json_response(payload)

    writer = SSEWriter(request, knobs)
    with_usage = include_usage and not knobs.no_usage

    def chunk(index: int, text: str, finish_reason: str | None) -> JSONObject:
        payload = {
            **base,
            "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}],
        }
        if with_usage:
            payload["usage"] = None
        return payload

    for index, (text, _finish_reason) in enumerate(texts):
        for piece in split_text(text, knobs):
            await writer.send(chunk(index, piece, None))
    if knobs.truncate:
        return await writer.finish(done=False)
    for index, (_text, finish_reason) in enumerate(texts):
        await writer.send(chunk(index, "", finish_reason))
    if with_usage:
        await writer.send({**base, "choices": [], "usage": totals})
    return await writer.finish()
