"""The usage event: one per gateway request, emitted by workers, ingested by the portal.

Pure Python (no Django), like the snapshot schema, so workers can import it. The wire
format is JSON lines: one event per line, the same in the Redis stream ``gateway:usage``
(one event per entry, in the field ``e``) and in the spool files of embedded mode.

Events are delivered at least once; ``event_id`` (a uuid4 hex) makes ingestion idempotent.
Money is in integer micro-dollars and times are Unix epoch seconds, as in the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec

Protocol = Literal["rest", "llm", "mcp", "a2a"]

# Workers truncate the request path to this many characters before emitting it.
PATH_MAX_CHARS = 512


# Bounds the portal's columns hold: an event outside them is refused as invalid, never
# left to fail the database insert of a whole batch.
Id = Annotated[int, msgspec.Meta(ge=0)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
Size = Annotated[int, msgspec.Meta(ge=0)]


_NO_NUL = "^[^\\x00]*$"
Text16 = Annotated[str, msgspec.Meta(max_length=16, pattern=_NO_NUL)]
Text40 = Annotated[str, msgspec.Meta(max_length=40, pattern=_NO_NUL)]
Text100 = Annotated[str, msgspec.Meta(max_length=100, pattern=_NO_NUL)]
Text200 = Annotated[str, msgspec.Meta(max_length=200, pattern=_NO_NUL)]
PathText = Annotated[str, msgspec.Meta(max_length=PATH_MAX_CHARS, pattern=_NO_NUL)]


class UsageEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    event_id: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]  # uuid4().hex
    at: Annotated[float, msgspec.Meta(gt=0)]
    worker_id: Text100
    app_id: Id | None  # None: an anonymous request (refused before a key was recognised)
    key_prefix: Text16 = ""
    product_id: Id | None = None
    product_slug: Text100 = ""
    version_id: Id | None = None
    route_id: Id | None = None
    target_id: Id | None = None
    protocol: Protocol
    method: Text16
    path: PathText
    status: Annotated[int, msgspec.Meta(ge=100, le=599)]
    latency_ms: Annotated[float, msgspec.Meta(ge=0)]
    bytes_in: Size = 0
    bytes_out: Size = 0
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    tokens_estimated: bool = False
    cost_microusd: Size | None = None
    tool_name: Text200 | None = None
    is_error: bool = False
    guardrail_actions: Annotated[tuple[Text40, ...], msgspec.Meta(max_length=20)] = ()
    limit_decision: Text40 = ""


class UsageEventError(ValueError):
    """An event that is not a valid usage event (malformed JSON, wrong types, bad values)."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(UsageEvent)


def encode_event(event: UsageEvent) -> bytes:
    return _encoder.encode(event)


def encode_events(events: Iterable[UsageEvent]) -> bytes:
    """JSON lines: each event on its own line, every line ending in a newline."""
    return b"".join(_encoder.encode(event) + b"\n" for event in events)


def decode_event(payload: bytes | str) -> UsageEvent:
    """The event in ``payload`` (one JSON object, surrounding whitespace allowed), checked;
    UsageEventError otherwise."""
    try:
        return _decoder.decode(payload.strip())
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise UsageEventError(str(exc)) from exc
