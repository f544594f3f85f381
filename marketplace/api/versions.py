"""Provider API: a product's versions, their upstream settings and their lifecycle
(submit, withdraw, deprecate, retire)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.auth import request_user
from marketplace import services
from marketplace.api import serializers as s
from marketplace.api.base import VersionScopedView
from marketplace.models import Product, ProductVersion


class VersionListView(VersionScopedView, generics.ListAPIView[ProductVersion]):
    """Every version of the product, newest first."""

    serializer_class = s.VersionOutput

    def get_queryset(self) -> QuerySet[ProductVersion]:
        return self.versions_of(self.get_product()).order_by("-created_at", "-pk")

    @extend_schema(request=s.VersionCreateInput, responses={201: s.VersionDetailOutput})
    def post(self, request: Request, slug: str) -> Response:
        product = self.get_product()
        data = s.VersionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        copy_from = _version_named(product, fields.pop("copy_from", None))
        version = services.version_create(actor=request_user(request), product=product, copy_from=copy_from, **fields)
        return self.version_response(version, status.HTTP_201_CREATED)


def _version_named(product: Product, name: str | None) -> ProductVersion | None:
    if not name:
        return None
    version = product.versions.filter(version=name.strip()).first()
    if version is None:
        raise ValidationError({"copy_from": f"{product.name} has no version {name.strip()}."})
    return version


class VersionDetailView(VersionScopedView):
    @extend_schema(responses=s.VersionDetailOutput)
    def get(self, request: Request, slug: str, version: str) -> Response:
        return self.version_response(self.get_version())

    @extend_schema(request=s.VersionUpdateInput, responses=s.VersionDetailOutput)
    def patch(self, request: Request, slug: str, version: str) -> Response:
        product_version = self.get_version()
        data = s.VersionUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.version_update(actor=request_user(request), version=product_version, **data.validated_data)
        return self.version_response(product_version)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, version: str) -> Response:
        services.version_delete(actor=request_user(request), version=self.get_version())
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionSubmitView(VersionScopedView):
    """Send a complete draft to the platform's reviewers (any member)."""

    @extend_schema(request=None, responses=s.VersionDetailOutput)
    def post(self, request: Request, slug: str, version: str) -> Response:
        return self.version_response(services.version_submit(actor=request_user(request), version=self.get_version()))


class VersionWithdrawView(VersionScopedView):
    """Take a version back out of review, to change it (any member)."""

    @extend_schema(request=None, responses=s.VersionDetailOutput)
    def post(self, request: Request, slug: str, version: str) -> Response:
        return self.version_response(services.version_withdraw(actor=request_user(request), version=self.get_version()))


class VersionDeprecateView(VersionScopedView):
    """Announce when a published version will be retired (admins and owners)."""

    @extend_schema(request=s.DeprecateInput, responses=s.VersionDetailOutput)
    def post(self, request: Request, slug: str, version: str) -> Response:
        product_version = self.get_version()
        data = s.DeprecateInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self.version_response(
            services.version_deprecate(actor=request_user(request), version=product_version, **data.validated_data)
        )


class VersionRetireView(VersionScopedView):
    """Stop serving a published or deprecated version now (admins and owners)."""

    @extend_schema(request=None, responses=s.VersionDetailOutput)
    def post(self, request: Request, slug: str, version: str) -> Response:
        return self.version_response(services.version_retire(actor=request_user(request), version=self.get_version()))
