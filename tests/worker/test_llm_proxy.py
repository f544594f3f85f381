"""/v1 through the official openai SDK against the real mock LLM: chat whole and streamed,
completions, embeddings, models, tool calls, errors as OpenAI objects, usage records."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from gateway_sync.worker.__main__ import REGISTRARS
from gateway_sync.worker.app import create_app
from gateway_sync.worker.resume import RESUME_STORE_KEY
from tests.worker.llm_world import AMBIGUOUS, KEY, NO_SUB, Mocks, gateway, mocks, settings_for, world

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Mocks]:
    with mocks() as found:
        yield found


@pytest.fixture
async def gw(tmp_path, upstreams):
    async with gateway(settings_for(tmp_path, resume_window_s=0), world(upstreams)) as found:
        yield found
        for client in found.sdks:
            await client.close()


def sdk(gw, key: str = KEY) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
    gw.sdks.append(client)
    return client


async def test_chat_whole_answers_with_the_public_model_and_records_usage_and_cost(gw):
    reply = await sdk(gw).chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi there"}])
    assert reply.choices[0].message.content == "Echo: hi there"
    assert reply.model == "chat"
    record = gw.records.records[-1]
    assert record.protocol == "llm"
    assert record.status == 200
    assert record.prompt_tokens == reply.usage.prompt_tokens
    assert record.completion_tokens == reply.usage.completion_tokens
    assert record.tokens_estimated is False
    expected = (record.prompt_tokens * 1_000_000 + record.completion_tokens * 2_000_000 + 500_000) // 1_000_000
    assert record.cost_microusd == expected


async def test_chat_streamed_chunk_by_chunk_without_the_usage_chunk_unless_asked(gw):
    stream = await sdk(gw).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three"
    assert all(c.choices for c in chunks), "the usage-only chunk the gateway asked for is stripped"
    record = gw.records.records[-1]
    assert record.completion_tokens
    assert record.tokens_estimated is False

    stream = await sdk(gw).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == record.completion_tokens


async def test_every_streamed_event_has_a_numbered_id(gw):
    response = await gw.client.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "a b"}], "stream": True},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    body = await response.text()
    ids = [line[4:] for line in body.splitlines() if line.startswith("id: ")]
    response_id = response.headers["X-Gateway-Response-Id"]
    assert len(response_id) == 32
    assert ids == [f"{response_id}.{n}" for n in range(len(ids))]
    assert body.rstrip().endswith("data: [DONE]")


async def test_completions_and_embeddings(gw):
    client = sdk(gw)
    completion = await client.completions.create(model="chat", prompt="say this")
    assert completion.choices[0].text.startswith("Echo:")
    embedding = await client.embeddings.create(model="embed", input=["a", "b"])
    assert len(embedding.data) == 2
    assert len(embedding.data[0].embedding) == 256
    record = gw.records.records[-1]
    assert record.prompt_tokens == embedding.usage.prompt_tokens
    assert record.completion_tokens == 0


async def test_models_lists_only_what_the_plan_allows(gw):
    listed = [model.id async for model in sdk(gw).models.list()]
    assert "chat" in listed
    assert "embed" in listed
    assert "not-in-plan" not in listed
    both = [model.id async for model in sdk(gw, AMBIGUOUS).models.list()]
    assert "llm/chat" in both
    assert "other/chat" in both
    assert "chat" not in both


async def test_tool_calls_pass_through(gw):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    reply = await sdk(gw).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "weather in Paris"}], tools=tools, tool_choice="required"
    )
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments), dict)


async def test_errors_are_openai_objects_with_the_sdk_exception_classes(gw):
    messages = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.AuthenticationError) as auth:
        await sdk(gw, "sk-wrong").chat.completions.create(model="chat", messages=messages)
    assert auth.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk(gw).chat.completions.create(model="no-such-model", messages=messages)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.PermissionDeniedError):
        await sdk(gw).chat.completions.create(model="not-in-plan", messages=messages)
    with pytest.raises(openai.PermissionDeniedError):
        await sdk(gw, NO_SUB).chat.completions.create(model="chat", messages=messages)
    with pytest.raises(openai.BadRequestError) as ambiguous:
        await sdk(gw, AMBIGUOUS).chat.completions.create(model="chat", messages=messages)
    assert "llm/chat" in ambiguous.value.message
    reply = await sdk(gw, AMBIGUOUS).chat.completions.create(model="other/chat", messages=messages)
    assert reply.choices[0].message.content == "Echo: x"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"messages": []}', b'{"model": 3, "messages": []}', b'{"model": "chat"}'],
)
async def test_bad_bodies_are_400_invalid_request_errors(gw, body):
    response = await gw.client.post(
        "/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"


async def test_upstream_usage_missing_is_estimated_with_the_tokenizer(gw):
    await sdk(gw).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello world"}], extra_headers={"x-mock-no-usage": "1"}
    )
    record = gw.records.records[-1]
    assert record.tokens_estimated is True
    assert record.prompt_tokens
    assert record.completion_tokens
    assert record.cost_microusd is not None


def test_the_worker_registers_one_resume_store_owned_by_the_llm_proxy(tmp_path):
    app = create_app(settings_for(tmp_path, resume_window_s=60), route_registrars=REGISTRARS)
    assert RESUME_STORE_KEY in app
    assert sum(1 for ctx in app.cleanup_ctx if getattr(ctx, "__name__", "") == "_store_lifespan") == 1
    off = create_app(settings_for(tmp_path, resume_window_s=0), route_registrars=REGISTRARS)
    assert RESUME_STORE_KEY not in off
