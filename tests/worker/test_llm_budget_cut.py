"""/v1 streams whose token budget runs out mid-way, against the real mock LLM on loopback: a
route with ``cut_stream_on_budget`` off lets the answer finish past the budget; on, the
stream is topped up while the budget allows and cut with an ``insufficient_quota`` error
event once it does not, the upstream closed and the reservations settled to what was
delivered."""

from __future__ import annotations

import json
from collections.abc import Iterator

import msgspec
import pytest

from gateway_sync.contract import schema as s
from gateway_sync.worker.llm_budget import BUDGET_CUT, settle_reservations
from gateway_sync.worker.llm_settings import LlmSettings
from gateway_sync.worker.proxy_llm import LLM_KEY
from gateway_sync.worker.token_limits import MemoryTokenLimiter, TokenBudget, budgets_for_plan
from tests.worker.llm_world import KEY, TIGHT, Gateway, Mocks, gateway, mocks, settings_for, world
from tests.worker.test_llm_resilience import joined_deltas, sse_events, until

pytestmark = pytest.mark.anyio
TIGHT_AUTH = {"Authorization": f"Bearer {TIGHT}"}
TIGHT_SCOPE = "sub:14"
BUDGET = 200  # the Tight plan's tokens per minute
REPLY_TOKENS = 300  # the long answer: past the budget
# About 8 prompt tokens + 40 reserved for the completion, then top-ups of 32: the
# reservations reach 176 and the next top-up (208) is refused.
LLM_SETTINGS = LlmSettings(keepalive_s=15, reserve_max_tokens=40, stream_topup_tokens=32)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Mocks]:
    with mocks() as found:
        yield found


def snapshot(m: Mocks, *, cut: bool) -> s.Snapshot:
    """The /v1 world with a route for ``chat`` that cuts streams on budget, or not."""
    base = world(m, tight_tokens_per_minute=BUDGET)
    route = s.Route(
        id=20,
        product_id=1,
        match=s.RouteMatch(model="chat"),
        targets=(s.Target(id=20, name="main", upstream=s.Upstream(url=f"{m.main.url}/v1")),),
        cut_stream_on_budget=cut,
    )
    return msgspec.structs.replace(base, routes=(*base.routes, route))


def chat(**extra: object) -> dict[str, object]:
    return {"model": "chat", "messages": [{"role": "user", "content": "hello"}], **extra}


async def tokens_used(gw: Gateway, snap: s.Snapshot) -> int:
    """The Tight subscription's tokens counted this minute (a zero reservation reads them)."""
    plan = next(p for p in snap.plans if p.name == "Tight")
    probe = await gw.app[LLM_KEY].tokens.reserve(
        scope=TIGHT_SCOPE, budgets=budgets_for_plan(plan), tokens=0, microusd=0
    )
    return probe.usage[0].used


async def full_answer(gw: Gateway) -> str:
    """The long answer whole, for a caller with no token quota."""
    response = await gw.client.post(
        "/v1/chat/completions",
        json=chat(),
        headers={"Authorization": f"Bearer {KEY}", "x-mock-reply-tokens": str(REPLY_TOKENS)},
    )
    assert response.status == 200
    text: str = (await response.json())["choices"][0]["message"]["content"]
    return text


async def test_with_the_setting_off_a_long_answer_finishes_past_the_budget(tmp_path, upstreams):
    snap = snapshot(upstreams, cut=False)
    async with gateway(settings_for(tmp_path, resume_window_s=0), snap, LLM_SETTINGS) as gw:
        response = await gw.client.post(
            "/v1/chat/completions",
            json=chat(stream=True),
            headers={**TIGHT_AUTH, "x-mock-reply-tokens": str(REPLY_TOKENS)},
        )
        events = sse_events(await response.text())
        assert events[-1][1] == "[DONE]"
        assert joined_deltas(events) == await full_answer(gw)
        record = next(r for r in gw.records.records if r.app_id == 9)
        assert record.completion_tokens == REPLY_TOKENS
        assert BUDGET_CUT not in record.guardrail_actions
        # The overshoot: the answer used more than its reservation, and all of it is counted.
        assert await tokens_used(gw, snap) == (record.prompt_tokens or 0) + REPLY_TOKENS > BUDGET


async def test_with_the_setting_on_the_stream_is_cut_once_the_budget_is_spent(tmp_path, upstreams):
    snap = snapshot(upstreams, cut=True)
    async with gateway(settings_for(tmp_path, resume_window_s=0), snap, LLM_SETTINGS) as gw:
        disconnects = len(upstreams.main.disconnects)
        response = await gw.client.post(
            "/v1/chat/completions",
            json=chat(stream=True),
            headers={**TIGHT_AUTH, "x-mock-reply-tokens": str(REPLY_TOKENS), "x-mock-chunk-delay-ms": "1"},
        )
        assert response.status == 200
        events = sse_events(await response.text())
        error = json.loads(events[-1][1])["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exhausted")
        assert "[DONE]" not in [data for _, data in events]
        delivered = joined_deltas(events[:-1])
        answer = await full_answer(gw)
        assert delivered
        assert answer.startswith(delivered)
        assert len(delivered) < len(answer)

        await until(lambda: len(upstreams.main.disconnects) > disconnects, "the upstream to be closed")
        record = next(r for r in gw.records.records if r.app_id == 9)
        assert BUDGET_CUT in record.guardrail_actions
        assert record.tokens_estimated
        tokenizer = gw.app[LLM_KEY].tokenizer
        assert record.completion_tokens == tokenizer.count(delivered)
        used = await tokens_used(gw, snap)
        assert used == (record.prompt_tokens or 0) + record.completion_tokens
        assert used <= BUDGET


async def test_top_ups_that_pass_let_the_stream_finish_and_settle_to_its_usage(tmp_path, upstreams):
    snap = snapshot(upstreams, cut=True)
    snap = msgspec.structs.replace(
        snap,
        plans=tuple(
            msgspec.structs.replace(p, tokens_per_minute=10_000) if p.name == "Tight" else p for p in snap.plans
        ),
    )
    async with gateway(settings_for(tmp_path, resume_window_s=0), snap, LLM_SETTINGS) as gw:
        response = await gw.client.post(
            "/v1/chat/completions",
            json=chat(stream=True),
            headers={**TIGHT_AUTH, "x-mock-reply-tokens": str(REPLY_TOKENS)},
        )
        events = sse_events(await response.text())
        assert events[-1][1] == "[DONE]"
        assert joined_deltas(events) == await full_answer(gw)
        record = next(r for r in gw.records.records if r.app_id == 9)
        assert BUDGET_CUT not in record.guardrail_actions
        assert record.completion_tokens == REPLY_TOKENS
        # The first reservation and every top-up, settled together to the reported usage.
        assert await tokens_used(gw, snap) == (record.prompt_tokens or 0) + REPLY_TOKENS


async def test_top_ups_settled_together_charge_each_reservation_at_most_its_amount():
    limiter = MemoryTokenLimiter()
    budgets = [TokenBudget("tokens", 60, 1_000, "minute")]
    first = await limiter.reserve(scope="s", budgets=budgets, tokens=100, microusd=0)
    top_ups = [await limiter.reserve(scope="s", budgets=budgets, tokens=50, microusd=0) for _ in range(2)]
    await settle_reservations(limiter, [first, *top_ups], tokens=120, microusd=0)
    probe = await limiter.reserve(scope="s", budgets=budgets, tokens=0, microusd=0)
    assert probe.usage[0].used == 120
    assert all(r.closed for r in (first, *top_ups))


def test_the_top_up_is_a_setting():
    assert LlmSettings.from_env({"GATEWAY_LLM_STREAM_TOPUP_TOKENS": "64"}).stream_topup_tokens == 64
    assert LlmSettings.from_env({}).stream_topup_tokens == 256
    with pytest.raises(Exception, match="positive integer"):
        LlmSettings.from_env({"GATEWAY_LLM_STREAM_TOPUP_TOKENS": "0"})
