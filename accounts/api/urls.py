from __future__ import annotations

from django.urls import path

from accounts.api import views

urlpatterns = [
    path("me/", views.MeView.as_view(), name="api-me"),
    path("organizations/", views.OrganizationListView.as_view(), name="api-organizations"),
    path("organizations/<slug:slug>/", views.OrganizationDetailView.as_view(), name="api-organization"),
    path("organizations/<slug:slug>/members/", views.MemberListView.as_view(), name="api-members"),
    path("organizations/<slug:slug>/members/<int:membership_id>/", views.MemberDetailView.as_view(), name="api-member"),
    path("organizations/<slug:slug>/invitations/", views.InvitationListView.as_view(), name="api-invitations"),
    path(
        "organizations/<slug:slug>/invitations/<int:invitation_id>/",
        views.InvitationDetailView.as_view(),
        name="api-invitation",
    ),
    path("organizations/<slug:slug>/audit-events/", views.AuditEventListView.as_view(), name="api-audit-events"),
    path("invitations/accept/", views.InvitationAcceptView.as_view(), name="api-invitation-accept"),
    path("tokens/", views.ApiTokenListView.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>/", views.ApiTokenDetailView.as_view(), name="api-token"),
]
