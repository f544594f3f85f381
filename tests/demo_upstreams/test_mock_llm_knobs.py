"""demo-llm's behaviour knobs, as a test or benchmark uses them: through the openai SDK, by
``x-mock-*`` header or by the body's ``mock`` object."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import openai
import pytest

HELLO = [{"role": "user", "content": "Hello, world!"}]
CARD = "4111 1111 1111 1111"


def chat(llm: openai.OpenAI, **kwargs: Any) -> Any:
    return llm.chat.completions.create(model="demo-chat", messages=HELLO, **kwargs)


def streamed_pieces(llm: openai.OpenAI, **kwargs: Any) -> list[str]:
    chunks = list(chat(llm, stream=True, **kwargs))
    return [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "authentication_error"),
    ],
)
def test_fail_by_header_raises_the_sdk_error_for_that_status(
    llm: openai.OpenAI, status: int, error_class: type[openai.APIStatusError], error_type: str
) -> None:
    with pytest.raises(error_class) as raised:
        chat(llm, extra_headers={"x-mock-fail": str(status)})

    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["type"] == error_type
    assert set(raised.value.body) == {"message", "type", "param", "code"}


def test_fail_by_body_field_works_on_a_stream_too(llm: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        chat(llm, stream=True, extra_body={"mock": {"fail": 429}})

    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "rate_limit_exceeded"


def test_rate_limits_carry_retry_after_which_a_knob_sets(llm: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as default:
        chat(llm, extra_headers={"x-mock-fail": "429"})
    with pytest.raises(openai.InternalServerError) as custom:
        chat(llm, extra_headers={"x-mock-fail": "503", "x-mock-retry-after": "7"})

    assert default.value.response.headers["retry-after"] == "1"
    assert custom.value.response.headers["retry-after"] == "7"


def test_fail_applies_to_embeddings_and_models(llm: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        llm.embeddings.create(model="demo-embed", input="x", extra_headers={"x-mock-fail": "500"})
    with pytest.raises(openai.RateLimitError):
        llm.models.list(extra_headers={"x-mock-fail": "429"})


def test_the_body_knob_wins_over_the_header(llm: openai.OpenAI) -> None:
    completion = chat(llm, extra_headers={"x-mock-text": "from header"}, extra_body={"mock": {"text": "from body"}})

    assert completion.choices[0].message.content == "from body"


def test_delay_ms_delays_the_first_byte(llm: openai.OpenAI) -> None:
    started = time.monotonic()
    with chat(llm, stream=True, extra_headers={"x-mock-delay-ms": "300"}) as stream:
        next(iter(stream))
        first_byte = time.monotonic() - started

    assert first_byte >= 0.3


def test_chunk_delay_ms_spaces_the_chunks(llm: openai.OpenAI) -> None:
    started = time.monotonic()
    pieces = streamed_pieces(llm, extra_body={"mock": {"chunk_delay_ms": 50, "chunks": 4}})

    assert len(pieces) == 4
    # role + 4 pieces + finish: 5 gaps of 50 ms.
    assert time.monotonic() - started >= 0.25


def test_chunks_sets_the_number_of_content_chunks(llm: openai.OpenAI) -> None:
    pieces = streamed_pieces(llm, extra_headers={"x-mock-chunks": "3"})

    assert len(pieces) == 3
    assert "".join(pieces) == "Echo: Hello, world!"


def test_chunk_size_splits_a_fixed_text_every_n_characters(llm: openai.OpenAI) -> None:
    pieces = streamed_pieces(llm, extra_headers={"x-mock-text": CARD, "x-mock-chunk-size": "3"})

    assert pieces == ["411", "1 1", "111", " 11", "11 ", "111", "1"]


def test_split_at_splits_a_card_number_across_chunks_at_chosen_offsets(llm: openai.OpenAI) -> None:
    pieces = streamed_pieces(llm, extra_body={"mock": {"text": f"My card is {CARD}.", "split_at": [14, 22]}})

    assert pieces == ["My card is 411", "1 1111 1", "111 1111."]
    assert "".join(pieces) == f"My card is {CARD}."


def test_split_at_by_header_is_a_comma_separated_list(llm: openai.OpenAI) -> None:
    pieces = streamed_pieces(llm, extra_headers={"x-mock-text": CARD, "x-mock-split-at": "4, 9,14"})

    assert pieces == ["4111", " 1111", " 1111", " 1111"]


def test_a_fixed_text_is_counted_and_returned_whole(llm: openai.OpenAI) -> None:
    completion = chat(llm, extra_headers={"x-mock-text": CARD})

    assert completion.choices[0].message.content == CARD
    assert completion.usage.completion_tokens == 4


def test_reply_tokens_gives_a_reply_of_exactly_that_many_tokens(llm: openai.OpenAI) -> None:
    completion = chat(llm, extra_body={"mock": {"reply_tokens": 250}})

    assert completion.usage.completion_tokens == 250
    assert len(completion.choices[0].message.content.split()) == 250


def test_reply_tokens_still_respects_max_tokens(llm: openai.OpenAI) -> None:
    completion = chat(llm, max_tokens=10, extra_body={"mock": {"reply_tokens": 250}})

    assert completion.usage.completion_tokens == 10
    assert completion.choices[0].finish_reason == "length"


def test_no_usage_omits_usage_from_a_whole_reply(llm_url: str) -> None:
    body = {"model": "demo-chat", "messages": HELLO, "mock": {"no_usage": True}}
    payload = httpx.post(f"{llm_url}/v1/chat/completions", json=body).json()

    assert "usage" not in payload
    assert payload["choices"][0]["message"]["content"] == "Echo: Hello, world!"


def test_no_usage_omits_the_usage_chunk_even_when_asked_for(llm: openai.OpenAI) -> None:
    chunks = list(
        chat(llm, stream=True, stream_options={"include_usage": True}, extra_headers={"x-mock-no-usage": "true"})
    )

    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_truncate_ends_the_stream_without_finish_reason_usage_or_done(llm_url: str) -> None:
    body = {
        "model": "demo-chat",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
        "mock": {"truncate": True},
    }
    with httpx.stream("POST", f"{llm_url}/v1/chat/completions", json=body) as response:
        events = [line for line in response.iter_lines() if line]

    assert "data: [DONE]" not in events
    assert '"finish_reason":"stop"' not in "".join(events)
    assert '"usage":{' not in "".join(events)
    assert "".join(events).count('"content":') == 4  # the role chunk and three words


def test_a_truncated_stream_still_reads_through_the_sdk(llm: openai.OpenAI) -> None:
    chunks = list(chat(llm, stream=True, extra_body={"mock": {"truncate": True}}))

    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Echo: Hello, world!"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks)


def test_knobs_work_on_legacy_completions(llm: openai.OpenAI) -> None:
    chunks = list(
        llm.completions.create(
            model="demo-chat", prompt="x", stream=True, extra_body={"mock": {"text": "abcdef", "chunk_size": 2}}
        )
    )

    assert [chunk.choices[0].text for chunk in chunks[:-1]] == ["ab", "cd", "ef"]


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"x-mock-fial": "429"}, "x-mock-fial"),
        ({"x-mock-fail": "200"}, "x-mock-fail"),
        ({"x-mock-fail": "soon"}, "x-mock-fail"),
        ({"x-mock-no-usage": "maybe"}, "x-mock-no-usage"),
        ({"x-mock-delay-ms": "60001"}, "x-mock-delay-ms"),
        ({"x-mock-split-at": "4,x"}, "x-mock-split-at"),
    ],
)
def test_a_bad_knob_header_is_a_400_naming_it(llm: openai.OpenAI, headers: dict[str, str], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        chat(llm, extra_headers=headers)

    assert isinstance(raised.value.body, dict)
    assert raised.value.body["param"] == param
    assert raised.value.body["code"] == "invalid_mock_knob"


@pytest.mark.parametrize(
    ("mock", "param"),
    [
        ({"nope": 1}, "mock.nope"),
        ({"fail": True}, "mock.fail"),
        ({"text": 12}, "mock.text"),
        ({"split_at": "x"}, "mock.split_at"),
        ("fail", "mock"),
    ],
)
def test_a_bad_knob_in_the_body_is_a_400_naming_it(llm: openai.OpenAI, mock: object, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        chat(llm, extra_body={"mock": mock})

    assert isinstance(raised.value.body, dict)
    assert raised.value.body["param"] == param


def test_a_client_hanging_up_mid_stream_is_not_a_server_error(llm_url: str, caplog: pytest.LogCaptureFixture) -> None:
    body = {"model": "demo-chat", "messages": HELLO, "stream": True, "mock": {"reply_tokens": 50, "chunk_delay_ms": 20}}
    with httpx.stream("POST", f"{llm_url}/v1/chat/completions", json=body) as response:
        next(response.iter_lines())
    time.sleep(0.2)  # the server notices on its next write

    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert httpx.get(f"{llm_url}/healthz").status_code == 200
