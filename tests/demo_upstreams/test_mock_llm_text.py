"""The mock's pure parts: token counting, truncation, chunking and sample tool arguments."""

from __future__ import annotations

import pytest

from demo_upstreams.mock_llm.knobs import Knobs, parse_knobs
from demo_upstreams.mock_llm.text import count_tokens, filler, split_text, truncate_to_tokens
from demo_upstreams.mock_llm.tool_calls import sample_arguments

TEXTS = ["", " ", "a", "Hello, world!", "  leading and trailing  ", "multi\nline\n\ntext", "4111 1111 1111 1111"]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 0), ("Hello, world!", 4), ("don't", 3), ("   ", 0), ("a+b=c", 5), ("naïve café", 2)],
)
def test_a_token_is_a_word_or_one_punctuation_mark(text: str, tokens: int) -> None:
    assert count_tokens(text) == tokens


def test_truncation_cuts_after_the_last_allowed_token() -> None:
    assert truncate_to_tokens("Echo: one two", 2) == ("Echo:", 2, True)
    assert truncate_to_tokens("Echo: one two", 3) == ("Echo: one", 3, True)
    assert truncate_to_tokens("Echo: one two ", 4) == ("Echo: one two ", 4, False)
    assert truncate_to_tokens("Echo: one two", None) == ("Echo: one two", 4, False)


@pytest.mark.parametrize(
    "knobs",
    [
        Knobs(),
        Knobs(chunks=1),
        Knobs(chunks=3),
        Knobs(chunks=1000),
        Knobs(chunk_size=1),
        Knobs(chunk_size=4),
        Knobs(split_at=(1,)),
        Knobs(split_at=(2, 5, 500)),
    ],
    ids=repr,
)
@pytest.mark.parametrize("text", TEXTS)
def test_chunks_are_never_empty_and_join_back_to_the_text(text: str, knobs: Knobs) -> None:
    pieces = split_text(text, knobs)

    assert "".join(pieces) == text
    assert all(pieces)


def test_by_default_each_chunk_is_a_word_with_the_space_before_it() -> None:
    assert split_text("Echo: Hello, world!", Knobs()) == ["Echo:", " Hello,", " world!"]


def test_chunks_never_exceeds_the_text_length() -> None:
    assert split_text("abc", Knobs(chunks=10)) == ["a", "b", "c"]


def test_split_at_wins_over_chunk_size_which_wins_over_chunks() -> None:
    assert split_text("abcdef", Knobs(split_at=(2,), chunk_size=1, chunks=6)) == ["ab", "cdef"]
    assert split_text("abcdef", Knobs(chunk_size=4, chunks=6)) == ["abcd", "ef"]


def test_filler_has_exactly_the_requested_tokens() -> None:
    assert [count_tokens(filler(n)) for n in (0, 1, 37, 1000)] == [0, 1, 37, 1000]


def test_headers_and_body_knobs_merge_with_the_body_winning() -> None:
    knobs = parse_knobs({"X-Mock-Fail": "500", "x-mock-chunk-size": "3"}, {"fail": 429, "no_usage": "yes"})

    assert knobs == Knobs(fail=429, chunk_size=3, no_usage=True)


def test_other_headers_are_not_knobs() -> None:
    assert parse_knobs({"Authorization": "Bearer x", "x-request-id": "1"}) == Knobs()


def test_sample_arguments_fit_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer", "minimum": 5},
            "mode": {"enum": ["fast", "slow"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "filter": {"type": "object", "properties": {"on": {"type": "boolean"}}},
            "optional": {"type": "number"},
            "nullable": {"type": ["null", "number"]},
            "preset": {"type": "string", "default": "x"},
        },
        "required": ["query", "limit", "mode", "tags", "filter", "nullable", "preset"],
    }

    assert sample_arguments(schema) == {
        "query": "demo",
        "limit": 5,
        "mode": "fast",
        "tags": ["demo"],
        "filter": {"on": True},
        "nullable": 1.0,
        "preset": "x",
    }


def test_sample_arguments_of_a_schema_without_properties_is_empty() -> None:
    assert sample_arguments({}) == {}
    assert sample_arguments({"type": "object"}) == {}
