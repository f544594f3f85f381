"""Writers of the control plane."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from gateway_sync.models import ConfigGeneration


def config_mark_changed(*, reason: str) -> int:
    """Record that the configuration the gateway enforces has changed; returns the new
    generation. Call it inside the transaction that makes the change: the bump commits or
    rolls back with it, and concurrent bumps serialise on the row (none is lost)."""
    with transaction.atomic():
        ConfigGeneration.objects.get_or_create(id=ConfigGeneration.SINGLETON_ID)
        ConfigGeneration.objects.filter(id=ConfigGeneration.SINGLETON_ID).update(
            generation=F("generation") + 1, changed_at=timezone.now(), last_reason=reason[:200]
        )
        return ConfigGeneration.objects.values_list("generation", flat=True).get(id=ConfigGeneration.SINGLETON_ID)
