"""The registry's REST API endpoints, under /api/v1/registry/."""

from __future__ import annotations

from django.urls import path

from marketplace.registry import api

urlpatterns = [
    path("import/", api.RegistryImportView.as_view(), name="api-registry-import"),
]
