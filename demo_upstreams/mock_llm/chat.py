"""``POST /v1/chat/completions``: a deterministic reply, whole or streamed, or a tool call.

The reply is the ``text`` knob, else ``reply_tokens`` filler, else an echo: after a ``tool``
message "Tool result: <its content>", otherwise "Echo: <the last user message>" (or a greeting
when there is none). ``max_completion_tokens`` (or ``max_tokens``) cuts it, with
``finish_reason: "length"``. ``n`` choices carry the same reply.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from demo_upstreams.mock_llm.text import (
    chat_prompt_tokens,
    content_text,
    count_tokens,
    filler,
    split_text,
    truncate_to_tokens,
)
from demo_upstreams.mock_llm.tool_calls import ToolCall, function_tools, plan_tool_call

JSONObject = dict[str, Any]
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_TOKENS_LIMIT = 1_000_000
SYSTEM_FINGERPRINT = "fp_demo_llm"


@dataclass(frozen=True)
class Answer:
    """What every choice of one request says: text, or a tool call."""

    text: str
    tool_call: ToolCall | None
    completion_tokens: int  # per choice
    finish_reason: str


def _messages(body: JSONObject) -> list[JSONObject]:
    messages = body.get("messages")
    if messages is None:
        raise bad_request(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise bad_request("messages must be a list of message objects", param="messages", code="invalid_type")
    if not messages:
        raise bad_request("messages must not be empty", param="messages", code="empty_array")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request("each message must be an object", param=f"messages[{index}]", code="invalid_type")
        if message.get("role") not in ROLES:
            raise bad_request(
                f"role must be one of {sorted(ROLES)}", param=f"messages[{index}].role", code="invalid_value"
            )
    return messages


def reply_text(messages: list[JSONObject], knobs: Knobs) -> str:
    if knobs.text is not None:
        return knobs.text
    if knobs.reply_tokens is not None:
        return filler(knobs.reply_tokens)
    last = messages[-1]
    if last["role"] == "tool":
        return f"Tool result: {content_text(last.get('content'))}"
    for message in reversed(messages):
        if message["role"] == "user":
            return f"Echo: {content_text(message.get('content'))}"
    return "Hello! I am a demo model; send me a user message and I will echo it."


def _answer(body: JSONObject, messages: list[JSONObject], knobs: Knobs) -> Answer:
    tool_call = plan_tool_call(function_tools(body.get("tools")), body.get("tool_choice"), messages)
    if tool_call is not None:
        tokens = count_tokens(tool_call.name) + count_tokens(tool_call.arguments)
        return Answer(text="", tool_call=tool_call, completion_tokens=tokens, finish_reason="tool_calls")
    limit = optional_int(body, "max_completion_tokens", low=1, high=MAX_TOKENS_LIMIT)
    if limit is None:
        limit = optional_int(body, "max_tokens", low=1, high=MAX_TOKENS_LIMIT)
    text, tokens, cut = truncate_to_tokens(reply_text(messages, knobs), limit)
    return Answer(text=text, tool_call=None, completion_tokens=tokens, finish_reason="length" if cut else "stop")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    call = await read_call(request)
    body, knobs = call.body, call.knobs
    model = require_model(request, body, "chat")
    messages = _messages(body)
    choices = optional_int(body, "n", low=1, high=128, default=1) or 1
    stream = optional_bool(body, "stream")
    include_usage = include_usage_asked(body) if stream else False
    answer = _answer(body, messages, knobs)
    prompt_tokens = chat_prompt_tokens(messages)
    totals = usage(prompt_tokens, answer.completion_tokens * choices)
    if stream:
        return await _stream(request, model, answer, choices, knobs, totals if include_usage else None)
    message: JSONObject = {
        "role": "assistant",
        "content": None if answer.tool_call else answer.text,
        "refusal": None,
    }
    if answer.tool_call is not None:
        message["tool_calls"] = [answer.tool_call.as_message_part()]
    payload: JSONObject = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [
            {"index": index, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}
            for index in range(choices)
        ],
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if not knobs.no_usage:
        payload["usage"] = totals
    return json_response(payload)


async def _stream(
    request: web.Request,
    model: str,
    answer: Answer,
    choices: int,
    knobs: Knobs,
    final_usage: JSONObject | None,
) -> web.StreamResponse:
    """Role first, then the text (or the tool call's arguments) chunk by chunk, then each
    choice's finish_reason, then the usage chunk if asked for (empty ``choices``), then
    ``[DONE]``. While usage is asked for, every other chunk carries ``"usage": null``."""
    writer = SSEWriter(request, knobs)
    base: JSONObject = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion.chunk",
        "created": now(),
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    with_usage = final_usage is not None and not knobs.no_usage

    def chunk(index: int, delta: JSONObject, finish_reason: str | None = None) -> JSONObject:
        payload = {
            **base,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if with_usage:
            payload["usage"] = None
        return payload

    tool_call = answer.tool_call
    for index in range(choices):
        if tool_call is None:
            await writer.send(chunk(index, {"role": "assistant", "content": "", "refusal": None}))
        else:
            part = {"index": 0, **tool_call.as_message_part(), "function": {"name": tool_call.name, "arguments": ""}}
            await writer.send(chunk(index, {"role": "assistant", "content": None, "tool_calls": [part]}))
    pieces = split_text(tool_call.arguments if tool_call else answer.text, knobs)
    for piece in pieces:
        for index in range(choices):
            if tool_call is None:
                delta: JSONObject = {"content": piece}
            else:
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            await writer.send(chunk(index, delta))
    if knobs.truncate:
        return await writer.finish(done=False)
    for index in range(choices):
        await writer.send(chunk(index, {}, answer.finish_reason))
    if with_usage:
        await writer.send({**base, "choices": [], "usage": final_usage})
    return await writer.finish()
