"""Provider API: products and their icons."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, parsers, permissions, renderers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors as account_selectors
from accounts.auth import request_user
from marketplace import selectors, services
from marketplace.api import serializers as s
from marketplace.api.base import ImageRenderer, ProductScopedView
from marketplace.models import Product
from marketplace.services.products import MAX_ICON_BYTES


class ProductListView(generics.ListAPIView[Product]):
    """The products of the user's organizations (of every organization, for staff)."""

    serializer_class = s.ProductOutput

    def get_queryset(self) -> QuerySet[Product]:
        user = request_user(self.request)
        slug = self.request.query_params.get("organization")
        if slug:
            products = selectors.provider_products(account_selectors.organization_get_for_user(user, slug))
        else:
            organizations = account_selectors.organizations_for_user(user)
            products = Product.objects.filter(organization__in=organizations).prefetch_related("versions", "categories")
        # The icon's bytes are served by their own endpoint; a list never needs them.
        return products.select_related("organization").defer("icon").order_by("name")

    @extend_schema(
        parameters=[OpenApiParameter("organization", str, description="Only this organization's products (its slug).")]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.ProductInput, responses={201: s.ProductOutput})
    def post(self, request: Request) -> Response:
        user = request_user(request)
        data = s.ProductInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        organization = account_selectors.organization_get_for_user(user, fields.pop("organization"))
        product = services.product_create(actor=user, organization=organization, **fields)
        return Response(s.ProductOutput(product).data, status=status.HTTP_201_CREATED)


class ProductDetailView(ProductScopedView):
    @extend_schema(responses=s.ProductOutput)
    def get(self, request: Request, slug: str) -> Response:
        return Response(s.ProductOutput(self.get_product()).data)

    @extend_schema(request=s.ProductUpdateInput, responses=s.ProductOutput)
    def patch(self, request: Request, slug: str) -> Response:
        product = self.get_product()
        data = s.ProductUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.product_update(actor=request_user(request), product=product, **data.validated_data)
        return Response(s.ProductOutput(self.get_product()).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str) -> Response:
        services.product_delete(actor=request_user(request), product=self.get_product())
        return Response(status=status.HTTP_204_NO_CONTENT)


ICON_HEADERS = {
    # The bytes were checked to be PNG or JPEG; these make sure nothing else is made of them.
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
}


class ProductIconView(ProductScopedView):
    """The product's icon: anyone may see the icon of a product in the catalog, members
    (and staff) that of any of their products; members set and clear it."""

    parser_classes = [parsers.MultiPartParser]
    # Reading is for anyone: _readable_product decides what each user may see.
    permission_classes = [permissions.IsAuthenticatedOrReadOnly]

    def get_renderers(self) -> list[renderers.BaseRenderer]:
        if self.request.method in permissions.SAFE_METHODS:
            return [renderers.JSONRenderer(), ImageRenderer()]
        return super().get_renderers()

    def _readable_product(self, request: Request, slug: str) -> Product:
        user = request_user(request) if request.user.is_authenticated else None
        try:
            return selectors.catalog_product_get(user, slug)
        except Http404:
            if user is None:
                raise
            return self.get_product()

    @extend_schema(
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The icon."),
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The icon."),
            404: OpenApiResponse(description="No such product, or it has no icon."),
        },
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        product = self._readable_product(request, slug)
        if not product.icon_content_type or product.icon is None:
            raise Http404("The product has no icon.")
        response = HttpResponse(bytes(product.icon), content_type=product.icon_content_type)
        for header, value in ICON_HEADERS.items():
            response[header] = value
        return response

    @extend_schema(request={"multipart/form-data": s.IconInput}, responses=s.ProductOutput)
    def put(self, request: Request, slug: str) -> Response:
        product = self.get_product()
        data = s.IconInput(data=request.data)
        data.is_valid(raise_exception=True)
        # One byte past the limit is enough for the service to refuse a too-large file.
        content = data.validated_data["icon"].read(MAX_ICON_BYTES + 1)
        services.product_set_icon(actor=request_user(request), product=product, data=content)
        return Response(s.ProductOutput(self.get_product()).data)

    @extend_schema(responses=s.ProductOutput)
    def delete(self, request: Request, slug: str) -> Response:
        product = self.get_product()
        services.product_set_icon(actor=request_user(request), product=product, data=None)
        return Response(s.ProductOutput(self.get_product()).data)
