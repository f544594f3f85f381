"""The consumer area, under /consumer/."""

from __future__ import annotations

from django.urls import path

from consumers import views

urlpatterns = [
    path("", views.consumer_home, name="consumer_home"),
    path("apps/<int:app_id>/", views.app_detail, name="consumer_app"),
    path("apps/<int:app_id>/edit/", views.app_edit, name="consumer_app_edit"),
    path("apps/<int:app_id>/delete/", views.app_delete, name="consumer_app_delete"),
    path("apps/<int:app_id>/keys/", views.key_create, name="consumer_key_create"),
    path("apps/<int:app_id>/keys/<int:key_id>/rotate/", views.key_rotate, name="consumer_key_rotate"),
    path("apps/<int:app_id>/keys/<int:key_id>/revoke/", views.key_revoke, name="consumer_key_revoke"),
    path("apps/<int:app_id>/keys/<int:key_id>/limits/", views.key_limits, name="consumer_key_limits"),
    path(
        "apps/<int:app_id>/subscriptions/<int:subscription_id>/cancel/",
        views.subscription_cancel,
        name="consumer_subscription_cancel",
    ),
    path("subscribe/<slug:slug>/", views.subscribe, name="consumer_subscribe"),
]
