"""REST API for the accounts app. Thin: parse with an Input serializer, call a service,
answer with an Output serializer. Errors become problem documents in one handler
(config.api.errors)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.api import serializers as s
from accounts.auth import request_user as _user
from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Organization, Role


class MeView(APIView):
    @extend_schema(responses=s.UserOutput)
    def get(self, request: Request) -> Response:
        return Response(s.UserOutput(_user(request)).data)


class OrganizationListView(generics.ListAPIView[Organization]):
    serializer_class = s.OrganizationOutput

    def get_queryset(self) -> QuerySet[Organization]:
        return selectors.organizations_for_user(_user(self.request)).order_by("name")

    @extend_schema(request=s.OrganizationInput, responses={201: s.OrganizationOutput})
    def post(self, request: Request) -> Response:
        data = s.OrganizationInput(data=request.data)
        data.is_valid(raise_exception=True)
        organization = services.organization_create(actor=_user(request), **data.validated_data)
        return Response(s.OrganizationOutput(organization).data, status=status.HTTP_201_CREATED)


class OrganizationScopedMixin(APIView):
    """Resolves ``{slug}`` to an organization the user may see; 404 for outsiders."""

    def get_organization(self) -> Organization:
        return selectors.organization_get_for_user(_user(self.request), self.kwargs["slug"])

    def require_admin(self, organization: Organization) -> None:
        user = _user(self.request)
        if not (user.is_staff or selectors.user_has_role(user, organization, Role.ADMIN)):
            raise PermissionDenied("This needs the admin or owner role in the organization.")


class OrganizationDetailView(OrganizationScopedMixin):
    @extend_schema(responses=s.OrganizationOutput)
    def get(self, request: Request, slug: str) -> Response:
        return Response(s.OrganizationOutput(self.get_organization()).data)

    @extend_schema(request=s.OrganizationUpdateInput, responses=s.OrganizationOutput)
    def patch(self, request: Request, slug: str) -> Response:
        organization = self.get_organization()
        data = s.OrganizationUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.organization_update(actor=_user(request), organization=organization, name=data.validated_data["name"])
        return Response(s.OrganizationOutput(organization).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str) -> Response:
        services.organization_delete(actor=_user(request), organization=self.get_organization())
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListView(OrganizationScopedMixin, generics.ListAPIView[Membership]):
    serializer_class = s.MembershipOutput

    def get_queryset(self) -> QuerySet[Membership]:
        return selectors.members_of(self.get_organization())


class MemberDetailView(OrganizationScopedMixin):
    def get_membership(self, membership_id: int) -> Membership:
        return get_object_or_404(
            Membership.objects.select_related("user", "organization"),
            pk=membership_id,
            organization=self.get_organization(),
        )

    @extend_schema(request=s.MembershipRoleInput, responses=s.MembershipOutput)
    def patch(self, request: Request, slug: str, membership_id: int) -> Response:
        membership = self.get_membership(membership_id)
        data = s.MembershipRoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.membership_change_role(actor=_user(request), membership=membership, role=data.validated_data["role"])
        return Response(s.MembershipOutput(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, membership_id: int) -> Response:
        services.membership_remove(actor=_user(request), membership=self.get_membership(membership_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationListView(OrganizationScopedMixin, generics.ListAPIView[Invitation]):
    serializer_class = s.InvitationOutput

    def get_queryset(self) -> QuerySet[Invitation]:
        organization = self.get_organization()
        self.require_admin(organization)
        return selectors.pending_invitations_of(organization)

    @extend_schema(request=s.InvitationInput, responses={201: s.InvitationOutput})
    def post(self, request: Request, slug: str) -> Response:
        organization = self.get_organization()
        data = s.InvitationInput(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, _token = services.invitation_create(
            actor=_user(request), organization=organization, **data.validated_data
        )
        return Response(s.InvitationOutput(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailView(OrganizationScopedMixin):
    @extend_schema(responses=s.InvitationOutput)
    def delete(self, request: Request, slug: str, invitation_id: int) -> Response:
        invitation = get_object_or_404(Invitation, pk=invitation_id, organization=self.get_organization())
        services.invitation_revoke(actor=_user(request), invitation=invitation)
        return Response(s.InvitationOutput(invitation).data)


class InvitationAcceptView(APIView):
    @extend_schema(request=s.InvitationAcceptInput, responses=s.MembershipOutput)
    def post(self, request: Request) -> Response:
        data = s.InvitationAcceptInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.invitation_accept(user=_user(request), token=data.validated_data["token"])
        return Response(s.MembershipOutput(membership).data)


class AuditEventListView(OrganizationScopedMixin, generics.ListAPIView[AuditEvent]):
    serializer_class = s.AuditEventOutput

    def get_queryset(self) -> QuerySet[AuditEvent]:
        organization = self.get_organization()
        self.require_admin(organization)
        return selectors.audit_events_of(organization)


class ApiTokenListView(generics.ListAPIView[ApiToken]):
    serializer_class = s.ApiTokenOutput

    def get_queryset(self) -> QuerySet[ApiToken]:
        return selectors.api_tokens_of(_user(self.request))

    @extend_schema(request=s.ApiTokenInput, responses={201: s.ApiTokenCreatedOutput})
    def post(self, request: Request) -> Response:
        data = s.ApiTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        api_token, token = services.api_token_create(user=_user(request), **data.validated_data)
        body = s.ApiTokenOutput(api_token).data | {"token": token}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiTokenDetailView(APIView):
    @extend_schema(responses=s.ApiTokenOutput)
    def delete(self, request: Request, token_id: int) -> Response:
        user = _user(request)
        api_token = get_object_or_404(selectors.api_tokens_of(user), pk=token_id)
        services.api_token_revoke(actor=user, api_token=api_token)
        return Response(s.ApiTokenOutput(api_token).data)
