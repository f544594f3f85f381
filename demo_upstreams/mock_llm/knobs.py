"""Behaviour knobs: how a test or a benchmark tells the mock what to do.

A knob is given either as a request header ``x-mock-<name>`` (dashes) or as a key of a
``"mock"`` object in the JSON body (underscores); the body wins when both give the same knob.
The ``mock`` field is removed before the request is otherwise read, so it never reaches the
reply. With the openai SDK: ``extra_headers={"x-mock-fail": "429"}`` or
``extra_body={"mock": {"fail": 429}}``.

=================  ========================  ============================================
body key           header                    effect
=================  ========================  ============================================
``fail``           ``x-mock-fail``           answer with this status (400..599) and an
                                             OpenAI error object
``retry_after``    ``x-mock-retry-after``    Retry-After seconds on a failure (429 and 503
                                             send 1 by default)
``delay_ms``       ``x-mock-delay-ms``       wait before the first byte (also before a
                                             failure), 0..60000
``chunk_delay_ms`` ``x-mock-chunk-delay-ms`` wait between stream chunks, 0..10000
``chunks``         ``x-mock-chunks``         split the streamed text into this many
                                             chunks of near-equal length
``chunk_size``     ``x-mock-chunk-size``     split the streamed text every N characters
``split_at``       ``x-mock-split-at``       split at these character offsets (header:
                                             ``"4,9,14"``; body: a list of ints)
``no_usage``       ``x-mock-no-usage``       send no ``usage`` at all, streamed or not
``truncate``       ``x-mock-truncate``       end the stream after the text: no
                                             finish_reason, no usage, no ``[DONE]``
``text``           ``x-mock-text``           reply with exactly this text
``reply_tokens``   ``x-mock-reply-tokens``   reply with a deterministic filler text of
                                             exactly N tokens (0..100000)
=================  ========================  ============================================

Booleans accept ``true/false``, ``1/0``, ``yes/no``, ``on/off`` (and JSON booleans in the
body). Chunking precedence: ``split_at``, then ``chunk_size``, then ``chunks``, else one
chunk per word. ``text`` beats ``reply_tokens``, which beats the echo reply. ``max_tokens``
still truncates whatever text is chosen. An unknown knob is a 400, so a typo is never
silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from demo_upstreams.mock_llm.errors import bad_request

HEADER_PREFIX = "x-mock-"
BODY_FIELD = "mock"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class Knobs:
    fail: int | None = None
    retry_after: int | None = None
    delay_ms: int = 0
    chunk_delay_ms: int = 0
    chunks: int | None = None
    chunk_size: int | None = None
    split_at: tuple[int, ...] = ()
    no_usage: bool = False
    truncate: bool = False
    text: str | None = None
    reply_tokens: int | None = None


def _integer(low: int, high: int) -> Callable[[object, str], int]:
    def parse(raw: object, where: str) -> int:
        if isinstance(raw, bool):
            raise bad_request(f"{where} must be an integer", param=where, code="invalid_mock_knob")
        try:
            value = raw if isinstance(raw, int) else int(str(raw))
        except ValueError:
            raise bad_request(
                f"{where} must be an integer, not {raw!r}", param=where, code="invalid_mock_knob"
            ) from None
        if not low <= value <= high:
            raise bad_request(
                f"{where} must be between {low} and {high}, not {value}", param=where, code="invalid_mock_knob"
            )
        return value

    return parse


def _boolean(raw: object, where: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise bad_request(f"{where} must be a boolean, not {raw!r}", param=where, code="invalid_mock_knob")


def _text(raw: object, where: str) -> str:
    if not isinstance(raw, str):
        raise bad_request(f"{where} must be a string", param=where, code="invalid_mock_knob")
    return raw


def _offsets(raw: object, where: str) -> tuple[int, ...]:
    items: list[object]
    if isinstance(raw, str):
        items = [part for part in (piece.strip() for piece in raw.split(",")) if part]
    elif isinstance(raw, list):
        items = list(raw)
    else:
        raise bad_request(f"{where} must be a list of offsets", param=where, code="invalid_mock_knob")
    offset = _integer(1, 10_000_000)
    return tuple(sorted({offset(item, where) for item in items}))


_PARSERS: dict[str, Callable[[object, str], Any]] = {
    "fail": _integer(400, 599),
    "retry_after": _integer(0, 3600),
    "delay_ms": _integer(0, 60_000),
    "chunk_delay_ms": _integer(0, 10_000),
    "chunks": _integer(1, 100_000),
    "chunk_size": _integer(1, 10_000_000),
    "split_at": _offsets,
    "no_usage": _boolean,
    "truncate": _boolean,
    "text": _text,
    "reply_tokens": _integer(0, 100_000),
}


def parse_knobs(headers: Mapping[str, str], body_field: object = None) -> Knobs:
    """The knobs of one request, from its ``x-mock-*`` headers and its body's ``mock`` object.

    Raises:
        OpenAIError: 400, naming the knob that is unknown or out of range.
    """
    values: dict[str, Any] = {}
    for header, raw in headers.items():
        lowered = header.lower()
        if not lowered.startswith(HEADER_PREFIX):
            continue
        name = lowered[len(HEADER_PREFIX) :].replace("-", "_")
        if name not in _PARSERS:
            raise bad_request(f"unknown mock knob header {lowered!r}", param=lowered, code="invalid_mock_knob")
        values[name] = _PARSERS[name](raw, lowered)
    if body_field is not None:
        if not isinstance(body_field, dict):
            raise bad_request("mock must be an object of knobs", param=BODY_FIELD, code="invalid_mock_knob")
        for name, raw in body_field.items():
            where = f"{BODY_FIELD}.{name}"
            if name not in _PARSERS:
                raise bad_request(f"unknown mock knob {where!r}", param=where, code="invalid_mock_knob")
            values[name] = _PARSERS[name](raw, where)
    return replace(Knobs(), **values)
