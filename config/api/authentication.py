from __future__ import annotations

from drf_spectacular.authentication import SessionScheme
from rest_framework import authentication, exceptions
from rest_framework.request import Request


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication, with CSRF failures told apart from other 403s
    (``code: csrf_failed``), so that a client knows to send X-CSRFToken."""

    def enforce_csrf(self, request: Request) -> None:
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            raise exceptions.PermissionDenied(f"{exc.detail} Send the X-CSRFToken header.", code="csrf_failed") from exc


class SessionAuthenticationScheme(SessionScheme):  # type: ignore[no-untyped-call]
    target_class = "config.api.authentication.SessionAuthentication"
