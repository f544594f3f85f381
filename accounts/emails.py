"""Outgoing email. Messages are rendered in the request and sent by a Celery task after
the transaction commits, so a slow mail server never slows a page and a rolled-back
change never sends mail."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def email_send_task(payload: dict[str, Any]) -> None:
    message = EmailMultiAlternatives(
        subject=payload["subject"],
        body=payload["body"],
        from_email=payload.get("from_email") or settings.DEFAULT_FROM_EMAIL,
        to=payload["to"],
    )
    for content, mimetype in payload.get("alternatives", []):
        message.attach_alternative(content, mimetype)
    message.send()


def email_enqueue(message: EmailMultiAlternatives) -> None:
    payload: dict[str, Any] = {
        "subject": message.subject,
        "body": message.body,
        "from_email": message.from_email,
        "to": list(message.to),
        "alternatives": [[content, mimetype] for content, mimetype in message.alternatives],
    }
    transaction.on_commit(lambda: email_send_task.delay(payload))


def email_render(template_prefix: str, to: list[str], context: dict[str, Any]) -> EmailMultiAlternatives:
    """Render ``{prefix}_subject.txt`` and ``{prefix}_message.txt`` into a message."""
    context = {"platform_name": settings.PLATFORM_NAME, "portal_url": settings.PORTAL_URL, **context}
    subject = " ".join(render_to_string(f"{template_prefix}_subject.txt", context).split())
    body = render_to_string(f"{template_prefix}_message.txt", context)
    return EmailMultiAlternatives(
        subject=f"[{settings.PLATFORM_NAME}] {subject}", body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=to
    )
