"""Serving a resumed /v1 stream from the resume store (resume.py): the events after the
client's ``Last-Event-ID``, with no upstream call and nothing billed again."""

from __future__ import annotations

from aiohttp import web

from gateway_sync.worker.errors_openai import unknown_stream
from gateway_sync.worker.resume import ResumeStore


async def replay_stream(
    request: web.Request, store: ResumeStore | None, app_id: int, response_id: str, after_seq: int
) -> web.StreamResponse:
    """The rest of a buffered stream: no upstream call, nothing billed again."""
    if store is None:
        return unknown_stream()
    events = await store.replay(response_id, app_id=app_id, after_seq=after_seq)
    if events is None:
        return unknown_stream()
    response = web.StreamResponse(status=200)
    response.headers["Content-Type"] = "text/event-stream; charset=utf-8"
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Gateway-Response-Id"] = response_id
    await response.prepare(request)
    try:
        async for event in events:
            await response.write(event)
        await response.write_eof()
    except ConnectionError:
        pass
    return response
