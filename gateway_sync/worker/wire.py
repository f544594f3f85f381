"""HTTP plumbing of the proxy: which headers cross, timeouts, upstream URLs, and the
consumer's request body (size-limited, buffered for replay when small)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway_sync.contract.schema import Route, Upstream

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
CHUNK = 64 * 1024
# Propagated to the upstream and returned to the client; created when the client sent none.
REQUEST_ID = "X-Request-Id"
# Request bodies up to this size are buffered so a retry or fallback can resend them;
# larger ones are streamed to the chosen target once, with no retry and no fallback.
REPLAY_LIMIT = 64 * 1024


def connection_named(headers: CIMultiDictProxy[str]) -> set[str]:
    named: set[str] = set()
    for value in headers.getall("Connection", []):
        named.update(token.strip().lower() for token in value.split(",") if token.strip())
    return named


def forwarded_request_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | CONSUMER_ONLY | connection_named(headers)
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in drop)


def forwarded_response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | connection_named(headers)
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in drop)


def client_timeout(route: Route | None, upstream: Upstream, remaining_s: float | None = None) -> aiohttp.ClientTimeout:
    if route is not None:
        t = route.timeouts
        return aiohttp.ClientTimeout(
            total=t.total_ms / 1000 if remaining_s is None else remaining_s,
            sock_connect=t.connect_ms / 1000,
            sock_read=t.first_byte_ms / 1000,
        )
    return aiohttp.ClientTimeout(
        total=None, sock_connect=upstream.connect_timeout_ms / 1000, sock_read=upstream.read_timeout_ms / 1000
    )


def upstream_url(upstream: Upstream, remainder: str, query: str) -> URL:
    """The upstream's base URL path + the remainder, with the consumer's raw query string."""
    base = _base_url(upstream.url)
    url = base.with_path(base.raw_path.rstrip("/") + remainder, encoded=True)
    return URL(f"{url}?{query}", encoded=True) if query else url


@functools.lru_cache(maxsize=4096)
def _base_url(url: str) -> URL:
    # Parsed once per upstream, not once per request.
    return URL(url)


class BodyTooLarge(Exception):
    pass


class RequestBody:
    """The consumer's body, chunk by chunk, refused past ``limit`` bytes."""

    def __init__(self, request: web.Request, limit: int) -> None:
        self.request = request
        self.limit = limit
        self.sent = 0
        self.too_large = False
        # Set when the body is beyond the replay limit: what was read so far (maybe b"").
        self.overflow: bytes | None = None

    async def buffer(self, replay_limit: int) -> bytes:
        """The whole body if it is at most ``replay_limit`` bytes; else sets ``overflow``
        to the part already read (the rest streams once, via ``rest``)."""
        length = self.request.content_length
        if length is not None and length > replay_limit:
            self.overflow = b""
            return b""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            parts.append(chunk)
            size += len(chunk)
            if size > replay_limit:
                self.overflow = b"".join(parts)
                return self.overflow
        return b"".join(parts)

    async def rest(self, prefix: bytes) -> AsyncIterator[bytes]:
        if prefix:
            yield prefix
        async for chunk in self.chunks():
            yield chunk

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.request.content.readany()
            if not chunk:
                return
            self.sent += len(chunk)
            if self.sent > self.limit:
                self.too_large = True
                raise BodyTooLarge
            yield chunk
