"""demo-llm's models, embeddings and legacy completions, and its answers to bad requests."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from demo_upstreams.inprocess import serve_aiohttp
from demo_upstreams.mock_llm import MockLLMConfig, create_app

HELLO = [{"role": "user", "content": "Hello, world!"}]


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def test_models_lists_the_chat_and_embedding_models(llm: openai.OpenAI) -> None:
    models = llm.models.list()

    assert [model.id for model in models.data] == ["demo-chat", "demo-embed"]
    assert {model.owned_by for model in models.data} == {"demo-llm"}


def test_a_model_can_be_retrieved_and_an_unknown_one_is_a_404(llm: openai.OpenAI) -> None:
    assert llm.models.retrieve("demo-embed").id == "demo-embed"
    with pytest.raises(openai.NotFoundError):
        llm.models.retrieve("gpt-9")


def test_the_model_list_is_configurable() -> None:
    config = MockLLMConfig(chat_models=("small", "large"), embedding_models=("vectors",))
    with serve_aiohttp(create_app(config)) as base_url:
        listed = httpx.get(f"{base_url}/v1/models").json()
        reply = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "large", "messages": HELLO})

    assert [model["id"] for model in listed["data"]] == ["small", "large", "vectors"]
    assert reply.json()["model"] == "large"


def test_embeddings_are_deterministic_unit_vectors(llm: openai.OpenAI) -> None:
    first = llm.embeddings.create(model="demo-embed", input="hello", encoding_format="float")
    second = llm.embeddings.create(model="demo-embed", input="hello", encoding_format="float")
    other = llm.embeddings.create(model="demo-embed", input="goodbye", encoding_format="float")

    vector = first.data[0].embedding
    assert len(vector) == 256
    assert math.isclose(math.fsum(value * value for value in vector), 1.0, rel_tol=1e-5)
    assert vector == second.data[0].embedding
    assert vector != other.data[0].embedding
    assert first.usage.prompt_tokens == first.usage.total_tokens == 1


def test_embeddings_honour_dimensions_and_list_input(llm: openai.OpenAI) -> None:
    response = llm.embeddings.create(model="demo-embed", input=["a b", "c", "a b"], dimensions=8)

    assert [item.index for item in response.data] == [0, 1, 2]
    assert {len(item.embedding) for item in response.data} == {8}
    assert response.data[0].embedding == response.data[2].embedding
    assert response.usage.prompt_tokens == 5


def test_the_sdk_default_base64_encoding_decodes_to_the_float_vector(llm: openai.OpenAI) -> None:
    as_base64 = llm.embeddings.create(model="demo-embed", input="hello", dimensions=16)
    as_float = llm.embeddings.create(model="demo-embed", input="hello", dimensions=16, encoding_format="float")

    assert as_base64.data[0].embedding == as_float.data[0].embedding


def test_embeddings_accept_token_arrays(llm: openai.OpenAI) -> None:
    response = llm.embeddings.create(model="demo-embed", input=[[1, 2, 3], [4]], dimensions=4)

    assert len(response.data) == 2
    assert response.usage.prompt_tokens == 4


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "demo-embed"}, 400, "input"),
        ({"model": "demo-embed", "input": []}, 400, "input"),
        ({"model": "demo-embed", "input": ["ok", ""]}, 400, "input[1]"),
        ({"model": "demo-embed", "input": "x", "dimensions": 0}, 400, "dimensions"),
        ({"model": "demo-embed", "input": "x", "encoding_format": "hex"}, 400, "encoding_format"),
        ({"model": "demo-chat", "input": "x"}, 400, "model"),
        ({"model": "nope", "input": "x"}, 404, "model"),
    ],
)
def test_bad_embedding_requests(llm_url: str, body: dict[str, Any], status: int, param: str) -> None:
    response = httpx.post(f"{llm_url}/v1/embeddings", json=body)

    assert response.status_code == status
    assert error_of(response)["param"] == param


def test_a_legacy_completion_echoes_the_prompt_within_16_tokens_by_default(llm: openai.OpenAI) -> None:
    short = llm.completions.create(model="demo-chat", prompt="Say this is a test")
    long = llm.completions.create(model="demo-chat", prompt=" ".join(["word"] * 40))

    assert short.choices[0].text == "Echo: Say this is a test"
    assert short.choices[0].finish_reason == "stop"
    assert short.usage is not None
    assert short.usage.prompt_tokens == 5
    assert long.usage is not None
    assert long.usage.completion_tokens == 16
    assert long.choices[0].finish_reason == "length"


def test_a_legacy_completion_with_several_prompts_and_echo(llm: openai.OpenAI) -> None:
    completion = llm.completions.create(model="demo-chat", prompt=["a", "b"], echo=True, max_tokens=50)

    assert [choice.text for choice in completion.choices] == ["aEcho: a", "bEcho: b"]


def test_a_streamed_legacy_completion_with_include_usage(llm: openai.OpenAI) -> None:
    chunks = list(
        llm.completions.create(
            model="demo-chat", prompt="hi there", stream=True, stream_options={"include_usage": True}
        )
    )

    *text_chunks, usage_chunk = chunks
    assert "".join(chunk.choices[0].text for chunk in text_chunks) == "Echo: hi there"
    assert text_chunks[-1].choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 4


def test_token_array_prompts_are_refused(llm_url: str) -> None:
    response = httpx.post(f"{llm_url}/v1/completions", json={"model": "demo-chat", "prompt": [1, 2]})

    assert response.status_code == 400
    assert error_of(response)["param"] == "prompt"


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"messages": HELLO}, 400, "model", "missing_required_parameter"),
        ({"model": "gpt-unknown", "messages": HELLO}, 404, "model", "model_not_found"),
        ({"model": "demo-embed", "messages": HELLO}, 400, "model", "model_not_supported"),
        ({"model": "demo-chat"}, 400, "messages", "missing_required_parameter"),
        ({"model": "demo-chat", "messages": "hello"}, 400, "messages", "invalid_type"),
        ({"model": "demo-chat", "messages": []}, 400, "messages", "empty_array"),
        ({"model": "demo-chat", "messages": ["hi"]}, 400, "messages[0]", "invalid_type"),
        ({"model": "demo-chat", "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role", None),
        ({"model": "demo-chat", "messages": HELLO, "max_tokens": 0}, 400, "max_tokens", "invalid_value"),
        ({"model": "demo-chat", "messages": HELLO, "stream": "yes"}, 400, "stream", "invalid_type"),
        ({"model": "demo-chat", "messages": HELLO, "tools": {}}, 400, "tools", "invalid_type"),
        (
            {"model": "demo-chat", "messages": HELLO, "stream": True, "stream_options": {"include_usage": 1}},
            400,
            "stream_options.include_usage",
            "invalid_type",
        ),
    ],
)
def test_bad_chat_requests_get_openai_error_objects(
    llm_url: str, body: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    response = httpx.post(f"{llm_url}/v1/chat/completions", json=body)

    assert response.status_code == status
    error = error_of(response)
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_a_body_that_is_not_a_json_object_is_a_400(llm_url: str, raw: bytes) -> None:
    response = httpx.post(f"{llm_url}/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


def test_the_sdk_raises_not_found_for_an_unknown_model(llm: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        llm.chat.completions.create(model="gpt-unknown", messages=HELLO)

    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "model_not_found"


def test_unknown_urls_and_methods_are_openai_errors(llm_url: str) -> None:
    missing = httpx.get(f"{llm_url}/v1/responses")
    wrong_method = httpx.get(f"{llm_url}/v1/chat/completions")

    assert missing.status_code == 404
    assert error_of(missing)["code"] == "unknown_url"
    assert wrong_method.status_code == 405
    assert error_of(wrong_method)["message"] == "GET is not allowed on /v1/chat/completions."


def test_healthz(llm_url: str) -> None:
    assert httpx.get(f"{llm_url}/healthz").json() == {"status": "ok", "product": "demo-llm"}


@pytest.fixture(scope="module")
def keyed_llm_url() -> Iterator[str]:
    with serve_aiohttp(create_app(MockLLMConfig(api_key="sk-demo"))) as base_url:
        yield base_url


def test_a_configured_api_key_is_required(keyed_llm_url: str) -> None:
    with (
        openai.OpenAI(base_url=f"{keyed_llm_url}/v1", api_key="wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError) as raised,
    ):
        wrong.models.list()
    with openai.OpenAI(base_url=f"{keyed_llm_url}/v1", api_key="sk-demo", max_retries=0) as right:
        models = right.models.list()

    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "invalid_api_key"
    assert [model.id for model in models.data] == ["demo-chat", "demo-embed"]
    assert httpx.get(f"{keyed_llm_url}/healthz").status_code == 200
