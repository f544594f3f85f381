from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from accounts.models import User


def request_user(request: Any) -> User:
    """The signed-in user of a Django or DRF request. Views call it after their login
    check; the exception is a safety net, not a flow."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied("Sign in first.")
    return user
