from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.models import Membership


def platform(request: HttpRequest) -> dict[str, Any]:
    """Site-wide template context: the platform's name and URLs, and, for a signed-in
    user, their memberships for the organization switcher."""
    context: dict[str, Any] = {
        "platform_name": settings.PLATFORM_NAME,
        "gateway_url": settings.GATEWAY_URL,
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        membership = getattr(request, "membership", None)
        context["current_membership"] = membership if membership else None
        context["user_memberships"] = Membership.objects.filter(user=user).select_related("organization")
    return context
