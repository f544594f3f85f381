from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import views as config_views
from marketplace import urls_catalog

urlpatterns = [
    path("", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("catalog/", include(urls_catalog.catalog_urlpatterns)),
    path("provider/", include("marketplace.urls")),
    path("provider/", include("consumers.urls_provider")),
    path("console/reviews/", include(urls_catalog.review_urlpatterns)),
    path("console/fleet/", include("gateway_sync.fleet_urls")),
    path("consumer/", include("consumers.urls")),
    path("console/", include("gateway_sync.urls")),
    path("api/v1/", include("config.api.urls")),
    path("v0.1/", include("marketplace.registry.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("django-admin/", admin.site.urls),
]

handler400 = config_views.bad_request
handler403 = config_views.permission_denied
handler404 = config_views.page_not_found
handler500 = config_views.server_error
