"""MCP sessions: the gateway's own ``Mcp-Session-Id``, mapped to the upstream's.

A client never sees an upstream's session id. It gets a random one of the gateway's, bound
to the app (and the server) that opened it, and stored with what the gateway needs to
serve the session from any worker: the upstream session id, the negotiated protocol
version, and the ``initialize`` params (replayed when the upstream forgets its session).

- With Redis, under ``gateway:mcp:session:<id>`` with an idle TTL that every use renews
  (GETEX), so any worker can serve any request of a session.
- In embedded mode, in the process's memory (one worker serves everything).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import redis.asyncio

KEY_PREFIX = "gateway:mcp:session:"


def new_session_id() -> str:
    """256 random bits, URL-safe: visible ASCII, as the spec requires."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True, kw_only=True)
class McpSession:
    app_id: int
    product_id: int
    upstream_session_id: str
    protocol_version: str
    initialize_params: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> McpSession | None:
        try:
            data = json.loads(raw)
            return cls(
                app_id=int(data["app_id"]),
                product_id=int(data["product_id"]),
                upstream_session_id=str(data["upstream_session_id"]),
                protocol_version=str(data["protocol_version"]),
                initialize_params=dict(data.get("initialize_params") or {}),
            )
        except (ValueError, TypeError, KeyError):
            return None


class SessionStore(Protocol):
    async def get(self, session_id: str) -> McpSession | None:
        """The session, its idle timer renewed; None if unknown or expired."""

    async def put(self, session_id: str, session: McpSession) -> None:
        """Store (or replace) the session, with a fresh idle timer."""

    async def delete(self, session_id: str) -> None:
        """Forget the session (a no-op if unknown)."""

    async def aclose(self) -> None: ...


class MemorySessionStore:
    """Embedded mode: one process, so a dict with idle deadlines, swept as it grows."""

    SWEEP_EVERY = 1024

    def __init__(self, idle_s: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.clock = clock
        self.sessions: dict[str, tuple[float, McpSession]] = {}
        self._puts = 0

    async def get(self, session_id: str) -> McpSession | None:
        found = self.sessions.get(session_id)
        if found is None:
            return None
        deadline, session = found
        now = self.clock()
        if deadline <= now:
            del self.sessions[session_id]
            return None
        self.sessions[session_id] = (now + self.idle_s, session)
        return session

    async def put(self, session_id: str, session: McpSession) -> None:
        now = self.clock()
        self.sessions[session_id] = (now + self.idle_s, session)
        self._puts += 1
        if self._puts % self.SWEEP_EVERY == 0:
            self.sessions = {sid: kept for sid, kept in self.sessions.items() if kept[0] > now}

    async def delete(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)

    async def aclose(self) -> None:
        self.sessions.clear()


def session_redis_client(url: str, *, timeout_s: float = 1.0, max_connections: int = 32) -> redis.asyncio.Redis:
    """A client for the request path: short timeouts (an unreachable Redis answers 503 at
    once rather than holding the request) and a bounded, blocking pool, as the limiter's."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=max(timeout_s, 1.0),
        client_name="gateway-mcp-sessions",
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_keepalive=True,
    )
    return redis.asyncio.Redis.from_pool(pool)


class RedisSessionStore:
    """Shared by every worker: one key per session, renewed on every use."""

    def __init__(self, client: redis.asyncio.Redis, idle_s: int) -> None:
        self.client = client
        self.idle_s = idle_s

    async def get(self, session_id: str) -> McpSession | None:
        raw = await self.client.getex(KEY_PREFIX + session_id, ex=self.idle_s)
        return None if raw is None else McpSession.decode(raw)

    async def put(self, session_id: str, session: McpSession) -> None:
        await self.client.set(KEY_PREFIX + session_id, session.encode(), ex=self.idle_s)

    async def delete(self, session_id: str) -> None:
        await self.client.delete(KEY_PREFIX + session_id)

    async def aclose(self) -> None:
        await self.client.aclose()
