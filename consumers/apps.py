from __future__ import annotations

from django.apps import AppConfig


class ConsumersConfig(AppConfig):
    name = "consumers"
    verbose_name = "Consumers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from consumers import receivers  # noqa: F401  (connects the signal receivers)
