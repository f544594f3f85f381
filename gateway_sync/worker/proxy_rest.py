"""The REST request path: ``ANY /api/{product}/{path:.*}``.

Per request: the pinned snapshot → product → caller (auth.py) → quotas (per subscription,
then the route's safety limits) → route and target (routing.py) → one streamed upstream
call through the shared ``ClientSession``, with the route's retries, fallback targets and
per-target cooldown (cooldown.py) before any response byte reaches the client. Request
bodies up to 64 KiB are buffered so they can be replayed; larger ones stream once, with no
retry. Responses stream back. Errors are RFC 9457 problems (errors.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from cryptography.fernet import MultiFernet

from gateway_sync.contract.schema import Route, Target, Upstream
from gateway_sync.contract.secrets import upstream_fernet
from gateway_sync.worker.admission import QuotaRefusal, check_request_quotas
from gateway_sync.worker.app import SETTINGS_KEY, notify_observers, request_snapshot
from gateway_sync.worker.auth import Caller, authenticate
from gateway_sync.worker.cooldown import CooldownTracker
from gateway_sync.worker.errors import problem
from gateway_sync.worker.ids import new_id
from gateway_sync.worker.limits import (
    MemoryLimiter,
    RedisLimiter,
    RequestLimiter,
    limiter_redis_client,
)
from gateway_sync.worker.record import (
    UPSTREAM_TIMEOUT,
    RequestRecord,
)
from gateway_sync.worker.rest_delivery import (
    ATTEMPTS,
    TARGET,
    deliver,
    request_headers,
    too_large,
    too_many,
    upstream_credential,
    upstream_failure,
)
from gateway_sync.worker.routing import fallback_targets, pick_available_target, select_route
from gateway_sync.worker.settings import DEVELOPMENT_SECRET_KEY, WorkerSettings
from gateway_sync.worker.wire import (
    REPLAY_LIMIT,
    REQUEST_ID,
    BodyTooLarge,
    RequestBody,
    client_timeout,
    upstream_url,
)

log = logging.getLogger(__name__)

BACKOFF_CAP_S = 5.0


@dataclass(frozen=True, eq=False)
class RestProxy:
    settings: WorkerSettings
    session: aiohttp.ClientSession
    limiter: RequestLimiter
    secrets: MultiFernet
    rng: random.Random
    cooldowns: CooldownTracker = field(default_factory=CooldownTracker)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 (one proxy per app, lives as long)
    def decrypt(self, token: str) -> str:
        return self.secrets.decrypt(token.encode()).decode()


PROXY_KEY = web.AppKey("rest_proxy", RestProxy)


def upstream_box(settings: WorkerSettings) -> MultiFernet:
    """UPSTREAM_SECRET_KEYS, else the key the portal derives from SECRET_KEY."""
    return upstream_fernet(settings.upstream_secret_keys, settings.secret_key or DEVELOPMENT_SECRET_KEY)


def register_rest_proxy(app: web.Application) -> None:
    """Route registrar for ``create_app``: the /api route and the shared upstream client."""
    app.router.add_route("*", "/api/{product}/{path:.*}", handle_rest)
    app.router.add_route("*", "/api/{product}", handle_rest)
    app.cleanup_ctx.append(_proxy_lifespan)


async def _proxy_lifespan(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=30, enable_cleanup_closed=True)
    session = aiohttp.ClientSession(
        connector=connector,
        # One session serves every consumer: it must remember no upstream's cookies, or
        # one consumer's Set-Cookie would ride along with the next consumer's request.
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        timeout=aiohttp.ClientTimeout(total=None),
    )
    redis_client = limiter_redis_client(settings.redis_url) if settings.redis_url else None
    limiter: RequestLimiter = (
        RedisLimiter(redis_client, fail_mode=settings.rate_limit_fail_mode) if redis_client else MemoryLimiter()
    )
    app[PROXY_KEY] = RestProxy(
        settings=settings,
        session=session,
        limiter=limiter,
        secrets=upstream_box(settings),
        rng=random.Random(),  # noqa: S311 (load spreading, not security)
    )
    try:
        yield
    finally:
        await session.close()
        if redis_client is not None:
            await redis_client.aclose()


async def handle_rest(request: web.Request) -> web.StreamResponse:
    request_id = request.headers.get(REQUEST_ID, "").strip()[:200] or new_id()
    record = RequestRecord(protocol="rest", method=request.method, path=request.path, request_id=request_id)
    response: web.StreamResponse | None = None
    try:
        response = await _handle(request, request_id, record)
        if not response.prepared:
            response.headers[REQUEST_ID] = request_id
            record.bytes_out = response.content_length or 0
        return response
    except ConnectionResetError:  # the client went away mid-way: no status (499)
        raise
    except Exception:
        record.status = 500
        raise
    finally:
        if response is not None:
            record.status = response.status
        notify_observers(request.app, record)


async def _handle(request: web.Request, request_id: str, record: RequestRecord) -> web.StreamResponse:
    proxy = request.app[PROXY_KEY]
    settings = proxy.settings
    snapshot = request_snapshot(request)
    if snapshot is None:
        return problem(503, "Service Unavailable", "The gateway has no configuration yet.", "not_ready")
    slug = request.match_info["product"]
    product = snapshot.products_by_slug.get(slug)
    if product is None:
        return problem(404, "Not Found", f"No product {slug!r} on this gateway.", "unknown_product")
    record.product_id, record.product_slug, record.version_id = product.id, product.slug, product.version_id

    caller = authenticate(snapshot, product, request.headers, pepper=settings.key_hash_pepper)
    if isinstance(caller, web.Response):
        return caller
    record.app_id, record.key_prefix = caller.key.app_id, caller.key.prefix

    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        return too_large(settings)

    raw_path = request.rel_url.raw_path
    prefix = f"/api/{request.match_info.get('product', '')}"
    remainder = raw_path[len(prefix) :] if raw_path.startswith(prefix) else "/" + request.match_info.get("path", "")
    remainder = remainder or "/"
    route = select_route(
        snapshot.routes_by_product.get(product.id, ()), path=remainder, host=request.host, headers=request.headers
    )

    if route is not None:
        record.route_id = route.id
    limited = await _check_limits(proxy, caller, route, record)
    if isinstance(limited, web.Response):
        return limited
    quota_headers = limited

    if route is None:
        return await _single_attempt(request, proxy, product.upstream, remainder, request_id, quota_headers, record)

    cooling = proxy.cooldowns.cooling
    chosen = pick_available_target(
        route, app_id=caller.key.app_id, headers=request.headers, rng=proxy.rng, cooling=cooling
    )
    body = RequestBody(request, settings.max_body_bytes)
    try:
        replay: bytes | None = b""
        if request.can_read_body:
            try:
                replay = await body.buffer(REPLAY_LIMIT)
            except BodyTooLarge:
                return too_large(settings)
        else:
            replay = None
        attempt = _Attempt(request, proxy, route, remainder, request_id, record, body, replay)
        return await attempt.run(chosen, quota_headers)
    finally:
        record.bytes_in = body.sent


async def _single_attempt(
    request: web.Request,
    proxy: RestProxy,
    upstream: Upstream,
    remainder: str,
    request_id: str,
    quota_headers: dict[str, str],
    record: RequestRecord,
) -> web.StreamResponse:
    """No route: the product's own upstream, once (a small body sent whole, a large one streamed)."""
    settings = proxy.settings
    headers = request_headers(request, request_id)
    credential = upstream_credential(proxy, upstream, record.product_slug)
    if isinstance(credential, web.Response):
        return credential
    headers.update(credential)
    body = RequestBody(request, settings.max_body_bytes)
    data: bytes | AsyncIterator[bytes] | None = None
    if request.can_read_body:
        try:
            data = await body.buffer(REPLAY_LIMIT)
        except BodyTooLarge:
            return too_large(settings)
        if body.overflow is not None:
            data = body.rest(body.overflow)
    record.attempts = 1
    try:
        upstream_response = await proxy.session.request(
            request.method,
            upstream_url(upstream, remainder, request.rel_url.raw_query_string),
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=client_timeout(None, upstream),
            ssl=upstream.tls_verify,
        )
    except Exception as exc:
        record.bytes_in = body.sent
        return upstream_failure(exc, body, settings, record)
    record.bytes_in = body.sent
    record.upstream_latency_s = time.perf_counter() - record.started
    return await deliver(request, upstream_response, quota_headers, request_id, record, {ATTEMPTS: "1"})


@dataclass
class _Outcome:
    response: aiohttp.ClientResponse | None
    error: BaseException | None
    failed: bool  # counts toward the target's cooldown
    retryable: bool  # same target again (retry.on_statuses / on_timeout)
    falls_back: bool  # next fallback target


def _classify(outcome: aiohttp.ClientResponse | BaseException, route: Route) -> _Outcome:
    if isinstance(outcome, aiohttp.ClientResponse):
        status = outcome.status
        failed = status == 429 or status >= 500
        retryable = status in route.retry.on_statuses
        return _Outcome(outcome, None, failed, retryable, retryable or failed)
    if isinstance(outcome, TimeoutError | aiohttp.ClientError | OSError):
        # Connection errors count as connect timeouts: the request never got an answer.
        return _Outcome(None, outcome, True, route.retry.on_timeout, True)
    raise outcome


class _Attempt:
    """One consumer request on a route: the chosen target (+ retries), then the fallbacks."""

    def __init__(
        self,
        request: web.Request,
        proxy: RestProxy,
        route: Route,
        remainder: str,
        request_id: str,
        record: RequestRecord,
        body: RequestBody,
        replay: bytes | None,
    ) -> None:
        self.request = request
        self.proxy = proxy
        self.route = route
        self.remainder = remainder
        self.request_id = request_id
        self.record = record
        self.slug = record.product_slug
        self.body = body
        self.replay = replay
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + route.timeouts.total_ms / 1000

    def _data(self) -> bytes | AsyncIterator[bytes] | None:
        if self.body.overflow is not None:
            return self.body.rest(self.body.overflow)
        return self.replay  # None: the request has no body

    async def _send(self, target: Target) -> aiohttp.ClientResponse | BaseException | web.Response:
        upstream = target.upstream
        headers = request_headers(self.request, self.request_id)
        credential = upstream_credential(self.proxy, upstream, self.slug)
        if isinstance(credential, web.Response):
            return credential
        headers.update(credential)
        remaining = max(self.deadline - self.loop.time(), 0.001)
        try:
            return await self.proxy.session.request(
                self.request.method,
                upstream_url(upstream, self.remainder, self.request.rel_url.raw_query_string),
                headers=headers,
                data=self._data(),
                allow_redirects=False,
                timeout=client_timeout(self.route, upstream, remaining),
                ssl=upstream.tls_verify,
            )
        except Exception as exc:
            return exc

    async def run(self, chosen: Target, quota_headers: dict[str, str]) -> web.StreamResponse:
        replayable = self.body.overflow is None
        stages = [chosen]
        if replayable:
            stages += fallback_targets(self.route, chosen, cooling=self.proxy.cooldowns.cooling)
        attempts = 0
        for index, target in enumerate(stages):
            retries_left = self.route.retry.count if index == 0 and replayable else 0
            backoff = 0
            while True:
                attempts += 1
                self.record.attempts, self.record.target_id = attempts, target.id
                sent = await self._send(target)
                if isinstance(sent, web.Response):
                    return sent
                outcome = _classify(sent, self.route)
                if outcome.failed:
                    self.proxy.cooldowns.record_failure(target.id, self.route.cooldown)
                if self.body.too_large:
                    _release(outcome)
                    return too_large(self.proxy.settings)
                time_left = self.deadline - self.loop.time()
                if outcome.retryable and retries_left > 0 and time_left > 0:
                    delay = min(self.route.retry.backoff_ms / 1000 * 2**backoff, BACKOFF_CAP_S, time_left)
                    _release(outcome)
                    await asyncio.sleep(delay)
                    retries_left -= 1
                    backoff += 1
                    if self.deadline - self.loop.time() > 0:
                        continue
                    self.record.upstream_error = UPSTREAM_TIMEOUT
                    return _deadline_passed(attempts, target)
                break
            if outcome.falls_back and index + 1 < len(stages) and time_left > 0:
                _release(outcome)
                continue
            extra = {ATTEMPTS: str(attempts), TARGET: target.name}
            if outcome.response is not None:
                self.record.upstream_latency_s = time.perf_counter() - self.record.started
                return await deliver(self.request, outcome.response, quota_headers, self.request_id, self.record, extra)
            error = outcome.error if outcome.error is not None else RuntimeError("no upstream outcome")
            failure = upstream_failure(error, self.body, self.proxy.settings, self.record)
            failure.headers.update(extra)
            return failure
        raise AssertionError("unreachable: stages is never empty")


def _release(outcome: _Outcome) -> None:
    if outcome.response is not None:
        outcome.response.release()


def _deadline_passed(attempts: int, target: Target) -> web.Response:
    failure = problem(504, "Gateway Timeout", "The upstream did not answer in time.", "upstream_timeout")
    failure.headers.update({ATTEMPTS: str(attempts), TARGET: target.name})
    return failure


async def _check_limits(
    proxy: RestProxy, caller: Caller, route: Route | None, record: RequestRecord
) -> dict[str, str] | web.Response:
    """The quotas at admission (admission.py), answered as a problem when one refuses."""
    checked = await check_request_quotas(proxy.limiter, caller, route, record)
    if isinstance(checked, QuotaRefusal):
        return too_many(checked.headers, degraded=checked.degraded)
    return checked
