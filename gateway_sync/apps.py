from __future__ import annotations

from django.apps import AppConfig


class GatewaySyncConfig(AppConfig):
    name = "gateway_sync"
    default_auto_field = "django.db.models.BigAutoField"
