"""/v1 token quotas: reserved at admission, settled to the actual usage, released when nothing
was produced; a burst cannot overshoot; a request refused for its tokens spends no request
quota."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gateway_sync.contract.schema import Snapshot
from gateway_sync.worker.proxy_llm import LLM_KEY
from gateway_sync.worker.token_limits import budgets_for_plan
from tests.worker.llm_world import TIGHT, Gateway, Mocks, gateway, mocks, settings_for, world

pytestmark = pytest.mark.anyio
TIGHT_AUTH = {"Authorization": f"Bearer {TIGHT}"}
TIGHT_SCOPE = "sub:14"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Mocks]:
    with mocks() as found:
        yield found


def chat(text: str = "hello", **extra: object) -> dict[str, object]:
    return {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}


async def tokens_used(gw: Gateway, snapshot: Snapshot) -> int:
    """The Tight subscription's tokens counted this minute (a zero reservation reads them)."""
    plan = next(p for p in snapshot.plans if p.name == "Tight")
    probe = await gw.app[LLM_KEY].tokens.reserve(
        scope=TIGHT_SCOPE, budgets=budgets_for_plan(plan), tokens=0, microusd=0
    )
    return probe.usage[0].used


async def test_a_burst_of_20_against_a_token_quota_that_fits_5_admits_at_most_5(tmp_path, upstreams):
    # Each request reserves its prompt (about 8 tokens) + max_tokens 100, and really uses
    # 100 completion tokens, so settling frees next to nothing: the outcome does not
    # depend on how the 20 interleave.
    async with gateway(settings_for(tmp_path, resume_window_s=0), world(upstreams, tight_tokens_per_minute=600)) as gw:
        headers = {**TIGHT_AUTH, "x-mock-reply-tokens": "100"}

        async def one() -> tuple[int, dict[str, object], dict[str, str]]:
            response = await gw.client.post("/v1/chat/completions", json=chat(max_tokens=100), headers=headers)
            return response.status, await response.json(), dict(response.headers)

        answers = await asyncio.gather(*(one() for _ in range(20)))
        statuses = [status for status, _, _ in answers]
        assert 1 <= statuses.count(200) <= 5
        assert set(statuses) <= {200, 429}
        for status, body, response_headers in answers:
            if status != 429:
                continue
            error = body["error"]
            assert isinstance(error, dict)
            assert error["code"] == "rate_limit_exceeded"
            assert error["type"] == "tokens"
            assert "Retry-After" in response_headers
            assert response_headers["X-RateLimit-Limit-Tokens"] == "600"
            assert "RateLimit-Policy" in response_headers


async def test_a_request_refused_for_its_tokens_spends_no_request_quota(tmp_path, upstreams):
    snapshot = world(upstreams, tight_tokens_per_minute=600, tight_requests_per_minute=2)
    async with gateway(settings_for(tmp_path, resume_window_s=0), snapshot) as gw:
        for _ in range(5):  # max_tokens beyond the whole quota: refused for good
            response = await gw.client.post("/v1/chat/completions", json=chat(max_tokens=5000), headers=TIGHT_AUTH)
            assert response.status == 429
            assert (await response.json())["error"]["code"] == "insufficient_quota"
        for _ in range(2):  # the 2 requests a minute are all still there
            response = await gw.client.post("/v1/chat/completions", json=chat(max_tokens=10), headers=TIGHT_AUTH)
            assert response.status == 200
        response = await gw.client.post("/v1/chat/completions", json=chat(max_tokens=10), headers=TIGHT_AUTH)
        assert response.status == 429
        assert (await response.json())["error"]["type"] == "requests"


async def test_a_reservation_is_released_on_failure_and_settled_to_the_actual_usage(tmp_path, upstreams):
    snapshot = world(upstreams, tight_tokens_per_minute=600)
    async with gateway(settings_for(tmp_path, resume_window_s=0), snapshot) as gw:
        failed = await gw.client.post(
            "/v1/chat/completions", json=chat(max_tokens=100), headers={**TIGHT_AUTH, "x-mock-fail": "503"}
        )
        assert failed.status == 503
        assert await tokens_used(gw, snapshot) == 0

        ok = await gw.client.post("/v1/chat/completions", json=chat(max_tokens=100), headers=TIGHT_AUTH)
        assert ok.status == 200
        usage = (await ok.json())["usage"]
        assert usage["completion_tokens"] < 100
        assert await tokens_used(gw, snapshot) == usage["prompt_tokens"] + usage["completion_tokens"]

        streamed = await gw.client.post(
            "/v1/chat/completions", json=chat(max_tokens=100, stream=True), headers=TIGHT_AUTH
        )
        await streamed.read()
        record = gw.records.records[-1]
        assert record.tokens_estimated is False
        total = usage["prompt_tokens"] + usage["completion_tokens"] + record.prompt_tokens + record.completion_tokens
        assert await tokens_used(gw, snapshot) == total
