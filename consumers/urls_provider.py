"""The provider's side of consumers, under /provider/ (next to marketplace.urls): the
subscriptions to the provider's products and each product's plans."""

from __future__ import annotations

from django.urls import path

from consumers import views_provider as views
from consumers import views_usage

urlpatterns = [
    path("subscriptions/", views.provider_subscriptions, name="provider_subscriptions"),
    path(
        "subscriptions/<int:subscription_id>/<slug:action>/",
        views.provider_subscription_decide,
        name="provider_subscription_decide",
    ),
    path("usage/", views_usage.provider_usage, name="provider_usage"),
    path("products/<slug:slug>/plans/", views.plan_list, name="provider_plans"),
    path("products/<slug:slug>/plans/<int:plan_id>/", views.plan_edit, name="provider_plan_edit"),
    path("products/<slug:slug>/plans/<int:plan_id>/archive/", views.plan_archive, name="provider_plan_archive"),
]
