"""Every app's API under /api/v1/."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.api.urls")),
    path("", include("marketplace.api.urls")),
    path("", include("consumers.api.urls")),
    path("registry/", include("marketplace.registry.api_urls")),
    path("console/", include("gateway_sync.api.urls")),
    path("console/", include("gateway_sync.fleet_api_urls")),
]
