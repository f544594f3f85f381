from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.contrib.sites.shortcuts import get_current_site
from django.http import HttpRequest

from accounts.emails import email_enqueue


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return bool(settings.ACCOUNT_ALLOW_SIGNUP)

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """Render allauth's emails here, and send them through the Celery email task
        after the transaction commits."""
        request = allauth_context.request
        ctx = {"email": email, "current_site": get_current_site(request), "request": request, **context}
        email_enqueue(self.render_mail(template_prefix, email, ctx))
