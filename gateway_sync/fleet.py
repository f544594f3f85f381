"""The fleet: what each gateway worker reports by heartbeat, and snapshot rollback."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max

from accounts.models import User
from accounts.services import audit_record
from gateway_sync.contract import codec
from gateway_sync.models import ConfigGeneration, SnapshotRecord
from gateway_sync.publish import content_sha256, record_announce, record_store

HEARTBEAT_STALE_S = 10.0


@dataclass(frozen=True)
class WorkerStatus:
    worker_id: str
    host: str
    pid: int | None
    snapshot_version: int | None
    lag: int | None
    last_error: str
    heartbeat_age_s: float
    stale: bool
    counters: dict[str, Any]


def _heartbeats() -> list[dict[str, Any]]:
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            members = client.smembers("gateway:workers")
            ids = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
            raw = [client.get(f"gateway:workers:{worker_id}") for worker_id in ids]
        except redis.RedisError:
            return []
        finally:
            client.close()
        return [json.loads(item) for item in raw if item]
    folder = Path(settings.SNAPSHOT_DIR).parent / "workers"
    beats = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            beats.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return beats


def fleet_status() -> list[WorkerStatus]:
    """Every worker that sent a heartbeat lately, with its lag behind the latest snapshot."""
    latest = SnapshotRecord.objects.aggregate(top=Max("version"))["top"]
    now = time.time()
    statuses = []
    for beat in _heartbeats():
        version = beat.get("snapshot_version")
        age = max(0.0, now - float(beat.get("sent_at") or 0))
        statuses.append(
            WorkerStatus(
                worker_id=str(beat.get("worker_id", "?")),
                host=str(beat.get("host", "")),
                pid=beat.get("pid"),
                snapshot_version=version,
                lag=(latest - version) if latest is not None and version is not None else None,
                last_error=str(beat.get("last_error") or ""),
                heartbeat_age_s=round(age, 1),
                stale=age > HEARTBEAT_STALE_S,
                counters=dict(beat.get("counters") or {}),
            )
        )
    return statuses


def snapshot_rollback(*, actor: User, version: int) -> SnapshotRecord:
    """Republish snapshot ``version``'s configuration as a new version.

    The rollback holds until the next configuration change: it covers the current
    generation, so the periodic reconcile does not undo it, and the next edit publishes the
    database's state again (which then includes that edit).
    """
    if not actor.is_staff:
        raise PermissionDenied("Only platform staff roll snapshots back.")
    with transaction.atomic():
        generation = ConfigGeneration.objects.select_for_update().get_or_create(id=ConfigGeneration.SINGLETON_ID)[0]
        try:
            source = SnapshotRecord.objects.get(version=version)
        except SnapshotRecord.DoesNotExist:
            raise ValidationError({"version": f"There is no snapshot {version}."}) from None
        old = codec.decode_snapshot(bytes(source.payload))
        new_version = (SnapshotRecord.objects.aggregate(top=Max("version"))["top"] or 0) + 1
        republished = old.__class__(
            **{
                f: getattr(old, f)
                for f in old.__struct_fields__
                if f not in {"version", "created_at", "source_generation"}
            },
            version=new_version,
            created_at=time.time(),
            source_generation=generation.generation,
        )
        payload = codec.encode_snapshot(republished)
        record = record_store(
            new_version,
            payload,
            content_sha256(payload),
            generation.generation,
            f"rollback to snapshot {version}",
            rolled_back_to=version,
        )
        audit_record(actor=actor, action="snapshot.rollback", target=record, changes={"to": version, "as": new_version})
        transaction.on_commit(lambda: record_announce(record, None))
    return record
