from __future__ import annotations

from django.urls import path

from consumers.api import apps, keys, plans, subscriptions

APP = "apps/<int:app_id>/"
KEY = f"{APP}keys/<int:key_id>/"
SUBSCRIPTION = "subscriptions/<int:subscription_id>/"

urlpatterns = [
    # Consumer: apps and their keys
    path("apps/", apps.AppListView.as_view(), name="api-apps"),
    path(APP, apps.AppDetailView.as_view(), name="api-app"),
    path(f"{APP}keys/", keys.KeyListView.as_view(), name="api-app-keys"),
    path(KEY, keys.KeyDetailView.as_view(), name="api-app-key"),
    path(f"{KEY}rotate/", keys.KeyRotateView.as_view(), name="api-app-key-rotate"),
    path(f"{KEY}revoke/", keys.KeyRevokeView.as_view(), name="api-app-key-revoke"),
    # Consumer: subscriptions
    path(f"{APP}subscriptions/", subscriptions.AppSubscriptionListView.as_view(), name="api-app-subscriptions"),
    path(SUBSCRIPTION, subscriptions.SubscriptionDetailView.as_view(), name="api-subscription"),
    path(f"{SUBSCRIPTION}cancel/", subscriptions.SubscriptionCancelView.as_view(), name="api-subscription-cancel"),
    # Provider: subscriptions to their products
    path(
        "provider/subscriptions/",
        subscriptions.ProviderSubscriptionListView.as_view(),
        name="api-provider-subscriptions",
    ),
    path(f"{SUBSCRIPTION}approve/", subscriptions.SubscriptionApproveView.as_view(), name="api-subscription-approve"),
    path(f"{SUBSCRIPTION}reject/", subscriptions.SubscriptionRejectView.as_view(), name="api-subscription-reject"),
    path(f"{SUBSCRIPTION}suspend/", subscriptions.SubscriptionSuspendView.as_view(), name="api-subscription-suspend"),
    path(f"{SUBSCRIPTION}resume/", subscriptions.SubscriptionResumeView.as_view(), name="api-subscription-resume"),
    # Plans: read by anyone (for products in the catalog), managed by the provider.
    # (marketplace.api.urls has products/<slug>/ and its icon/ and versions/; plans/ is ours.)
    path("products/<slug:slug>/plans/", plans.ProductPlanListView.as_view(), name="api-product-plans"),
    path("plans/<int:plan_id>/", plans.PlanDetailView.as_view(), name="api-plan"),
    path("plans/<int:plan_id>/archive/", plans.PlanArchiveView.as_view(), name="api-plan-archive"),
]
