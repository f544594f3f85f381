"""The OpenAI-compatible LLM path: ``POST /v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``GET /v1/models`` and ``GET /v1/streams/{response_id}`` (resume).

Per request: the pinned snapshot → the API key (llm_catalog.py) → the body (llm_wire.py) →
the model: product, offering, subscription, plan → the model's route (``RouteMatch.model``)
→ guardrails on the request (guard.py) → request quotas (admission.py) and a token and
budget reservation (token_limits.py), concurrently: one Redis round trip, a refusal on
either side giving back what the other took → the upstream, with the route's retries, fallback
targets, then fallback models, and per-target cooldown → the answer whole, or streamed
event by event (llm_stream.py) → usage (reported, else estimated: llm_usage.py), cost,
settlement of the reservation, and the record for the observers.

It shares the REST proxy's upstream client, request limiter and cooldowns (``PROXY_KEY``):
register it after ``register_rest_proxy``. Errors are OpenAI error objects (errors_openai.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway_sync.contract.schema import ModelOffering, Plan, Route
from gateway_sync.worker.admission import QuotaAdmission, QuotaRefusal, admit_request, refund_request_quotas
from gateway_sync.worker.app import SETTINGS_KEY, Handler, RouteRegistrar, notify_observers, request_snapshot
from gateway_sync.worker.auth import Caller
from gateway_sync.worker.errors_openai import (
    bad_request,
    not_ready,
    openai_error,
    quota_refused,
    too_large,
    unknown_stream,
)
from gateway_sync.worker.guard import LlmGuard, policies_for
from gateway_sync.worker.ids import new_id
from gateway_sync.worker.limits import limiter_redis_client
from gateway_sync.worker.llm_attempts import AttemptLoop, fallback_stages, model_route
from gateway_sync.worker.llm_budget import StreamBudget, release_reservations, settle_reservations
from gateway_sync.worker.llm_catalog import (
    CatalogCache,
    authenticate_key,
    models_for_key,
    resolve_model,
)
from gateway_sync.worker.llm_resume import replay_stream
from gateway_sync.worker.llm_settings import LlmSettings
from gateway_sync.worker.llm_stream import StreamRelay
from gateway_sync.worker.llm_usage import (
    Tokenizer,
    cost_microusd,
    estimate_prompt_tokens,
)
from gateway_sync.worker.llm_whole import note_guardrail_actions
from gateway_sync.worker.llm_wire import (
    ENDPOINT_PATHS,
    Endpoint,
    InvalidRequest,
    LlmRequest,
    parse_request,
)
from gateway_sync.worker.proxy_rest import PROXY_KEY, RestProxy
from gateway_sync.worker.record import RequestRecord
from gateway_sync.worker.resume import RESUME_STORE_KEY, ResumeStore, parse_last_event_id, register_resume_store
from gateway_sync.worker.token_limits import (
    MemoryTokenLimiter,
    RedisTokenLimiter,
    Reservation,
    TokenBudget,
    TokenLimiter,
    budgets_for_plan,
    combine_rate_limit_headers,
    token_rate_limit_headers,
)
from gateway_sync.worker.wire import (
    REQUEST_ID,
    BodyTooLarge,
    RequestBody,
)

log = logging.getLogger(__name__)

MAX_CACHED_PLANS = 4096


@dataclass(frozen=True, eq=False)
class LlmProxy:
    rest: RestProxy
    settings: LlmSettings
    tokens: TokenLimiter
    resume: ResumeStore | None
    tokenizer: Tokenizer = field(default_factory=Tokenizer)
    catalogs: CatalogCache = field(default_factory=CatalogCache)
    # A plan's token budgets, by the plan's identity (snapshots are immutable): built once,
    # not per request.
    plan_budgets: dict[int, tuple[Plan, tuple[TokenBudget, ...]]] = field(default_factory=dict)

    def budgets_for(self, plan: Plan) -> tuple[TokenBudget, ...]:
        entry = self.plan_budgets.get(id(plan))
        if entry is not None and entry[0] is plan:
            return entry[1]
        if len(self.plan_budgets) >= MAX_CACHED_PLANS:  # old snapshots' plans: start again
            self.plan_budgets.clear()
        budgets = tuple(budgets_for_plan(plan))
        self.plan_budgets[id(plan)] = (plan, budgets)
        return budgets


LLM_KEY = web.AppKey("llm_proxy", LlmProxy)
_LLM_SETTINGS_KEY = web.AppKey("llm_settings", LlmSettings)


def llm_registrar(settings: LlmSettings) -> RouteRegistrar:
    def register(app: web.Application) -> None:
        app[_LLM_SETTINGS_KEY] = settings
        # /v1 is the only user of resumable streams, so it owns their store (absent when
        # RESUME_WINDOW_S=0): nothing else registers it.
        register_resume_store(app)
        app.router.add_post("/v1/chat/completions", _endpoint("chat"))
        app.router.add_post("/v1/completions", _endpoint("completions"))
        app.router.add_post("/v1/embeddings", _endpoint("embeddings"))
        app.router.add_get("/v1/models", handle_models)
        app.router.add_get("/v1/streams/{response_id}", handle_resume)
        app.cleanup_ctx.append(_llm_lifespan)

    return register


def register_llm_proxy(app: web.Application) -> None:
    """Route registrar for ``create_app`` (after ``register_rest_proxy``), configured from
    the environment (GATEWAY_LLM_*)."""
    llm_registrar(LlmSettings.from_env())(app)


async def _llm_lifespan(app: web.Application) -> AsyncIterator[None]:
    if PROXY_KEY not in app:
        raise RuntimeError("the /v1 proxy needs the REST proxy's upstream client: register_rest_proxy first")
    settings = app[SETTINGS_KEY]
    redis_client = limiter_redis_client(settings.redis_url) if settings.redis_url else None
    tokens: TokenLimiter = (
        RedisTokenLimiter(redis_client, fail_mode=settings.rate_limit_fail_mode)
        if redis_client is not None
        else MemoryTokenLimiter()
    )
    proxy = LlmProxy(
        rest=app[PROXY_KEY], settings=app[_LLM_SETTINGS_KEY], tokens=tokens, resume=app.get(RESUME_STORE_KEY)
    )
    app[LLM_KEY] = proxy
    await _to_thread_load(proxy.tokenizer)
    try:
        yield
    finally:
        if redis_client is not None:
            await redis_client.aclose()


async def _to_thread_load(tokenizer: Tokenizer) -> None:
    # About 0.15 s: paid at start-up, in a thread, not by the first request.
    await asyncio.to_thread(tokenizer.load)


def _endpoint(endpoint: Endpoint) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await _handle_recorded(request, endpoint)

    return handle


async def handle_models(request: web.Request) -> web.StreamResponse:
    llm = request.app[LLM_KEY]
    snapshot = request_snapshot(request)
    if snapshot is None:
        return not_ready()
    key = authenticate_key(snapshot, request.headers, pepper=llm.rest.settings.key_hash_pepper, now=time.time())
    if isinstance(key, web.Response):
        return key
    data = models_for_key(snapshot, llm.catalogs.get(snapshot), key)
    return web.json_response({"object": "list", "data": data}, headers={"Cache-Control": "no-store"})


async def handle_resume(request: web.Request) -> web.StreamResponse:
    """``GET /v1/streams/{response_id}``: the events after ``Last-Event-ID`` (all without)."""
    llm = request.app[LLM_KEY]
    snapshot = request_snapshot(request)
    if snapshot is None:
        return not_ready()
    key = authenticate_key(snapshot, request.headers, pepper=llm.rest.settings.key_hash_pepper, now=time.time())
    if isinstance(key, web.Response):
        return key
    response_id = request.match_info["response_id"]
    after = -1
    last = request.headers.get("Last-Event-ID")
    if last is not None:
        parsed = parse_last_event_id(last)
        if parsed is None or parsed[0] != response_id:
            return unknown_stream()
        after = parsed[1]
    return await replay_stream(request, llm.resume, key.app_id, response_id, after)


async def _finish(task: asyncio.Future[Any]) -> None:
    """Wait for a task whose outcome no longer matters, without cancelling it: what it
    took is given back afterwards (a cancelled reservation could leave tokens taken)."""
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: not logged as an unhandled task error


async def _handle_recorded(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    request_id = request.headers.get(REQUEST_ID, "").strip()[:200] or new_id()
    record = RequestRecord(protocol="llm", method=request.method, path=request.path, request_id=request_id)
    response: web.StreamResponse | None = None
    try:
        response = await _Completion(request, endpoint, request_id, record).serve()
        if not response.prepared:
            response.headers[REQUEST_ID] = request_id
            record.bytes_out = response.content_length or 0
        return response
    except ConnectionResetError:
        raise
    except Exception:
        record.status = 500
        raise
    finally:
        if response is not None:
            record.status = response.status
        notify_observers(request.app, record)


class _Completion:
    """One chat, completion or embeddings request, from admission to settlement."""

    def __init__(self, request: web.Request, endpoint: Endpoint, request_id: str, record: RequestRecord) -> None:
        self.request = request
        self.endpoint = endpoint
        self.request_id = request_id
        self.record = record
        self.llm = request.app[LLM_KEY]
        self.rest = self.llm.rest
        self.reservation: Reservation | None = None
        self.budgets: tuple[TokenBudget, ...] = ()
        self.prompt_estimate = 0
        self.stream_budget: StreamBudget | None = None
        self.parsed: LlmRequest | None = None
        self.attempts: AttemptLoop | None = None

    async def serve(self) -> web.StreamResponse:
        try:
            return await self._serve()
        finally:
            await self._account()

    async def _serve(self) -> web.StreamResponse:
        request, llm = self.request, self.llm
        snapshot = request_snapshot(request)
        if snapshot is None:
            return not_ready()
        key = authenticate_key(snapshot, request.headers, pepper=self.rest.settings.key_hash_pepper, now=time.time())
        if isinstance(key, web.Response):
            return key
        self.record.app_id, self.record.key_prefix = key.app_id, key.prefix
        last_event_id = request.headers.get("Last-Event-ID")
        if last_event_id is not None:
            parsed_id = parse_last_event_id(last_event_id)
            if parsed_id is None:
                return unknown_stream()
            return await replay_stream(request, llm.resume, key.app_id, parsed_id[0], parsed_id[1])

        raw = await self._read_body()
        if isinstance(raw, web.Response):
            return raw
        try:
            parsed = parse_request(self.endpoint, raw)
        except InvalidRequest as exc:
            return bad_request(exc.message, param=exc.param, code=exc.code)
        self.parsed = parsed
        catalog = llm.catalogs.get(snapshot)
        resolved = resolve_model(snapshot, catalog, key, parsed.model)
        if isinstance(resolved, web.Response):
            return resolved
        product, offering, caller = resolved.choice.product, resolved.choice.offering, resolved.caller
        self.record.product_id, self.record.product_slug = product.id, product.slug
        self.record.version_id = product.version_id
        path = ENDPOINT_PATHS[self.endpoint]
        routes = snapshot.routes_by_product.get(product.id, ())
        route = model_route(routes, public_name=offering.public_name, path=path, request=request)
        if route is not None:
            self.record.route_id = route.id

        policies = policies_for(snapshot, product, route, caller.plan)
        guard = LlmGuard(policies) if policies else None
        outcome = None
        if guard is not None and guard.inspects_requests:
            outcome = guard.check_request(parsed.body, self.endpoint)
        if outcome is not None and outcome.blocked:
            # Blocked by a guardrail: no tokens reserved, but the request quota is spent
            # (a refusal of the quota still answers first).
            quota = await admit_request(self.rest.limiter, caller, route, self.record)
            if isinstance(quota, QuotaRefusal):
                return quota_refused(quota)
            note_guardrail_actions(self.record, outcome.actions)
            return openai_error(400, outcome.message, code="content_filter", param="messages")
        if outcome is not None:
            parsed.body = outcome.body
        admitted = await self._admit(caller, route, offering, parsed)
        if isinstance(admitted, web.Response):
            return admitted
        quota, reserved = admitted
        if outcome is not None:
            note_guardrail_actions(self.record, outcome.actions)
        headers = combine_rate_limit_headers(quota.headers, reserved)
        stages = fallback_stages(
            self.rest,
            request,
            self.endpoint,
            snapshot_routes=routes,
            product=product,
            offering=offering,
            route=route,
            caller=caller,
        )
        relay = self._relay(parsed, guard, headers, offering, route) if parsed.stream else None
        self.attempts = AttemptLoop(
            request,
            rest=self.rest,
            endpoint=self.endpoint,
            request_id=self.request_id,
            record=self.record,
            parsed=parsed,
            guard=guard,
            relay=relay,
        )
        return await self.attempts.run(stages, headers)

    async def _admit(
        self, caller: Caller, route: Route | None, offering: ModelOffering, parsed: LlmRequest
    ) -> tuple[QuotaAdmission, dict[str, str]] | web.Response:
        """The request quotas and the token reservation, checked concurrently (their Redis
        scripts leave in the same loop turn: one round trip instead of two). As if one
        after the other: a refusal of the quotas answers first, and whichever side refuses,
        the other gives back what it took (a refused request spends nothing)."""
        reserving = asyncio.ensure_future(self._reserve(caller, offering, parsed))
        try:
            quota = await admit_request(self.rest.limiter, caller, route, self.record)
        except BaseException:
            await _finish(reserving)
            await self._release()
            self.reservation = None
            raise
        try:
            reserved = await reserving
        except BaseException:
            if isinstance(quota, QuotaAdmission):
                await refund_request_quotas(self.rest.limiter, quota)
            raise
        if isinstance(quota, QuotaRefusal):
            if self.reservation is not None:
                await self._release()
                self.reservation = None
            return quota_refused(quota)
        if isinstance(reserved, web.Response):
            # Refused for its tokens: the request was not served, so it spends no request quota.
            await refund_request_quotas(self.rest.limiter, quota)
            return reserved
        return quota, reserved

    def _relay(
        self,
        parsed: LlmRequest,
        guard: LlmGuard | None,
        headers: dict[str, str],
        offering: ModelOffering,
        route: Route | None,
    ) -> StreamRelay:
        stream_guard = guard.stream_guard(self.endpoint) if guard is not None and guard.inspects_responses else None
        if route is not None and route.cut_stream_on_budget and self.reservation is not None:
            self.stream_budget = StreamBudget(
                self.llm.tokens,
                self.llm.tokenizer,
                reservation=self.reservation,
                budgets=self.budgets,
                offering=offering,
                prompt_tokens=self.prompt_estimate,
                increment=self.llm.settings.stream_topup_tokens,
            )
        return StreamRelay(
            self.request,
            record=self.record,
            headers=headers,
            response_id=new_id(),
            keepalive_s=self.llm.settings.keepalive_s,
            include_usage=parsed.include_usage,
            public_model=offering.public_name,
            resume=self.llm.resume,
            app_id=self.record.app_id or 0,
            guard=stream_guard,
            budget=self.stream_budget,
        )

    async def _read_body(self) -> bytes | web.Response:
        limit = self.rest.settings.max_body_bytes
        length = self.request.content_length
        if length is not None and length > limit:
            return too_large(limit)
        body = RequestBody(self.request, limit)
        try:
            raw = await body.buffer(limit)
        except BodyTooLarge:
            return too_large(limit)
        self.record.bytes_in = len(raw)
        return raw

    async def _reserve(
        self, caller: Caller, offering: ModelOffering, parsed: LlmRequest
    ) -> dict[str, str] | web.Response:
        budgets = self.llm.budgets_for(caller.plan)
        if not budgets:
            return {}
        prompt = estimate_prompt_tokens(self.llm.tokenizer, self.endpoint, parsed.body)
        completion = 0 if self.endpoint == "embeddings" else (parsed.max_tokens or self.llm.settings.reserve_max_tokens)
        reservation = await self.llm.tokens.reserve(
            scope=f"sub:{caller.subscription.id}",
            budgets=budgets,
            tokens=prompt + completion,
            microusd=cost_microusd(offering, prompt, completion),
        )
        headers = token_rate_limit_headers(reservation)
        if reservation.allowed:
            self.reservation, self.budgets, self.prompt_estimate = reservation, budgets, prompt
            return headers
        refused_by = reservation.refused_by
        if refused_by is not None and (refused_by.unit == "microusd" or reservation.never):
            what = "budget" if refused_by.unit == "microusd" else "token quota"
            return openai_error(
                429,
                f"This request would exceed your plan's {refused_by.name} {what}.",
                code="insufficient_quota",
                error_type="insufficient_quota",
                headers=headers,
            )
        message = (
            "The token limiter is unavailable; try again shortly."
            if reservation.degraded
            else "Token rate limit reached; retry after the Retry-After delay."
        )
        return openai_error(429, message, code="rate_limit_exceeded", error_type="tokens", headers=headers)

    # -- accounting ---------------------------------------------------------------------

    async def _account(self) -> None:
        """Tokens (reported, else estimated), cost, and the reservation settled, or
        released when the upstream produced nothing."""
        parsed, attempts = self.parsed, self.attempts
        offering = attempts.served if attempts is not None else None
        if parsed is None or attempts is None or offering is None:
            await self._release()
            return
        relay = attempts.relay
        tally = relay.tally if relay is not None else attempts.whole.tally
        texts = relay.text_parts if relay is not None else attempts.whole.texts
        produced = (relay.content_sent or bool(texts)) if relay is not None else attempts.whole.produced
        reported = tally.prompt_tokens is not None or tally.completion_tokens is not None
        if not (produced or reported):
            await self._release()
            return
        estimated = False
        prompt = tally.prompt_tokens
        if prompt is None:
            prompt = estimate_prompt_tokens(self.llm.tokenizer, self.endpoint, parsed.body)
            estimated = True
        completion = tally.completion_tokens
        if completion is None:
            if self.endpoint == "embeddings":
                completion = 0
            else:
                completion = self.llm.tokenizer.count("".join(texts))
                estimated = True
        cost = cost_microusd(offering, prompt, completion)
        record = self.record
        record.prompt_tokens, record.completion_tokens = prompt, completion
        record.tokens_estimated, record.cost_microusd = estimated, cost
        if self.reservation is not None:
            await settle_reservations(self.llm.tokens, self._reservations(), tokens=prompt + completion, microusd=cost)

    def _reservations(self) -> list[Reservation]:
        """The admission's reservation, and a cutting stream's top-ups."""
        if self.stream_budget is not None:
            return self.stream_budget.reservations
        return [self.reservation] if self.reservation is not None else []

    async def _release(self) -> None:
        await release_reservations(self.llm.tokens, self._reservations())
