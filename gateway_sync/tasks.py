"""Celery tasks of the control plane."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from gateway_sync.publish import snapshot_publish

# Set while a publish is scheduled and not started: later edits need not schedule another.
PUBLISH_SCHEDULED_KEY = "gateway:snapshot:publish-scheduled"


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def snapshot_publish_task(reason: str = "configuration changed") -> int | None:
    """Publish if the configuration moved past the latest snapshot. Returns the new
    version, or None when there was nothing new (another task got there first)."""
    # Cleared before compiling: an edit committed from now on schedules its own publish.
    cache.delete(PUBLISH_SCHEDULED_KEY)
    record = snapshot_publish(reason=reason).record
    return record.version if record else None


@shared_task
def snapshot_reconcile_task() -> int | None:
    """Rebuild and republish when the content differs from the latest snapshot: repairs a
    missed trigger. (Same content: nothing happens.)"""
    record = snapshot_publish(reason="periodic reconcile").record
    return record.version if record else None
