"""demo-llm's chat completions, through the official openai SDK over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from demo_upstreams.mock_llm.text import chat_prompt_tokens, count_tokens

HELLO = [{"role": "user", "content": "Hello, world!"}]
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1},
            },
            "required": ["city", "unit", "days"],
        },
    },
}


def test_a_chat_completion_echoes_the_last_user_message_with_usage(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(model="demo-chat", messages=HELLO)

    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: Hello, world!"
    assert choice.finish_reason == "stop"
    assert completion.model == "demo-chat"
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == chat_prompt_tokens(HELLO) == 3 + 4 + 3
    assert completion.usage.completion_tokens == count_tokens("Echo: Hello, world!") == 6
    assert completion.usage.total_tokens == 16


def test_replies_are_deterministic(llm: openai.OpenAI) -> None:
    first = llm.chat.completions.create(model="demo-chat", messages=HELLO)
    second = llm.chat.completions.create(model="demo-chat", messages=HELLO)

    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage == second.usage


def test_content_parts_and_system_messages_are_read(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(
        model="demo-chat",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "part one, "}, {"type": "text", "text": "two"}]},
        ],
    )

    assert completion.choices[0].message.content == "Echo: part one, two"


def test_max_tokens_cuts_the_reply_and_reports_length(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "one two three four five"}], max_tokens=3
    )

    assert completion.choices[0].message.content == "Echo: one"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


def test_max_completion_tokens_wins_over_max_tokens(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(model="demo-chat", messages=HELLO, max_tokens=100, max_completion_tokens=2)

    assert completion.choices[0].message.content == "Echo:"


def test_n_choices_each_carry_the_reply_and_count_in_usage(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(model="demo-chat", messages=HELLO, n=3)

    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    assert {choice.message.content for choice in completion.choices} == {"Echo: Hello, world!"}
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 18


def test_a_streamed_completion_without_include_usage_has_no_usage(llm: openai.OpenAI) -> None:
    chunks = list(llm.chat.completions.create(model="demo-chat", messages=HELLO, stream=True))

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == "Echo: Hello, world!"
    assert [chunk.choices[0].finish_reason for chunk in chunks][-1] == "stop"
    assert all(chunk.usage is None for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1


def test_a_streamed_completion_with_include_usage_ends_with_a_usage_chunk(llm: openai.OpenAI) -> None:
    chunks = list(
        llm.chat.completions.create(
            model="demo-chat", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )

    *content_chunks, usage_chunk = chunks
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 6
    assert usage_chunk.usage.prompt_tokens == 10
    assert all(chunk.usage is None and chunk.choices for chunk in content_chunks)
    assert content_chunks[-1].choices[0].finish_reason == "stop"


def test_the_raw_stream_is_sse_ending_with_done(llm_url: str) -> None:
    body = {"model": "demo-chat", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{llm_url}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]

    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert all("usage" in payload for payload in payloads)
    assert payloads[-1]["choices"] == []


def test_a_streamed_reply_is_cut_by_max_tokens_too(llm: openai.OpenAI) -> None:
    chunks = list(llm.chat.completions.create(model="demo-chat", messages=HELLO, stream=True, max_tokens=2))

    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Echo:"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_call_tool_in_the_user_message_gets_a_tool_call_with_the_given_json(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": 'Please call tool add {"a": 2, "b": 3}'}],
        tools=[WEATHER_TOOL, ADD_TOOL],
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "add"
    assert json.loads(call.function.arguments) == {"a": 2, "b": 3}


def test_without_a_named_tool_the_first_is_called_with_arguments_fitting_its_schema(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "CALL TOOL now"}], tools=[WEATHER_TOOL, ADD_TOOL]
    )

    (call,) = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "demo", "unit": "celsius", "days": 1}


def test_tool_choice_forcing_a_function_calls_it(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(
        model="demo-chat",
        messages=HELLO,
        tools=[WEATHER_TOOL, ADD_TOOL],
        tool_choice={"type": "function", "function": {"name": "add"}},
    )

    (call,) = completion.choices[0].message.tool_calls or []
    assert call.function.name == "add"
    assert json.loads(call.function.arguments) == {"a": 1, "b": 1}


def test_tool_choice_required_calls_the_first_tool(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(
        model="demo-chat", messages=HELLO, tools=[ADD_TOOL], tool_choice="required"
    )

    assert completion.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("tool_choice", ["none", "auto"])
def test_no_tool_call_without_the_trigger_or_when_tool_choice_is_none(llm: openai.OpenAI, tool_choice: Any) -> None:
    content = "call tool add" if tool_choice == "none" else "just chat"
    completion = llm.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": content}],
        tools=[ADD_TOOL],
        tool_choice=tool_choice,
    )

    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == f"Echo: {content}"


def test_after_a_tool_result_the_model_answers_in_text(llm: openai.OpenAI) -> None:
    first = llm.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "call tool add"}], tools=[ADD_TOOL]
    )
    (call,) = first.choices[0].message.tool_calls or []
    completion = llm.chat.completions.create(
        model="demo-chat",
        messages=[
            {"role": "user", "content": "call tool add"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "add", "arguments": call.function.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "2"},
        ],
        tools=[ADD_TOOL],
    )

    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == "Tool result: 2"


def test_a_streamed_tool_call_sends_name_first_then_argument_pieces(llm: openai.OpenAI) -> None:
    chunks = list(
        llm.chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": 'call tool add {"a": 10, "b": 20}'}],
            tools=[ADD_TOOL],
            stream=True,
            extra_headers={"x-mock-chunk-size": "4"},
        )
    )

    first_call = (chunks[0].choices[0].delta.tool_calls or [])[0]
    assert first_call.function is not None
    assert first_call.function.name == "add"
    assert first_call.id is not None
    pieces = [
        (call.function.arguments or "")
        for chunk in chunks[1:]
        for call in chunk.choices[0].delta.tool_calls or []
        if call.function is not None
    ]
    assert len(pieces) > 1
    assert json.loads("".join(pieces)) == {"a": 10, "b": 20}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_naming_an_absent_function_is_a_400(llm: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        llm.chat.completions.create(
            model="demo-chat",
            messages=HELLO,
            tools=[ADD_TOOL],
            tool_choice={"type": "function", "function": {"name": "missing"}},
        )

    assert isinstance(raised.value.body, dict)
    assert raised.value.body["param"] == "tool_choice"
