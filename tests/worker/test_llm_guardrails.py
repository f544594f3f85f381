"""/v1 guardrails on streamed answers: a card number the upstream splits across two SSE chunks
is still caught, blocked (an OpenAI error event ends the stream) or redacted (the client sees
``[CARD]``, never the digits), and the action is in the usage record."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.worker.llm_world import CARD, KEY, Mocks, gateway, mocks, settings_for, world

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXT = f"Your card is {CARD} thanks"
# The mock splits the reply here: "Your card is 4111 11" | "11 1111 1111 thanks".
SPLIT = {"x-mock-text": TEXT, "x-mock-split-at": str(TEXT.index(CARD) + 7)}
DIGITS = (CARD, CARD.replace(" ", ""), "1111 1111")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Mocks]:
    with mocks() as found:
        yield found


def chat(model: str) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "my card?"}], "stream": True}


def data_of(body: str) -> list[str]:
    return [line[6:] for line in body.splitlines() if line.startswith("data: ")]


def test_the_mock_really_splits_the_card_across_two_chunks():
    left, right = TEXT[: int(SPLIT["x-mock-split-at"])], TEXT[int(SPLIT["x-mock-split-at"]) :]
    assert CARD not in left
    assert CARD not in right


async def test_a_card_split_across_two_sse_chunks_is_blocked_with_an_error_event(tmp_path, upstreams):
    async with gateway(settings_for(tmp_path, resume_window_s=0), world(upstreams)) as gw:
        response = await gw.client.post("/v1/chat/completions", json=chat("guarded"), headers={**AUTH, **SPLIT})
        body = await response.text()
        assert not any(digits in body for digits in DIGITS)
        events = data_of(body)
        error = json.loads(events[-1])["error"]
        assert error["code"] == "content_filter"
        assert "[DONE]" not in events
        assert "block:pii_credit_card" in gw.records.records[-1].guardrail_actions

        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0)
        stream = await client.chat.completions.create(
            model="guarded", messages=[{"role": "user", "content": "my card?"}], stream=True, extra_headers=SPLIT
        )
        seen: list[str] = []

        async def read_all() -> None:
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")

        with pytest.raises(openai.APIError):
            await read_all()
        assert not any(digits in "".join(seen) for digits in DIGITS)
        await client.close()


async def test_a_card_split_across_two_sse_chunks_is_redacted(tmp_path, upstreams):
    async with gateway(settings_for(tmp_path, resume_window_s=0), world(upstreams)) as gw:
        response = await gw.client.post("/v1/chat/completions", json=chat("redacted"), headers={**AUTH, **SPLIT})
        body = await response.text()
        assert not any(digits in body for digits in DIGITS)
        assert data_of(body)[-1] == "[DONE]"
        assert "redact:pii_credit_card" in gw.records.records[-1].guardrail_actions

        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0)
        stream = await client.chat.completions.create(
            model="redacted", messages=[{"role": "user", "content": "my card?"}], stream=True, extra_headers=SPLIT
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Your card is [CARD] thanks"
        await client.close()
