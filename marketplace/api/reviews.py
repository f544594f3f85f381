"""Staff API: the review queue, approving and rejecting versions."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import request_user
from marketplace import selectors, services
from marketplace.api import serializers as s
from marketplace.models import ProductVersion


class IsStaff(permissions.IsAuthenticated):
    message = "Only platform staff review versions."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return super().has_permission(request, view) and bool(request.user.is_staff)


class ReviewListView(generics.ListAPIView[ProductVersion]):
    """Versions waiting for review, the longest-waiting first."""

    permission_classes = [IsStaff]
    serializer_class = s.ReviewOutput

    def get_queryset(self) -> QuerySet[ProductVersion]:
        return selectors.review_queue()


class ReviewActionView(APIView):
    permission_classes = [IsStaff]

    def get_version(self) -> ProductVersion:
        # Any version, not only those in review: the service says why one cannot be
        # approved, which is more use to a reviewer than a 404.
        return get_object_or_404(
            ProductVersion.objects.select_related("product__organization"), pk=self.kwargs["version_id"]
        )

    def respond(self, version: ProductVersion) -> Response:
        return Response(s.ReviewOutput(version).data)


class ReviewApproveView(ReviewActionView):
    """Publish the version: the catalog lists it and the gateway serves it."""

    @extend_schema(request=None, responses=s.ReviewOutput)
    def post(self, request: Request, version_id: int) -> Response:
        return self.respond(services.version_approve(actor=request_user(request), version=self.get_version()))


class ReviewRejectView(ReviewActionView):
    """Send the version back to draft; the reason is emailed to the provider."""

    @extend_schema(request=s.RejectInput, responses=s.ReviewOutput)
    def post(self, request: Request, version_id: int) -> Response:
        version = self.get_version()
        data = s.RejectInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self.respond(
            services.version_reject(actor=request_user(request), version=version, reason=data.validated_data["reason"])
        )
