"""Ingesting the gateway's usage events into the database.

Workers deliver each event at least once; the unique ``event_id`` makes ingesting it
again harmless. Two sources:

- Production (``REDIS_URL``): the Redis stream ``gateway:usage`` (USAGE_STREAM_KEY), one
  event per entry in the field ``e``, read through the consumer group ``portal``. An entry
  is acknowledged only after the transaction holding its event commits. Entries a crashed
  reader left unacknowledged are claimed back with XAUTOCLAIM once idle for
  USAGE_CLAIM_IDLE_MS, and ingested again (the unique id drops any doubles).
- Embedded mode: JSON-lines spool files ``*.jsonl`` in USAGE_SPOOL_DIR (``<VAR_DIR>/usage``).
  A worker writes ``name.jsonl.tmp`` and renames it, so a ``.jsonl`` file is complete.
  A file is deleted only after its events are committed.

An invalid event (malformed, of the wrong shape) is counted, logged and dropped (and, in
the stream, acknowledged, so it is not delivered forever); it never fails its batch.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import models, transaction

from consumers.models import ApiKey
from consumers.models_usage import UsageEvent
from gateway_sync.contract import usage as contract

logger = logging.getLogger(__name__)

DEFAULT_STREAM_KEY = "gateway:usage"
GROUP = "portal"
EVENT_FIELD = b"e"
# Events per run of the periodic task; the next run (10 s later) takes the rest.
MAX_EVENTS_PER_RUN = 5_000
READ_COUNT = 500
DEFAULT_CLAIM_IDLE_MS = 60_000


@dataclass(frozen=True)
class IngestResult:
    inserted: int = 0
    duplicates: int = 0
    invalid: int = 0

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            self.inserted + other.inserted, self.duplicates + other.duplicates, self.invalid + other.invalid
        )

    @property
    def total(self) -> int:
        return self.inserted + self.duplicates + self.invalid

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _row(event: contract.UsageEvent) -> UsageEvent:
    return UsageEvent(
        event_id=event.event_id,
        at=datetime.fromtimestamp(event.at, tz=UTC),
        worker_id=event.worker_id,
        app_id=event.app_id,
        key_prefix=event.key_prefix,
        product_id=event.product_id,
        product_slug=event.product_slug,
        version_id=event.version_id,
        route_id=event.route_id,
        target_id=event.target_id,
        protocol=event.protocol,
        method=event.method,
        path=event.path,
        status=event.status,
        latency_ms=event.latency_ms,
        bytes_in=event.bytes_in,
        bytes_out=event.bytes_out,
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        tokens_estimated=event.tokens_estimated,
        cost_microusd=event.cost_microusd,
        tool_name=event.tool_name,
        is_error=event.is_error,
        guardrail_actions=list(event.guardrail_actions),
        limit_decision=event.limit_decision,
    )


def usage_ingest(*, events: Iterable[bytes | str | contract.UsageEvent]) -> IngestResult:
    """Validate ``events`` and insert the new ones, in one transaction.

    ``duplicates`` counts events already stored (or repeated in the batch); under
    concurrent ingestion of the same events the count may be off, but the unique
    ``event_id`` still keeps a single row per event. Database errors propagate: the caller
    must not acknowledge the batch then.
    """
    rows: dict[str, UsageEvent] = {}
    duplicates = invalid = 0
    for raw in events:
        try:
            # A Struct built in Python skipped msgspec's checks: round-trip it through them.
            payload = contract.encode_event(raw) if isinstance(raw, contract.UsageEvent) else raw
            event = contract.decode_event(payload)
        except contract.UsageEventError as error:
            invalid += 1
            logger.warning("usage event refused: %s", error)
            continue
        if event.event_id in rows:
            duplicates += 1
        else:
            rows[event.event_id] = _row(event)
    if not rows:
        return IngestResult(duplicates=duplicates, invalid=invalid)
    with transaction.atomic():
        stored = set(UsageEvent.objects.filter(event_id__in=list(rows)).values_list("event_id", flat=True))
        new = [row for event_id, row in rows.items() if event_id not in stored]
        UsageEvent.objects.bulk_create(new, batch_size=1_000, ignore_conflicts=True)
        _keys_mark_used(new)
    return IngestResult(inserted=len(new), duplicates=duplicates + len(stored), invalid=invalid)


def _keys_mark_used(rows: Sequence[UsageEvent]) -> None:
    """Each key's ``last_used_at``: the latest request it authenticated (one UPDATE per
    key in the batch, never moving the time backwards)."""
    latest: dict[str, datetime] = {}
    for row in rows:
        if row.key_prefix and row.app_id is not None:
            latest[row.key_prefix] = max(row.at, latest.get(row.key_prefix, row.at))
    for prefix, at in latest.items():
        ApiKey.objects.filter(prefix=prefix).filter(
            models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=at)
        ).update(last_used_at=at)


# --- Redis stream -------------------------------------------------------------------------


def stream_key() -> str:
    return str(getattr(settings, "USAGE_STREAM_KEY", DEFAULT_STREAM_KEY))


def _consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _ensure_group(client: redis.Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def _ingest_entries(client: redis.Redis, stream: str, entries: Sequence[Any]) -> IngestResult:
    """Ingest the stream entries ``[(id, {field: value}), ...]``, then acknowledge them
    once the transaction commits (at once, outside any transaction)."""
    ids = [entry_id for entry_id, _fields in entries]
    payloads: list[bytes] = []
    missing = 0
    for _entry_id, fields in entries:
        payload = (fields or {}).get(EVENT_FIELD)
        if payload is None:
            missing += 1
            logger.warning("usage stream entry without an event field %r: dropped", EVENT_FIELD)
        else:
            payloads.append(payload)
    result = usage_ingest(events=payloads) + IngestResult(invalid=missing)
    if ids:
        transaction.on_commit(lambda: client.xack(stream, GROUP, *ids))
    return result


def usage_ingest_stream(
    *,
    client: redis.Redis,
    stream: str | None = None,
    consumer: str | None = None,
    max_events: int = MAX_EVENTS_PER_RUN,
    claim_idle_ms: int | None = None,
) -> IngestResult:
    """Drain up to ``max_events`` entries of the stream for the group ``portal``:

    1. claim the entries other readers left unacknowledged for ``claim_idle_ms`` or more
       (they crashed, or their database transaction failed), and ingest them;
    2. read new entries and ingest them.

    Each read is one transaction; its entries are acknowledged after it commits.
    """
    stream = stream or stream_key()
    consumer = consumer or _consumer_name()
    if claim_idle_ms is None:
        claim_idle_ms = int(getattr(settings, "USAGE_CLAIM_IDLE_MS", DEFAULT_CLAIM_IDLE_MS))
    _ensure_group(client, stream)
    result = IngestResult()
    budget = max_events
    start: bytes | str = "0-0"
    while budget > 0:
        reply: Any = client.xautoclaim(
            stream, GROUP, consumer, min_idle_time=claim_idle_ms, start_id=start, count=min(READ_COUNT, budget)
        )
        start, entries = reply[0], reply[1]
        if entries:
            result += _ingest_entries(client, stream, entries)
            budget -= len(entries)
        if start in (b"0-0", "0-0"):
            break
    while budget > 0:
        response: Any = client.xreadgroup(GROUP, consumer, {stream: ">"}, count=min(READ_COUNT, budget))
        if not response:
            break
        entries = response[0][1]
        if not entries:
            break
        result += _ingest_entries(client, stream, entries)
        budget -= len(entries)
    return result


# --- Spool files (embedded mode) ----------------------------------------------------------


def spool_dir() -> Path:
    return Path(getattr(settings, "USAGE_SPOOL_DIR", Path(settings.VAR_DIR) / "usage"))


def _delete_on_commit(path: Path) -> None:
    transaction.on_commit(lambda: path.unlink(missing_ok=True))


def usage_ingest_spool(*, directory: Path | None = None, max_events: int = MAX_EVENTS_PER_RUN) -> IngestResult:
    """Ingest complete spool files (``*.jsonl``, oldest name first; ``*.jsonl.tmp`` are
    being written) until ``max_events`` is reached, one transaction per file, and delete
    each file once its transaction commits."""
    directory = directory or spool_dir()
    result = IngestResult()
    if not directory.is_dir():
        return result
    for path in sorted(directory.glob("*.jsonl")):
        if result.total >= max_events:
            break
        try:
            lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        except FileNotFoundError:  # another run took it
            continue
        result += usage_ingest(events=lines)
        _delete_on_commit(path)
    return result


def usage_drain() -> IngestResult:
    """One run of the periodic ingestion: the Redis stream with REDIS_URL, else the spool."""
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            return usage_ingest_stream(client=client)
        finally:
            client.close()
    return usage_ingest_spool()
