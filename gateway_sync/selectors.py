from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from accounts.models import AuditEvent, Organization
from gateway_sync.models import ConfigGeneration
from marketplace.models import ProductVersion


def console_overview() -> dict[str, Any]:
    """Platform-wide counts for the admin console's front page."""
    return {
        "user_count": get_user_model().objects.count(),
        "organization_count": Organization.objects.count(),
        "review_count": ProductVersion.objects.filter(status=ProductVersion.Status.IN_REVIEW).count(),
    }


def recent_audit_events(limit: int = 50) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.select_related("organization")[:limit]


def config_generation() -> int:
    """The current configuration generation (0 before any change)."""
    row = ConfigGeneration.objects.filter(id=ConfigGeneration.SINGLETON_ID).first()
    return row.generation if row else 0
