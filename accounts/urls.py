from __future__ import annotations

from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.home, name="home"),
    path("orgs/", views.organization_list, name="organization_list"),
    path("orgs/switch/", views.organization_switch, name="organization_switch"),
    path("orgs/<slug:slug>/", views.organization_detail, name="organization_detail"),
    path("orgs/<slug:slug>/rename/", views.organization_rename, name="organization_rename"),
    path("orgs/<slug:slug>/delete/", views.organization_delete, name="organization_delete"),
    path("orgs/<slug:slug>/members/<int:membership_id>/role/", views.membership_role, name="membership_role"),
    path("orgs/<slug:slug>/members/<int:membership_id>/remove/", views.membership_remove, name="membership_remove"),
    path("orgs/<slug:slug>/invitations/", views.invitation_create, name="invitation_create"),
    path("orgs/<slug:slug>/invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("orgs/<slug:slug>/audit/", views.audit_log, name="audit_log"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("settings/tokens/", views.api_tokens, name="api_tokens"),
    path("settings/tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
