from __future__ import annotations

from django.urls import path

from gateway_sync import views, views_guardrails, views_routes

ROUTE = "routes/<int:route_id>/"
POLICY = "guardrails/<int:policy_id>/"

urlpatterns = [
    path("", views.console_home, name="console_home"),
    # Routes, their targets and canaries
    path("routes/", views_routes.route_list, name="console_routes"),
    path(ROUTE, views_routes.route_detail, name="console_route"),
    path(f"{ROUTE}delete/", views_routes.route_delete, name="console_route_delete"),
    path(f"{ROUTE}targets/", views_routes.target_add, name="console_target_add"),
    path(f"{ROUTE}targets/<int:target_id>/", views_routes.target_update, name="console_target_update"),
    path(f"{ROUTE}targets/<int:target_id>/remove/", views_routes.target_remove, name="console_target_remove"),
    path(f"{ROUTE}canary/start/", views_routes.canary_start, name="console_canary_start"),
    path(f"{ROUTE}canary/weight/", views_routes.canary_set_weight, name="console_canary_weight"),
    path(
        f"{ROUTE}canary/promote/",
        views_routes.canary_decide,
        {"decision": "promote"},
        name="console_canary_promote",
    ),
    path(
        f"{ROUTE}canary/rollback/",
        views_routes.canary_decide,
        {"decision": "rollback"},
        name="console_canary_rollback",
    ),
    # Guardrail policies, their rules and attachments
    path("guardrails/", views_guardrails.guardrail_list, name="console_guardrails"),
    path(POLICY, views_guardrails.guardrail_detail, name="console_guardrail"),
    path(f"{POLICY}delete/", views_guardrails.guardrail_delete, name="console_guardrail_delete"),
    path(f"{POLICY}rules/", views_guardrails.rule_add, name="console_rule_add"),
    path(f"{POLICY}rules/<int:rule_id>/", views_guardrails.rule_update, name="console_rule_update"),
    path(f"{POLICY}rules/<int:rule_id>/remove/", views_guardrails.rule_remove, name="console_rule_remove"),
    path(f"{POLICY}attach/", views_guardrails.guardrail_attach, name="console_guardrail_attach"),
    path(f"{POLICY}detach/", views_guardrails.guardrail_detach, name="console_guardrail_detach"),
    path(f"{POLICY}test/", views_guardrails.guardrail_test, name="console_guardrail_test"),
]
