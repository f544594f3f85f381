"""The console API, mounted at /api/v1/console/."""

from __future__ import annotations

from django.urls import path

from gateway_sync.api import guardrails, routes

ROUTE = "routes/<int:route_id>/"
POLICY = "guardrails/<int:policy_id>/"

urlpatterns = [
    # Routes, targets, canary
    path("routes/", routes.RouteListView.as_view(), name="api-console-routes"),
    path(ROUTE, routes.RouteDetailView.as_view(), name="api-console-route"),
    path(f"{ROUTE}targets/", routes.TargetListView.as_view(), name="api-console-targets"),
    path(f"{ROUTE}targets/<int:target_id>/", routes.TargetDetailView.as_view(), name="api-console-target"),
    path(f"{ROUTE}canary/start/", routes.CanaryStartView.as_view(), name="api-console-canary-start"),
    path(f"{ROUTE}canary/weight/", routes.CanaryWeightView.as_view(), name="api-console-canary-weight"),
    path(f"{ROUTE}canary/promote/", routes.CanaryPromoteView.as_view(), name="api-console-canary-promote"),
    path(f"{ROUTE}canary/rollback/", routes.CanaryRollbackView.as_view(), name="api-console-canary-rollback"),
    path(f"{ROUTE}canary/events/", routes.CanaryEventListView.as_view(), name="api-console-canary-events"),
    # Guardrail policies, rules, attachments
    path("guardrails/", guardrails.PolicyListView.as_view(), name="api-console-guardrails"),
    path(POLICY, guardrails.PolicyDetailView.as_view(), name="api-console-guardrail"),
    path(f"{POLICY}rules/", guardrails.RuleListView.as_view(), name="api-console-rules"),
    path(f"{POLICY}rules/<int:rule_id>/", guardrails.RuleDetailView.as_view(), name="api-console-rule"),
    path(f"{POLICY}attachments/", guardrails.AttachmentListView.as_view(), name="api-console-attachments"),
    path(
        f"{POLICY}attachments/products/<slug:slug>/",
        guardrails.ProductDetachView.as_view(),
        name="api-console-detach-product",
    ),
    path(
        f"{POLICY}attachments/plans/<int:plan_id>/",
        guardrails.PlanDetachView.as_view(),
        name="api-console-detach-plan",
    ),
    path(
        f"{POLICY}attachments/routes/<int:route_id>/",
        guardrails.RouteDetachView.as_view(),
        name="api-console-detach-route",
    ),
    path(f"{POLICY}test/", guardrails.PolicyTestView.as_view(), name="api-console-guardrail-test"),
]
