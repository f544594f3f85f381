"""The REST request path: ``ANY /api/{product}/{path:.*}``.

Per request: the pinned snapshot → product → caller (auth.py) → quotas (per subscription,
then the route's safety limits) → route and target (routing.py) → one streamed upstream
call through the shared ``ClientSession``. Bodies are streamed both ways, never buffered.
Errors are RFC 9457 problems (errors.py). No retries, fallback targets or cooldown yet.
"""

from __future__ import annotations

import base64
import functools
import logging
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway_sync.contract.schema import Route, Upstream
from gateway_sync.worker.app import SETTINGS_KEY, request_snapshot
from gateway_sync.worker.auth import Caller, authenticate
from gateway_sync.worker.errors import problem
from gateway_sync.worker.limits import (
    MemoryLimiter,
    RedisLimiter,
    RequestLimiter,
    limiter_redis_client,
    limits_for_plan,
    limits_for_route,
    rate_limit_headers,
)
from gateway_sync.worker.routing import pick_target, select_route
from gateway_sync.worker.settings import DEVELOPMENT_SECRET_KEY, WorkerSettings

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Consumer headers never forwarded: their credential, and what the client sets itself.
CONSUMER_ONLY = frozenset({"authorization", "x-api-key", "host", "content-length"})
REQUEST_ID = "X-Request-Id"
CHUNK = 64 * 1024


@dataclass(frozen=True, eq=False)
class RestProxy:
    settings: WorkerSettings
    session: aiohttp.ClientSession
    limiter: RequestLimiter
    secrets: MultiFernet
    rng: random.Random

    @functools.lru_cache(maxsize=1024)  # noqa: B019 (one proxy per app, lives as long)
    def decrypt(self, token: str) -> str:
        return self.secrets.decrypt(token.encode()).decode()


PROXY_KEY = web.AppKey("rest_proxy", RestProxy)


def upstream_box(settings: WorkerSettings) -> MultiFernet:
    """UPSTREAM_SECRET_KEYS, else the key marketplace/crypto.py derives from SECRET_KEY."""
    if settings.upstream_secret_keys:
        return MultiFernet([Fernet(key.encode()) for key in settings.upstream_secret_keys])
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"upstream-secrets")
    secret_key = settings.secret_key or DEVELOPMENT_SECRET_KEY
    return MultiFernet([Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))])


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


def _connection_named(headers: CIMultiDictProxy[str]) -> set[str]:
    named: set[str] = set()
    for value in headers.getall("Connection", []):
        named.update(token.strip().lower() for token in value.split(",") if token.strip())
    return named


def forwarded_request_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | CONSUMER_ONLY | _connection_named(headers)
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in drop)


def forwarded_response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | _connection_named(headers)
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in drop)


def _timeout(route: Route | None, upstream: Upstream) -> aiohttp.ClientTimeout:
    if route is not None:
        t = route.timeouts
        return aiohttp.ClientTimeout(
            total=t.total_ms / 1000, sock_connect=t.connect_ms / 1000, sock_read=t.first_byte_ms / 1000
        )
    return aiohttp.ClientTimeout(
        total=None, sock_connect=upstream.connect_timeout_ms / 1000, sock_read=upstream.read_timeout_ms / 1000
    )


def _upstream_url(upstream: Upstream, remainder: str, query: str) -> URL:
    """The upstream's base URL path + the remainder, with the consumer's raw query string."""
    base = URL(upstream.url)
    url = base.with_path(base.raw_path.rstrip("/") + remainder, encoded=True)
    return URL(f"{url}?{query}", encoded=True) if query else url


class _BodyTooLarge(Exception):
    pass


class _Body:
    """The consumer's body, chunk by chunk, refused past ``limit`` bytes."""

    def __init__(self, request: web.Request, limit: int) -> None:
        self.request = request
        self.limit = limit
        self.sent = 0
        self.too_large = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.request.content.readany()
            if not chunk:
                return
            self.sent += len(chunk)
            if self.sent > self.limit:
                self.too_large = True
                raise _BodyTooLarge
            yield chunk


async def handle_rest(request: web.Request) -> web.StreamResponse:
    request_id = request.headers.get(REQUEST_ID, "").strip()[:200] or uuid.uuid4().hex
    response = await _handle(request, request_id)
    if not response.prepared:
        response.headers[REQUEST_ID] = request_id
    return response


async def _handle(request: web.Request, request_id: str) -> web.StreamResponse:
    proxy = request.app[PROXY_KEY]
    settings = proxy.settings
    snapshot = request_snapshot(request)
    if snapshot is None:
        return problem(503, "Service Unavailable", "The gateway has no configuration yet.", "not_ready")
    slug = request.match_info["product"]
    product = snapshot.products_by_slug.get(slug)
    if product is None:
        return problem(404, "Not Found", f"No product {slug!r} on this gateway.", "unknown_product")

    caller = authenticate(snapshot, product, request.headers, pepper=settings.key_hash_pepper)
    if isinstance(caller, web.Response):
        return caller

    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        return _too_large(settings)

    raw_path = request.rel_url.raw_path
    prefix = f"/api/{request.match_info.get('product', '')}"
    remainder = raw_path[len(prefix) :] if raw_path.startswith(prefix) else "/" + request.match_info.get("path", "")
    remainder = remainder or "/"
    route = select_route(
        snapshot.routes_by_product.get(product.id, ()), path=remainder, host=request.host, headers=request.headers
    )

    limited = await _check_limits(proxy, caller, route)
    if isinstance(limited, web.Response):
        return limited
    quota_headers = limited

    if route is not None:
        target = pick_target(route, app_id=caller.key.app_id, headers=request.headers, rng=proxy.rng)
        upstream = target.upstream
    else:
        upstream = product.upstream

    headers = forwarded_request_headers(request.headers)
    headers[REQUEST_ID] = request_id
    if length is not None:
        headers["Content-Length"] = str(length)
    if upstream.auth_header and upstream.secret_encrypted:
        try:
            headers[upstream.auth_header] = proxy.decrypt(upstream.secret_encrypted)
        except (InvalidToken, ValueError):
            log.error("product %s: the upstream credential cannot be decrypted (UPSTREAM_SECRET_KEYS?)", slug)
            return problem(502, "Bad Gateway", "The upstream credential is unavailable.", "upstream_credential")

    url = _upstream_url(upstream, remainder, request.rel_url.raw_query_string)
    body = _Body(request, settings.max_body_bytes)
    data = body.chunks() if request.can_read_body else None
    try:
        upstream_response = await proxy.session.request(
            request.method,
            url,
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=_timeout(route, upstream),
            ssl=upstream.tls_verify,
        )
    except Exception as exc:
        return _upstream_failure(exc, body, settings, slug)

    async with upstream_response:
        response = web.StreamResponse(status=upstream_response.status, reason=upstream_response.reason)
        response.headers.extend(forwarded_response_headers(upstream_response.headers))
        response.headers.update(quota_headers)
        response.headers[REQUEST_ID] = request_id
        await response.prepare(request)
        try:
            async for chunk in upstream_response.content.iter_chunked(CHUNK):
                await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Headers are gone: nothing left but to cut the connection short.
            log.warning("product %s: upstream response broke off: %r", slug, exc)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
    return response


async def _check_limits(proxy: RestProxy, caller: Caller, route: Route | None) -> dict[str, str] | web.Response:
    decision = await proxy.limiter.check(scope=f"sub:{caller.subscription.id}", limits=limits_for_plan(caller.plan))
    headers = rate_limit_headers(decision) if decision.policies else {}
    if not decision.allowed:
        return _too_many(headers, degraded=decision.degraded)
    if route is not None:
        route_limits = limits_for_route(route.limits)
        if route_limits:
            route_decision = await proxy.limiter.check(scope=f"route:{route.id}", limits=route_limits)
            if not route_decision.allowed:
                return _too_many({**headers, **rate_limit_headers(route_decision)}, degraded=route_decision.degraded)
    return headers


def _too_many(headers: dict[str, str], *, degraded: bool) -> web.Response:
    if degraded:
        detail = "The rate limiter is unavailable; try again shortly."
    else:
        detail = "The request quota is spent; retry after the Retry-After delay."
    return problem(429, "Too Many Requests", detail, "rate_limited", headers=headers)


def _too_large(settings: WorkerSettings) -> web.Response:
    return problem(
        413, "Content Too Large", f"Request bodies are limited to {settings.max_body_bytes} bytes.", "body_too_large"
    )


def _upstream_failure(exc: BaseException, body: _Body, settings: WorkerSettings, slug: str) -> web.Response:
    if body.too_large:
        return _too_large(settings)
    if isinstance(exc, TimeoutError):
        return problem(504, "Gateway Timeout", "The upstream did not answer in time.", "upstream_timeout")
    if isinstance(exc, aiohttp.ClientError | OSError):
        log.warning("product %s: upstream unreachable: %r", slug, exc)
        return problem(502, "Bad Gateway", "The upstream could not be reached.", "upstream_unreachable")
    raise exc
