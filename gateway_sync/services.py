"""Writers of the control plane."""

from __future__ import annotations

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from gateway_sync.models import ConfigGeneration
from gateway_sync.tasks import PUBLISH_SCHEDULED_KEY, snapshot_publish_task

# Edits within this window after the first one are published together.
PUBLISH_DEBOUNCE_S = 0.3


def config_mark_changed(*, reason: str) -> int:
    """Record that the configuration the gateway enforces has changed; returns the new
    generation.

    Call it inside the transaction that makes the change: the bump commits or rolls back
    with it, and concurrent bumps serialise on the row (none is lost). After the commit a
    publish task is scheduled, at most one per debounce window, so a burst of edits gives
    one snapshot. (If scheduling fails, say the broker is down, the periodic reconcile
    publishes within a minute.)
    """
    with transaction.atomic():
        ConfigGeneration.objects.get_or_create(id=ConfigGeneration.SINGLETON_ID)
        ConfigGeneration.objects.filter(id=ConfigGeneration.SINGLETON_ID).update(
            generation=F("generation") + 1, changed_at=timezone.now(), last_reason=reason[:200]
        )
        generation = ConfigGeneration.objects.values_list("generation", flat=True).get(id=ConfigGeneration.SINGLETON_ID)
    transaction.on_commit(lambda: _schedule_publish(reason), robust=True)
    return generation


def _schedule_publish(reason: str) -> None:
    if cache.add(PUBLISH_SCHEDULED_KEY, reason[:200], timeout=10):
        try:
            snapshot_publish_task.apply_async(kwargs={"reason": reason}, countdown=PUBLISH_DEBOUNCE_S)
        except Exception:
            # Not scheduled after all: let the next change try again.
            cache.delete(PUBLISH_SCHEDULED_KEY)
            raise
