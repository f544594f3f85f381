"""Celery tasks of the accounts app: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from accounts import services
from accounts.emails import email_send_task

__all__ = ["email_send_task", "health_ping_task", "invitations_expire_task"]


@shared_task
def invitations_expire_task() -> int:
    return services.invitations_expire()


@shared_task
def health_ping_task() -> str:
    """Answers "pong": lets operators and tests check that a worker consumes the queue."""
    return "pong"
