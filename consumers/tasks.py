"""Celery tasks of the consumers app: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from consumers import services, usage


@shared_task
def api_keys_expire_task() -> int:
    return services.api_keys_expire()


@shared_task
def subscriptions_expire_task() -> int:
    return services.subscriptions_expire()


@shared_task
def usage_ingest_task() -> dict[str, int]:
    """Drain a batch of usage events from the gateway into the database."""
    return usage.usage_drain().as_dict()
