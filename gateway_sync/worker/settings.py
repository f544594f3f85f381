"""The worker's settings, read once from the environment.

The worker imports no Django, so it cannot use ``config.settings``; it reads the same
variables with the same meanings (docs/configuration.md, docs/worker.md). Any string
variable may instead be given as ``NAME_FILE``, the path of a file holding it (Docker and
Kubernetes secrets), as in ``config/env.py``. A bad value fails at start-up with a message
naming the variable, never later on the request path.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# config/settings.py's development SECRET_KEY: outside production the portal derives the key
# pepper from it, so the worker must too, or no demo key would authenticate.
# (tests/worker/test_settings.py checks that the two stay equal.)
DEVELOPMENT_SECRET_KEY = "embedded-development-key-never-use-in-production-0123456789abcdef"  # noqa: S105

EMBEDDED_POLL_INTERVAL_S = 0.2
REDIS_POLL_INTERVAL_S = 2.0
DEFAULT_HEARTBEAT_INTERVAL_S = 2.0
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_SHUTDOWN_TIMEOUT_S = 30.0
DEFAULT_USAGE_FLUSH_INTERVAL_S = 0.25
DEFAULT_USAGE_STREAM_MAXLEN = 1_000_000
DEFAULT_USAGE_STREAM_KEY = "gateway:usage"
DEFAULT_RESUME_WINDOW_S = 300.0
DEFAULT_RESUME_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_MCP_SESSION_IDLE_S = 3600
# A worker id becomes a file name and part of a Redis key.
_WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class WorkerSettingsError(ValueError):
    """An environment variable with a value the worker cannot use."""


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Empty: embedded mode (snapshots from SNAPSHOT_DIR, heartbeats to var/workers/).
    redis_url: str = ""
    snapshot_dir: Path
    worker_id: str
    poll_interval_s: float
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S
    # Stored for the authentication and upstream issues; never shown in a repr or a log.
    key_hash_pepper: str = field(default="", repr=False)
    upstream_secret_keys: tuple[str, ...] = field(default=(), repr=False)
    # The portal's SECRET_KEY ("" in development: DEVELOPMENT_SECRET_KEY); without
    # UPSTREAM_SECRET_KEYS the upstream-secret key is derived from it (marketplace/crypto.py).
    secret_key: str = field(default="", repr=False)
    # RATE_LIMIT_FAIL_MODE: what a request meets while Redis (the limiter) is unreachable.
    rate_limit_fail_mode: Literal["open", "closed"] = "open"
    # GATEWAY_MAX_BODY_BYTES: larger request bodies are refused with 413.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # GATEWAY_WORKERS: processes serving the port together (SO_REUSEPORT); 0 = one per core.
    workers: int = 1
    # GATEWAY_SHUTDOWN_TIMEOUT_S: on SIGTERM, how long requests in flight may take to finish.
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    # USAGE_SPOOL_DIR: embedded mode's usage files, which the portal ingests (consumers/usage.py).
    usage_spool_dir: Path = Path("var/usage")
    # USAGE_BACKLOG_DIR: with Redis, events that could not be sent yet wait here (replayed later).
    usage_backlog_dir: Path = Path("var/usage-backlog")
    usage_stream_key: str = DEFAULT_USAGE_STREAM_KEY
    # USAGE_STREAM_MAXLEN: the stream is capped (XADD MAXLEN ~) so a stopped portal cannot fill Redis.
    usage_stream_maxlen: int = DEFAULT_USAGE_STREAM_MAXLEN
    # USAGE_FLUSH_INTERVAL_S: how long events wait in memory before a batch is written.
    usage_flush_interval_s: float = DEFAULT_USAGE_FLUSH_INTERVAL_S
    # RESUME_WINDOW_S: how long a streamed completion stays resumable after its last event
    # (gateway_sync/worker/resume.py); 0 turns resuming off.
    resume_window_s: float = DEFAULT_RESUME_WINDOW_S
    # RESUME_MAX_BYTES: a response larger than this stops being buffered (not resumable).
    resume_max_bytes: int = DEFAULT_RESUME_MAX_BYTES
    # GATEWAY_URL: the gateway's public URL (as the portal's); "" = from each request's Host.
    gateway_url: str = ""
    # MCP_ALLOWED_ORIGINS: browser Origins admitted on /mcp (comma-separated); none by default.
    mcp_allowed_origins: tuple[str, ...] = ()
    # MCP_AUTHORIZATION_SERVERS: listed in the RFC 9728 documents (comma-separated); none by default.
    mcp_authorization_servers: tuple[str, ...] = ()
    # MCP_SESSION_IDLE_S: an MCP session unused this long is forgotten (gateway_sync/worker/mcp_sessions.py).
    mcp_session_idle_s: int = DEFAULT_MCP_SESSION_IDLE_S

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def workers_dir(self) -> Path:
        """Where embedded-mode heartbeats go: ``var/workers`` beside ``var/snapshots``."""
        return self.snapshot_dir.parent / "workers"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """The settings in ``environ`` (default: ``os.environ``); WorkerSettingsError if any
        value is unusable."""
        env = Environment(os.environ if environ is None else environ)
        redis_url = env.string("REDIS_URL")
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise WorkerSettingsError(f"REDIS_URL={redis_url!r} is not a redis://, rediss:// or unix:// URL")
        var_dir = Path(env.string("PLATFORM_VAR_DIR") or "var")
        snapshot_dir = Path(env.string("SNAPSHOT_DIR") or var_dir / "snapshots").absolute()
        return cls(
            host=env.string("GATEWAY_HOST", "127.0.0.1"),
            port=env.port("GATEWAY_PORT", 8080),
            redis_url=redis_url,
            snapshot_dir=snapshot_dir,
            worker_id=env.worker_id(),
            poll_interval_s=env.interval(
                "SNAPSHOT_POLL_INTERVAL_S", REDIS_POLL_INTERVAL_S if redis_url else EMBEDDED_POLL_INTERVAL_S
            ),
            heartbeat_interval_s=env.interval("HEARTBEAT_INTERVAL_S", DEFAULT_HEARTBEAT_INTERVAL_S),
            key_hash_pepper=env.key_hash_pepper(),
            upstream_secret_keys=tuple(
                item.strip() for item in env.string("UPSTREAM_SECRET_KEYS").split(",") if item.strip()
            ),
            secret_key=env.string("SECRET_KEY"),
            rate_limit_fail_mode=env.fail_mode(),
            max_body_bytes=env.byte_count("GATEWAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            workers=env.worker_count(),
            shutdown_timeout_s=env.interval("GATEWAY_SHUTDOWN_TIMEOUT_S", DEFAULT_SHUTDOWN_TIMEOUT_S),
            usage_spool_dir=Path(env.string("USAGE_SPOOL_DIR") or var_dir / "usage").absolute(),
            usage_backlog_dir=Path(env.string("USAGE_BACKLOG_DIR") or var_dir / "usage-backlog").absolute(),
            usage_stream_key=env.string("USAGE_STREAM_KEY", DEFAULT_USAGE_STREAM_KEY) or DEFAULT_USAGE_STREAM_KEY,
            usage_stream_maxlen=env.positive_int("USAGE_STREAM_MAXLEN", DEFAULT_USAGE_STREAM_MAXLEN),
            usage_flush_interval_s=env.interval("USAGE_FLUSH_INTERVAL_S", DEFAULT_USAGE_FLUSH_INTERVAL_S),
            resume_window_s=env.window("RESUME_WINDOW_S", DEFAULT_RESUME_WINDOW_S),
            resume_max_bytes=env.byte_count("RESUME_MAX_BYTES", DEFAULT_RESUME_MAX_BYTES),
            gateway_url=env.string("GATEWAY_URL").rstrip("/"),
            mcp_allowed_origins=env.items("MCP_ALLOWED_ORIGINS"),
            mcp_authorization_servers=env.items("MCP_AUTHORIZATION_SERVERS"),
            mcp_session_idle_s=env.positive_int("MCP_SESSION_IDLE_S", DEFAULT_MCP_SESSION_IDLE_S),
        )


class Environment:
    """Typed readers of environment variables (with ``NAME_FILE``), each failing with a
    message that names the variable; shared by every worker settings class."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def string(self, name: str, default: str = "") -> str:
        """NAME, else the contents of the file NAME_FILE names, else ``default``."""
        value = self.environ.get(name)
        if value is not None:
            return value.strip()
        file_path = self.environ.get(f"{name}_FILE")
        if file_path:
            try:
                return Path(file_path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise WorkerSettingsError(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
        return default

    def items(self, name: str) -> tuple[str, ...]:
        """A comma-separated list, blanks dropped, trailing slashes trimmed (URLs and Origins)."""
        return tuple(item.strip().rstrip("/") for item in self.string(name).split(",") if item.strip())

    def port(self, name: str, default: int) -> int:
        raw = self.string(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise WorkerSettingsError(f"{name}={raw!r} is not a TCP port (an integer in 1..65535)") from None
        if not 1 <= value <= 65535:
            raise WorkerSettingsError(f"{name}={raw!r} is not a TCP port (an integer in 1..65535)")
        return value

    def interval(self, name: str, default: float) -> float:
        # Below 10 ms a loop would spin; above an hour it is surely a unit mistake (ms for s).
        return self._seconds(name, default, 0.01, 3600, "between 0.01 and 3600")

    def window(self, name: str, default: float) -> float:
        """A number of seconds where 0 means "off"; at most a day."""
        return self._seconds(name, default, 0, 86400, "between 0 (off) and 86400")

    def _seconds(self, name: str, default: float, low: float, high: float, allowed: str) -> float:
        raw = self.string(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise WorkerSettingsError(f"{name}={raw!r} is not a number of seconds") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise WorkerSettingsError(f"{name}={raw!r}: use a number of seconds {allowed}")
        return value

    def fail_mode(self) -> Literal["open", "closed"]:
        raw = self.string("RATE_LIMIT_FAIL_MODE", "open").lower() or "open"
        if raw == "open":
            return "open"
        if raw == "closed":
            return "closed"
        raise WorkerSettingsError(f"RATE_LIMIT_FAIL_MODE={raw!r}: use 'open' or 'closed'")

    def byte_count(self, name: str, default: int) -> int:
        raw = self.string(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise WorkerSettingsError(f"{name}={raw!r} is not a number of bytes") from None
        if value < 1:
            raise WorkerSettingsError(f"{name}={raw!r}: use a positive number of bytes")
        return value

    def positive_int(self, name: str, default: int) -> int:
        raw = self.string(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise WorkerSettingsError(f"{name}={raw!r} is not an integer") from None
        if value < 1:
            raise WorkerSettingsError(f"{name}={raw!r}: use a positive integer")
        return value

    def worker_count(self) -> int:
        """GATEWAY_WORKERS: a number of processes, or 0 / "auto" for one per core."""
        raw = self.string("GATEWAY_WORKERS", "1").lower() or "1"
        if raw == "auto":
            return 0
        try:
            value = int(raw)
        except ValueError:
            raise WorkerSettingsError(f"GATEWAY_WORKERS={raw!r}: use a number of processes, or 'auto'") from None
        if not 0 <= value <= 256:
            raise WorkerSettingsError(f"GATEWAY_WORKERS={raw!r}: use 1 to 256 processes, or 0 / 'auto' (one per core)")
        return value

    def worker_id(self) -> str:
        raw = self.string("WORKER_ID")
        if raw:
            if not _WORKER_ID.fullmatch(raw):
                raise WorkerSettingsError(
                    f"WORKER_ID={raw!r}: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
                )
            return raw
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip(".-_") or "worker"
        return f"{host[:100]}-{os.getpid()}"

    def key_hash_pepper(self) -> str:
        """KEY_HASH_PEPPER, else what the portal derives from SECRET_KEY (config/settings.py)."""
        pepper = self.string("KEY_HASH_PEPPER")
        if pepper:
            return pepper
        environment = self.string("PLATFORM_ENV", "development")
        if environment not in {"development", "production"}:
            raise WorkerSettingsError(f"PLATFORM_ENV={environment!r}: use 'development' or 'production'")
        secret_key = self.string("SECRET_KEY")
        if not secret_key and environment == "production":
            raise WorkerSettingsError("PLATFORM_ENV=production needs KEY_HASH_PEPPER (or the portal's SECRET_KEY)")
        return f"pepper:{secret_key or DEVELOPMENT_SECRET_KEY}"
