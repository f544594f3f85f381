"""The control plane's state. (Routes, canaries, guardrails and snapshots come with the
control-plane issue; the generation counter is what every enforcing change bumps.)"""

from __future__ import annotations

from django.db import models


class ConfigGeneration(models.Model):
    """One row: the generation of the configuration that gateway workers enforce.

    Every change the gateway must enforce (a key created or revoked, a subscription
    approved, a plan's limits changed, a version published...) bumps ``generation`` in the
    same transaction as the change, through ``gateway_sync.services.config_mark_changed``.
    The snapshot compiler records which generation each snapshot was built from.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    generation = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(null=True, blank=True)
    last_reason = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"configuration generation {self.generation}"


class SnapshotRecord(models.Model):
    """A published snapshot: its canonical payload and checksums, kept for history, diff
    and rollback.

    ``sha256`` covers the payload as published (version and time included); workers check
    it. ``content_sha256`` covers only the configuration (version, time and generation
    zeroed), so a rebuild that finds the same content is not published again.
    """

    version = models.PositiveBigIntegerField(unique=True)
    sha256 = models.CharField(max_length=64)
    content_sha256 = models.CharField(max_length=64, db_index=True)
    source_generation = models.BigIntegerField()
    payload = models.BinaryField()
    size_bytes = models.PositiveIntegerField()
    reason = models.CharField(max_length=200, blank=True)
    rolled_back_to = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="When this snapshot republishes an earlier one: that one's version."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"snapshot {self.version}"


# Traffic governance lives in its own modules; Django finds the models through these names.
from gateway_sync.models_guardrails import GuardrailPolicy, GuardrailRule  # noqa: E402
from gateway_sync.models_routes import Canary, CanaryEvent, Route, RouteTarget  # noqa: E402

__all__ = [
    "Canary",
    "CanaryEvent",
    "ConfigGeneration",
    "GuardrailPolicy",
    "GuardrailRule",
    "Route",
    "RouteTarget",
    "SnapshotRecord",
]
