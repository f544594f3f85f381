"""Consumer API: apps."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors as account_selectors
from accounts.auth import request_user
from consumers import selectors, services
from consumers.api import serializers as s
from consumers.api.base import AppScopedView
from consumers.models import ConsumerApp


class AppListView(generics.ListAPIView[ConsumerApp]):
    """The apps of the user's organizations (of every organization, for staff)."""

    serializer_class = s.AppOutput

    def get_queryset(self) -> QuerySet[ConsumerApp]:
        user = request_user(self.request)
        apps = selectors.apps_for_user(user)
        slug = self.request.query_params.get("organization")
        if slug:
            apps = apps.filter(organization=account_selectors.organization_get_for_user(user, slug))
        return apps.order_by("name", "pk")

    @extend_schema(
        parameters=[OpenApiParameter("organization", str, description="Only this organization's apps (its slug).")]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.AppInput, responses={201: s.AppOutput})
    def post(self, request: Request) -> Response:
        user = request_user(request)
        data = s.AppInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        organization = account_selectors.organization_get_for_user(user, fields.pop("organization"))
        app = services.app_create(actor=user, organization=organization, **fields)
        return Response(s.AppOutput(app).data, status=status.HTTP_201_CREATED)


class AppDetailView(AppScopedView):
    @extend_schema(responses=s.AppOutput)
    def get(self, request: Request, app_id: int) -> Response:
        return Response(s.AppOutput(self.get_app()).data)

    @extend_schema(request=s.AppUpdateInput, responses=s.AppOutput)
    def patch(self, request: Request, app_id: int) -> Response:
        app = self.get_app()
        data = s.AppUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        app = services.app_update(actor=request_user(request), app=app, **data.validated_data)
        return Response(s.AppOutput(app).data)

    @extend_schema(
        responses={204: None},
        description="Delete the app: its keys stop working and its subscriptions end. Admins and owners only.",
    )
    def delete(self, request: Request, app_id: int) -> Response:
        services.app_delete(actor=request_user(request), app=self.get_app())
        return Response(status=status.HTTP_204_NO_CONTENT)
