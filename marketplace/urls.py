"""The provider area, under /provider/."""

from __future__ import annotations

from django.urls import path

from marketplace import views_provider as views

urlpatterns = [
    path("", views.provider_home, name="provider_home"),
    path("products/new/", views.product_create, name="provider_product_create"),
    path("products/<slug:slug>/", views.product_detail, name="provider_product"),
    path("products/<slug:slug>/versions/<int:version_id>/", views.version_detail, name="provider_version"),
    path(
        "products/<slug:slug>/versions/<int:version_id>/<slug:action>/",
        views.version_action,
        name="provider_version_action",
    ),
]
