"""Publishing snapshots: compile, store, announce.

``snapshot_publish`` is called by the Celery task that ``config_mark_changed`` enqueues
after commit, by the periodic reconcile task, by ``manage.py snapshot_publish`` and by a
rollback. A burst of edits gives one snapshot: publishing is serialised by a lock on the
generation row, and a publish finds the latest snapshot already covering its generation
(or holding the same content) and does nothing.
"""

from __future__ import annotations

import dataclasses
import logging

from django.db import transaction
from django.db.models import Max

from gateway_sync.announce import Announcer, default_announcer
from gateway_sync.compiler import compile_snapshot
from gateway_sync.contract import codec
from gateway_sync.models import ConfigGeneration, SnapshotRecord

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PublishResult:
    record: SnapshotRecord | None
    skipped: str = ""


def content_sha256(payload: bytes) -> str:
    """The checksum of the configuration alone: version, time and generation zeroed."""
    snapshot = codec.decode_snapshot(payload)
    neutral = snapshot.__class__(
        **{
            f: getattr(snapshot, f)
            for f in snapshot.__struct_fields__
            if f not in {"version", "created_at", "source_generation"}
        },
        version=0,
        created_at=0.0,
        source_generation=0,
    )
    return codec.sha256_hex(codec.encode_snapshot(neutral))


def snapshot_publish(*, reason: str, force: bool = False, announcer: Announcer | None = None) -> PublishResult:
    """Publish the current configuration as a new snapshot version.

    Without ``force`` it does nothing when the latest snapshot already covers the current
    generation and holds the same content. The record is stored in the same transaction as
    the check; the announcement follows the commit, so workers never hear of a snapshot
    that is not stored.
    """
    with transaction.atomic():
        row, _created = ConfigGeneration.objects.select_for_update().get_or_create(id=ConfigGeneration.SINGLETON_ID)
        generation = row.generation
        latest = SnapshotRecord.objects.order_by("-version").first()
        if not force and latest is not None and latest.source_generation >= generation:
            return PublishResult(None, skipped=f"snapshot {latest.version} already covers generation {generation}")
        version = (SnapshotRecord.objects.aggregate(top=Max("version"))["top"] or 0) + 1
        snapshot = compile_snapshot(version=version, source_generation=generation)
        payload = codec.encode_snapshot(snapshot)
        # Refuse to store what a worker would refuse to apply.
        codec.decode_snapshot(payload)
        content = content_sha256(payload)
        if not force and latest is not None and latest.content_sha256 == content:
            SnapshotRecord.objects.filter(pk=latest.pk).update(source_generation=generation)
            return PublishResult(None, skipped=f"snapshot {latest.version} has the same content")
        record = record_store(version, payload, content, generation, reason)
        transaction.on_commit(lambda: record_announce(record, announcer))
    return PublishResult(record)


def record_store(
    version: int, payload: bytes, content: str, generation: int, reason: str, rolled_back_to: int | None = None
) -> SnapshotRecord:
    return SnapshotRecord.objects.create(
        version=version,
        sha256=codec.sha256_hex(payload),
        content_sha256=content,
        source_generation=generation,
        payload=payload,
        size_bytes=len(payload),
        reason=reason[:200],
        rolled_back_to=rolled_back_to,
    )


def record_announce(record: SnapshotRecord, announcer: Announcer | None) -> None:
    (announcer or default_announcer()).announce(
        version=record.version,
        sha256=record.sha256,
        source_generation=record.source_generation,
        payload=bytes(record.payload),
    )
    log.info(
        "published snapshot %s (%s bytes, generation %s)", record.version, record.size_bytes, record.source_generation
    )
