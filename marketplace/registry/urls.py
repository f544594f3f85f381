"""The MCP Registry API, mounted at /v0.1/. A server's name holds a slash: clients send
it URL-encoded (``io.example%2Fweather``), which reaches us decoded, hence ``path:``."""

from __future__ import annotations

from django.urls import path

from marketplace.registry import views

urlpatterns = [
    path("servers", views.server_list, name="registry-servers"),
    path("servers/<path:name>/versions", views.server_versions, name="registry-server-versions"),
    path("servers/<path:name>/versions/<str:version>", views.server_version, name="registry-server-version"),
    path("<path:rest>", views.not_found),
]
