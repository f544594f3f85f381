"""/v1 when things go wrong, against the real mock LLM on loopback: fallback before the first
byte and on truncated streams, cooldown, a canary between models, keep-alives, a client
leaving mid-stream (resuming off), and a resumed stream (resuming on)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator

import openai
import pytest

from gateway_sync.worker.llm_settings import LlmSettings
from gateway_sync.worker.llm_stream import StreamRelay
from gateway_sync.worker.resume import RESUME_STORE_KEY
from gateway_sync.worker.resume_redis import RedisResumeStore
from tests.worker.llm_world import AMBIGUOUS, KEY, Gateway, Mocks, gateway, mocks, settings_for, world

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Mocks]:
    with mocks() as found:
        yield found


def chat(model: str, text: str = "hello", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def sse_events(body: str) -> list[tuple[str | None, str]]:
    """``(id, data)`` of every event of an SSE body (comments skipped)."""
    events = []
    for block in body.split("\n\n"):
        lines = block.splitlines()
        data = [line[6:] for line in lines if line.startswith("data: ")]
        if not data:
            continue
        ids = [line[4:] for line in lines if line.startswith("id: ")]
        events.append((ids[0] if ids else None, "\n".join(data)))
    return events


def joined_deltas(events: list[tuple[str | None, str]]) -> str:
    """The answer's text: every chunk's ``delta.content``, in order (events split words)."""
    text = []
    for _, data in events:
        if data == "[DONE]":
            continue
        for choice in json.loads(data).get("choices") or ():
            text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)


def sdk(gw: Gateway, key: str = KEY) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    gw.sdks.append(client)
    return client


async def streamed_text(client: openai.AsyncOpenAI, model: str, text: str = "hello", **extra: object) -> str:
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        stream=True,
        **extra,  # type: ignore[arg-type]
    )
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def until(condition, what: str, deadline_s: float = 15.0) -> None:
    """Poll ``condition`` until it holds, or fail after ``deadline_s`` (a busy machine is slow)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_failing_model_falls_back_to_the_next_before_the_first_byte_and_then_cools_down(tmp_path, upstreams):
    async with gateway(settings_for(tmp_path, resume_window_s=0), world(upstreams)) as gw:
        client = sdk(gw)
        before = len(upstreams.failing.calls)
        for _ in range(3):
            raw = await client.chat.completions.with_raw_response.create(
                model="flaky", messages=[{"role": "user", "content": "hello"}]
            )
            assert raw.headers["X-Gateway-Model"] == "backup"
            assert raw.parse().choices[0].message.content == "Echo: hello"
        # The route's cooldown is 2 failures: the third request skipped the failing target.
        assert len(upstreams.failing.calls) - before == 2
        assert await streamed_text(client, "flaky") == "Echo: hello"
        assert len(upstreams.failing.calls) - before == 2
        await client.close()


async def test_a_stream_truncated_before_any_content_is_answered_whole_by_the_fallback_model(tmp_path, upstreams):
    async with gateway(settings_for(tmp_path, resume_window_s=0), world(upstreams)) as gw:
        client = sdk(gw)
        before = len(upstreams.cut_early.calls)
        assert await streamed_text(client, "cut-early", "one two three") == "Echo: one two three"
        assert len(upstreams.cut_early.calls) == before + 1
        record = gw.records.records[-1]
        assert record.attempts == 2
        response = await gw.client.post("/v1/chat/completions", json=chat("cut-early", stream=True), headers=AUTH)
        assert response.headers["X-Gateway-Model"] == "backup"
        events = sse_events(await response.text())
        assert events[-1][1] == "[DONE]"
        assert joined_deltas(events) == "Echo: hello"
        await client.close()


async def test_a_stream_truncated_after_content_ends_with_an_openai_error_event(tmp_path, upstreams):
    async with gateway(settings_for(tmp_path, resume_window_s=0), world(upstreams)) as gw:
        response = await gw.client.post("/v1/chat/completions", json=chat("cut", stream=True), headers=AUTH)
        events = sse_events(await response.text())
        assert joined_deltas(events[:-1]) == "A partial answer that stops"
        error = json.loads(events[-1][1])["error"]
        assert error["code"] == "upstream_stream_broken"
        assert "[DONE]" not in [data for _, data in events]
        # The official client sees it as an API error after the partial text.
        client, seen = sdk(gw), []
        stream = await client.chat.completions.create(model="cut", messages=chat("cut")["messages"], stream=True)

        async def read_all() -> None:
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")

        with pytest.raises(openai.APIError):
            await read_all()
        assert "".join(seen) == "A partial answer that stops"
        await client.close()


async def test_a_canary_between_two_models_follows_its_weight_within_5_percent(tmp_path, upstreams):
    async with gateway(settings_for(tmp_path, resume_window_s=0), world(upstreams)) as gw:
        seen: Counter[str] = Counter()
        for _ in range(600):
            response = await gw.client.post("/v1/chat/completions", json=chat("canary"), headers=AUTH)
            assert response.status == 200
            seen[response.headers["X-Gateway-Target"]] += 1
            await response.read()
        assert abs(seen["candidate"] / 600 - 0.20) <= 0.05


async def test_keep_alive_comments_while_the_upstream_is_silent(tmp_path, upstreams):
    settings = LlmSettings(keepalive_s=0.1)
    async with gateway(settings_for(tmp_path, resume_window_s=0), world(upstreams), settings) as gw:
        response = await gw.client.post(
            "/v1/chat/completions",
            json=chat("chat", "a b", stream=True),
            headers={**AUTH, "x-mock-chunk-delay-ms": "350"},
        )
        body = await response.text()
        assert body.count(": keep-alive\n\n") >= 3
        events = sse_events(body)
        assert events[-1][1] == "[DONE]"
        assert joined_deltas(events) == "Echo: a b"


async def test_with_resuming_off_a_client_leaving_cancels_the_upstream_and_is_billed_an_estimate(tmp_path, upstreams):
    async with gateway(settings_for(tmp_path, resume_window_s=0), world(upstreams)) as gw:
        before = len(upstreams.main.disconnects)
        response = await gw.client.post(
            "/v1/chat/completions",
            json=chat("chat", stream=True),
            headers={**AUTH, "x-mock-reply-tokens": "200", "x-mock-chunk-delay-ms": "20"},
        )
        for _ in range(3):
            await response.content.readuntil(b"\n\n")
        response.close()
        await until(lambda: len(upstreams.main.disconnects) > before, "the mock to see its client leave")
        await until(lambda: bool(gw.records.records), "the usage record")
        record = gw.records.records[-1]
        assert record.client_closed
        assert record.tokens_estimated
        assert 0 < (record.completion_tokens or 0) < 200
        assert record.cost_microusd


async def test_with_resuming_on_a_client_leaving_does_not_stop_the_upstream_and_is_billed_the_whole_answer(
    tmp_path, upstreams
):
    async with gateway(settings_for(tmp_path, resume_window_s=60), world(upstreams)) as gw:
        before = len(upstreams.main.disconnects)
        response = await gw.client.post(
            "/v1/chat/completions",
            json=chat("chat", stream=True),
            headers={**AUTH, "x-mock-reply-tokens": "60", "x-mock-chunk-delay-ms": "10"},
        )
        for _ in range(3):
            await response.content.readuntil(b"\n\n")
        response.close()
        await until(lambda: bool(gw.records.records), "the usage record")
        record = gw.records.records[-1]
        assert record.client_closed
        assert record.completion_tokens == 60
        assert record.tokens_estimated is False
        assert len(upstreams.main.disconnects) == before


async def test_a_resumed_stream_delivers_the_rest_with_nothing_duplicated(tmp_path, upstreams):
    text = "one two three four five six seven eight"
    async with gateway(settings_for(tmp_path, resume_window_s=60), world(upstreams)) as gw:
        response = await gw.client.post(
            "/v1/chat/completions",
            json=chat("chat", text, stream=True),
            headers={**AUTH, "x-mock-chunk-delay-ms": "30"},
        )
        response_id = response.headers["X-Gateway-Response-Id"]
        head = ""
        while len(sse_events(head)) < 3:
            head += (await response.content.readuntil(b"\n\n")).decode()
        response.close()
        first = sse_events(head)
        last_id = first[-1][0]
        assert last_id is not None
        calls = len(upstreams.main.calls)

        resumed = await gw.client.get(f"/v1/streams/{response_id}", headers={**AUTH, "Last-Event-ID": last_id})
        assert resumed.status == 200
        rest = sse_events(await resumed.text())
        events = first + rest
        assert joined_deltas(events) == f"Echo: {text}"
        assert events[-1][1] == "[DONE]"
        seqs = [int(str(event_id).split(".")[1]) for event_id, _ in events]
        assert seqs == sorted(set(seqs)), "event ids strictly increasing"
        assert all(str(event_id).startswith(response_id) for event_id, _ in events)
        assert len(upstreams.main.calls) == calls, "a resume calls no upstream"

        # Reconnecting the way EventSource does (the same POST, with Last-Event-ID) works too.
        again = await gw.client.post(
            "/v1/chat/completions", json=chat("chat", stream=True), headers={**AUTH, "Last-Event-ID": last_id}
        )
        assert sse_events(await again.text()) == rest
        assert len(upstreams.main.calls) == calls

        other_app = {"Authorization": f"Bearer {AMBIGUOUS}", "Last-Event-ID": last_id}
        assert (await gw.client.get(f"/v1/streams/{response_id}", headers=other_app)).status == 404
        assert (await gw.client.get(f"/v1/streams/{'0' * 32}", headers=AUTH)).status == 404


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_cancelled_streaming_handler_leaves_its_response_unavailable_at_once(
    tmp_path, upstreams, store, request, monkeypatch
):
    overrides: dict[str, object] = {"resume_window_s": 60}
    if store == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
    handlers: list[asyncio.Task[object]] = []
    prepare = StreamRelay.prepare

    async def noting_the_handler(self: StreamRelay) -> object:
        task = asyncio.current_task()
        if task is not None and task not in handlers:
            handlers.append(task)
        return await prepare(self)

    monkeypatch.setattr(StreamRelay, "prepare", noting_the_handler)
    async with gateway(settings_for(tmp_path, **overrides), world(upstreams)) as gw:
        response = await gw.client.post(
            "/v1/chat/completions",
            json=chat("chat", stream=True),
            headers={**AUTH, "x-mock-reply-tokens": "200", "x-mock-chunk-delay-ms": "20"},
        )
        response_id = response.headers["X-Gateway-Response-Id"]
        head = ""
        while len(sse_events(head)) < 3:
            head += (await response.content.readuntil(b"\n\n")).decode()
        last_id = sse_events(head)[-1][0]
        assert last_id is not None
        # Shutdown after its timeout (or a second SIGTERM) cancels the handler mid-stream.
        assert len(handlers) == 1
        handlers[0].cancel()
        await until(handlers[0].done, "the handler to be cancelled")
        response.close()
        resume = gw.app[RESUME_STORE_KEY]
        if isinstance(resume, RedisResumeStore):
            await resume.flush()

        started = time.monotonic()
        resumed = await gw.client.get(f"/v1/streams/{response_id}", headers={**AUTH, "Last-Event-ID": last_id})
        assert resumed.status == 404
        assert time.monotonic() - started < 5.0, "answered at once, not after the idle timeout"
