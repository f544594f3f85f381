"""Usage events, one row per gateway request, as ingested from the workers.

References to apps, products, versions, routes and targets are plain integer columns, not
foreign keys: an event outlives what it refers to, and ingestion never fails because an
app was deleted in the meantime. ``event_id`` is unique, which makes ingestion idempotent.
"""

from __future__ import annotations

from django.db import models


class UsageEvent(models.Model):
    class Protocol(models.TextChoices):
        REST = "rest", "REST"
        LLM = "llm", "LLM"
        MCP = "mcp", "MCP"
        A2A = "a2a", "A2A"

    event_id = models.CharField(max_length=32, unique=True)
    at = models.DateTimeField()
    worker_id = models.CharField(max_length=100)
    app_id = models.BigIntegerField(null=True, db_index=True)
    key_prefix = models.CharField(max_length=16, blank=True)
    product_id = models.BigIntegerField(null=True, db_index=True)
    product_slug = models.CharField(max_length=100, blank=True)
    version_id = models.BigIntegerField(null=True)
    route_id = models.BigIntegerField(null=True)
    target_id = models.BigIntegerField(null=True)
    protocol = models.CharField(max_length=8, choices=Protocol.choices)
    method = models.CharField(max_length=16)
    path = models.CharField(max_length=512)
    status = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField()
    bytes_in = models.PositiveBigIntegerField(default=0)
    bytes_out = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(null=True)
    completion_tokens = models.PositiveIntegerField(null=True)
    tokens_estimated = models.BooleanField(default=False)
    cost_microusd = models.BigIntegerField(null=True)
    tool_name = models.CharField(max_length=200, null=True)
    is_error = models.BooleanField(default=False)
    # A list of short strings; JSON rather than an array, so embedded mode (SQLite) works too.
    guardrail_actions = models.JSONField(default=list, blank=True)
    limit_decision = models.CharField(max_length=40, blank=True)
    ingested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]
        indexes = [
            models.Index(fields=["app_id", "at"], name="usage_app_at"),
            models.Index(fields=["product_id", "at"], name="usage_product_at"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.method} {self.path} → {self.status}"
