"""Relaying one streamed completion (SSE) from the upstream to the client.

Events pass one by one, re-numbered ``id: <response_id>.<seq>`` and kept in the resume
store as sent. While the upstream is silent, a ``: keep-alive`` comment goes out every
``keepalive_s``. The events that come before any content (the role chunk) are held back
until the first content event: until then nothing but headers and comments has reached
the client, so a stream that breaks off or ends without its terminal chunk can still be
replaced by the next target or model (``RelayEnd.RETRY``). Once content has been sent, a
stream that breaks off is ended with an OpenAI-style error event instead: it cannot be
restarted without the client seeing the answer twice.

Where the route cuts streams on budget (``budget``, llm_budget.py), each content delta is
counted before it is sent; once the budget refuses a top-up the stream ends there with an
``insufficient_quota`` error event (``RelayEnd.BUDGET_CUT``) and the upstream is closed.

A client that leaves stops the upstream call (the connection is closed), unless streams
are resumable (a resume store is configured): then the answer, paid for either way, is
read to its end into the store, for the client to fetch with ``Last-Event-ID``. A handler
that is cancelled (shutdown, a second SIGTERM) abandons its response in the store instead:
it can never be ended, and a replay answers 404 at once.
"""

from __future__ import annotations

import asyncio
import enum
import logging

import aiohttp
from aiohttp import web

from gateway_sync.worker.errors_openai import sse_error_event
from gateway_sync.worker.guard_stream import StreamGuard
from gateway_sync.worker.llm_budget import BUDGET_CUT, StreamBudget
from gateway_sync.worker.llm_usage import UsageTally, completion_text, reported_usage
from gateway_sync.worker.llm_wire import DONE, KEEPALIVE, SSEEvent, SSEParser, decode_json, encode_json, format_event
from gateway_sync.worker.record import RequestRecord
from gateway_sync.worker.resume import ResumeStore

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024


class RelayEnd(enum.Enum):
    COMPLETE = "complete"  # the terminal chunk or [DONE] arrived and was sent
    RETRY = "retry"  # broke off before any content reached the client: try the next stage
    FAILED = "failed"  # broke off after content: an error event ended the stream
    BLOCKED = "blocked"  # a guardrail ended the stream with an error event
    CLIENT_GONE = "client_gone"  # the client left; the upstream call was closed
    BUDGET_CUT = "budget_cut"  # the token budget ran out: an error event ended the stream


def _carries_content(payload: object) -> bool:
    if not isinstance(payload, dict):
        return True
    if payload.get("error") is not None:
        return True
    return bool(completion_text(payload))


class _EventStreamResponse(web.StreamResponse):
    # aiohttp writes a StreamResponse's headers on ``prepare()``, in a write of their own.
    # The relay always writes right after preparing, so the headers leave with the first
    # bytes instead (as aiohttp's own ``web.Response`` does): one system call less a stream.
    _send_headers_immediately = False


class StreamRelay:
    """The client's side of one streamed response, across upstream attempts."""

    def __init__(
        self,
        request: web.Request,
        *,
        record: RequestRecord,
        headers: dict[str, str],
        response_id: str,
        keepalive_s: float,
        include_usage: bool,
        public_model: str,
        resume: ResumeStore | None,
        app_id: int,
        guard: StreamGuard | None,
        budget: StreamBudget | None = None,
    ) -> None:
        self.request = request
        self.record = record
        self.headers = headers
        self.response_id = response_id
        self.keepalive_s = keepalive_s
        self.include_usage = include_usage
        self.public_model = public_model
        self.resume = resume
        self.app_id = app_id
        self.guard = guard
        self.budget = budget
        self.response: web.StreamResponse | None = None
        self.seq = 0
        self.content_sent = False
        self.tally = UsageTally()
        self.text_parts: list[str] = []
        self._held: list[bytes] = []
        # While the events of one upstream chunk are relayed, what they write is gathered
        # here and sent in one write (None: write at once).
        self._gathered: list[bytes] | None = None
        self._rename: tuple[bytes, bytes] | None = None
        # This attempt saw [DONE] or a finish_reason.
        self._terminal = False

    # -- the client ---------------------------------------------------------------------

    async def prepare(self) -> web.StreamResponse:
        if self.response is None:
            response = _EventStreamResponse(status=200)
            response.headers.update(self.headers)
            response.headers["Content-Type"] = "text/event-stream; charset=utf-8"
            response.headers["Cache-Control"] = "no-cache"
            response.headers["X-Accel-Buffering"] = "no"
            response.headers["X-Gateway-Response-Id"] = self.response_id
            self.response = response
            await response.prepare(self.request)
            if self.resume is not None:
                await self.resume.begin(self.response_id, app_id=self.app_id)
        return self.response

    async def _write(self, data: bytes) -> bool:
        """False once the client has gone, unless the stream is resumable: then the rest
        still goes to the resume store, for the client to fetch when it reconnects."""
        response = await self.prepare()
        if self.record.client_closed:
            return self.resume is not None
        if self._gathered is not None:
            self._gathered.append(data)
            return True
        try:
            await response.write(data)
        except ConnectionError:
            self.record.client_closed = True
            return self.resume is not None
        self.record.bytes_out += len(data)
        return True

    async def _send_gathered(self) -> bool:
        """Write what the events of one upstream chunk gathered, in one write."""
        gathered, self._gathered = self._gathered, None
        if not gathered:
            return not self.record.client_closed or self.resume is not None
        return await self._write(gathered[0] if len(gathered) == 1 else b"".join(gathered))

    async def send_event(self, data: bytes, name: bytes = b"") -> bool:
        event = format_event(f"{self.response_id}.{self.seq}", data, name)
        if self.resume is not None:
            await self.prepare()
            await self.resume.append(self.response_id, self.seq, event)
        self.seq += 1
        return await self._write(event)

    async def send_error(self, message: str, *, code: str, error_type: str = "api_error") -> bool:
        """The last event of a stream that cannot go on (then ``end``)."""
        event_id = f"{self.response_id}.{self.seq}"
        event = sse_error_event(message, code=code, error_type=error_type, event_id=event_id)
        if self.resume is not None:
            await self.prepare()
            await self.resume.append(self.response_id, self.seq, event)
        self.seq += 1
        return await self._write(event)

    async def end(self) -> None:
        if self.response is None:
            return
        if self.resume is not None:
            await self.resume.end(self.response_id)
        if not self.record.client_closed:
            try:
                await self.response.write_eof()
            except ConnectionError:
                self.record.client_closed = True

    async def abandon(self) -> None:
        """The handler was cancelled: the stream will never be ended, so a reconnecting
        client is answered 404 at once instead of waiting for the store's idle timeout."""
        if self.response is not None and self.resume is not None:
            await self.resume.abandon(self.response_id)

    # -- one upstream attempt -----------------------------------------------------------

    async def relay(self, upstream: aiohttp.ClientResponse, upstream_model: str) -> RelayEnd:
        """Pass the upstream's events on until the stream ends; the caller closes ``upstream``."""
        self._held = []
        self._rename = None
        self._terminal = False
        if upstream_model != self.public_model:
            self._rename = (f'"model":"{upstream_model}"'.encode(), f'"model":"{self.public_model}"'.encode())
        parser = SSEParser()
        while True:
            try:
                async with asyncio.timeout(self.keepalive_s):
                    chunk = await upstream.content.readany()
            except TimeoutError:
                if not await self._write(KEEPALIVE):
                    return RelayEnd.CLIENT_GONE
                continue
            except (aiohttp.ClientError, OSError) as exc:
                log.warning("product %s: upstream stream broke off: %r", self.record.product_slug, exc)
                return await self._broken("The upstream's stream broke off.")
            events = parser.feed(chunk) if chunk else parser.close()
            end = None
            self._gathered = []
            try:
                for event in events:
                    end = await self._event(event)
                    if end is not None:
                        break
            finally:
                sent = await self._send_gathered()
            if end is not None:
                return end
            if not sent:
                return RelayEnd.CLIENT_GONE
            if not chunk:
                break
        if not self._terminal:
            return await self._broken("The upstream's stream ended before its last chunk.")
        if not await self._flush_held():  # a complete stream without content (an empty reply)
            return RelayEnd.CLIENT_GONE
        return RelayEnd.COMPLETE

    async def _broken(self, message: str) -> RelayEnd:
        if not self.content_sent:
            self._held = []
            return RelayEnd.RETRY
        await self.send_error(message, code="upstream_stream_broken")
        return RelayEnd.FAILED

    async def _event(self, event: SSEEvent) -> RelayEnd | None:
        if event.data == DONE:
            self._terminal = True
            if self.guard is not None:
                end = await self._guarded_finish(self.guard)
                if end is not None:
                    return end
            if not await self._flush_held() or not await self.send_event(DONE):
                return RelayEnd.CLIENT_GONE
            return None
        payload = decode_json(event.data)
        if isinstance(payload, dict):
            self.tally.add(reported_usage(payload))
            text = completion_text(payload)
            if text and self.budget is not None:
                # What was gathered goes first: it need not wait for the budget's round trip.
                if not await self._send_gathered():
                    return RelayEnd.CLIENT_GONE
                self._gathered = []
                if not await self.budget.admit(text):
                    return await self._cut_for_budget()
            if text:
                self.text_parts.append(text)
            choices = payload.get("choices")
            if isinstance(choices, list) and any(
                isinstance(c, dict) and c.get("finish_reason") is not None for c in choices
            ):
                self._terminal = True
            if choices == [] and payload.get("usage") is not None and not self.include_usage:
                return None  # the usage chunk the gateway asked for, not the client
            if payload.get("error") is not None and not choices:
                self._terminal = True
            if self.guard is not None:
                step = self.guard.process(payload)
                self._note_actions(step.actions)
                if step.blocked:
                    await self.send_error(step.message, code="content_filter", error_type="invalid_request_error")
                    return RelayEnd.BLOCKED
                for emitted in step.emit:
                    if not await self._emit(encode_json(emitted), emitted, event.event):
                        return RelayEnd.CLIENT_GONE
                return None
        if not await self._emit(event.data, payload, event.event):
            return RelayEnd.CLIENT_GONE
        return None

    async def _cut_for_budget(self) -> RelayEnd:
        self._held = []
        self._note_actions([BUDGET_CUT])
        await self.send_error(
            "The token budget of your plan ran out; the answer was cut here.",
            code="budget_exhausted",
            error_type="insufficient_quota",
        )
        return RelayEnd.BUDGET_CUT

    async def _guarded_finish(self, guard: StreamGuard) -> RelayEnd | None:
        step = guard.finish()
        self._note_actions(step.actions)
        if step.blocked:
            await self.send_error(step.message, code="content_filter", error_type="invalid_request_error")
            return RelayEnd.BLOCKED
        for emitted in step.emit:
            if not await self._emit(encode_json(emitted), emitted, b""):
                return RelayEnd.CLIENT_GONE
        return None

    def _note_actions(self, actions: list[str]) -> None:
        for action in actions:
            if action not in self.record.guardrail_actions:
                self.record.guardrail_actions.append(action)

    async def _emit(self, data: bytes, payload: object, name: bytes) -> bool:
        if self._rename is not None:
            data = data.replace(*self._rename)
        if not self.content_sent and not _carries_content(payload) and not self._terminal:
            self._held.append(data)
            return True
        if not await self._flush_held():
            return False
        self.content_sent = True
        return await self.send_event(data, name)

    async def _flush_held(self) -> bool:
        held, self._held = self._held, []
        for data in held:
            if not await self.send_event(data):
                return False
        return True
