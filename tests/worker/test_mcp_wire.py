"""The MCP wire pieces in isolation: SSE framing and rewriting, lenient Accept, tools/list
filtering, tools/call outcomes, and the in-memory session store's idle expiry."""

from __future__ import annotations

import json

import pytest

from gateway_sync.worker.mcp_sessions import McpSession, MemorySessionStore
from gateway_sync.worker.mcp_wire import (
    SseEvents,
    accepts_sse,
    answers,
    call_failed,
    event_data,
    filter_tools,
    with_data,
)

pytestmark = pytest.mark.anyio


def test_events_are_split_whole_whatever_the_line_ending_and_chunking() -> None:
    stream = b'event: message\r\nid: 1\r\ndata: {"a": 1}\r\n\r\n: comment\n\ndata: {"b"\ndata: : 2}\n\n'
    events = SseEvents()
    seen = [event for index in range(len(stream)) for event in events.feed(stream[index : index + 1])]
    assert len(seen) == 3
    assert b"".join(seen) == stream
    assert event_data(seen[0]) == {"a": 1}
    assert event_data(seen[1]) is None  # a comment
    assert event_data(seen[2]) == {"b": 2}  # data lines joined with newlines
    assert events.pending == b""


def test_a_rewritten_event_keeps_its_id_and_type() -> None:
    event = b'event: message\r\nid: 7\r\ndata: {"x": 1}\r\n\r\n'
    rewritten = with_data(event, {"y": 2})
    assert rewritten == b'event: message\nid: 7\ndata: {"y":2}\n\n'
    assert event_data(rewritten) == {"y": 2}


@pytest.mark.parametrize(
    ("accept", "sse"),
    [
        ("application/json, text/event-stream", True),
        ("application/json", False),
        ("application/json;q=1", False),
        ("*/*", True),
        ("", True),
        ("text/event-stream", True),
    ],
)
def test_accept_is_read_leniently(accept: str, sse: bool) -> None:
    assert accepts_sse(accept) is sse


def test_tools_list_is_filtered_and_left_alone_when_nothing_is_dropped() -> None:
    message = {"jsonrpc": "2.0", "id": 3, "result": {"tools": [{"name": "a"}, {"name": "b"}], "nextCursor": "c"}}
    filtered = filter_tools(message, frozenset({"a"}))
    assert filtered == {"jsonrpc": "2.0", "id": 3, "result": {"tools": [{"name": "a"}], "nextCursor": "c"}}
    assert filter_tools(message, frozenset({"a", "b"})) is None
    assert filter_tools(message, frozenset()) is None  # no restriction


def test_tool_outcomes_and_response_matching() -> None:
    assert call_failed({"id": 1, "error": {"code": -32602, "message": "x"}})
    assert call_failed({"id": 1, "result": {"content": [], "isError": True}})
    assert not call_failed({"id": 1, "result": {"content": []}})
    assert answers({"id": 1, "result": {}}, 1)
    assert not answers({"id": 2, "result": {}}, 1)
    assert not answers({"id": 1, "method": "sampling/createMessage", "params": {}}, 1)  # a server request
    assert not answers(json.loads("[1]"), 1)


async def test_the_memory_store_forgets_an_idle_session_and_renews_a_used_one() -> None:
    now = [0.0]
    store = MemorySessionStore(10, clock=lambda: now[0])
    session = McpSession(app_id=1, product_id=2, upstream_session_id="up", protocol_version="2025-11-25")
    await store.put("s", session)
    now[0] = 9
    assert await store.get("s") == session  # used: idle again from now
    now[0] = 18
    assert await store.get("s") == session
    now[0] = 28.5
    assert await store.get("s") is None
    assert McpSession.decode(session.encode()) == session
    assert McpSession.decode(b"garbage") is None
