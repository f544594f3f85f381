"""What the provider views share: resolving ``{slug}`` and ``{version}`` for the user,
the detailed answer about a version, and renderers for the two views that answer
something other than JSON."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from rest_framework import renderers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import request_user
from marketplace import selectors
from marketplace.api import serializers as s
from marketplace.models import Product, ProductVersion


class ImageRenderer(renderers.JSONRenderer):
    """Lets a client that accepts only images negotiate the icon view. The view answers
    the image itself; this renders only its errors (as JSON problem documents)."""

    media_type = "image/*"
    format = "image"


class YamlRenderer(renderers.JSONRenderer):
    """Lets a client that accepts only YAML negotiate the Higress export; like
    ImageRenderer, it renders only errors."""

    media_type = "application/yaml"
    format = "yaml"


class ProductScopedView(APIView):
    """Resolves ``{slug}`` to a product of the user's organizations (any product, for
    staff, who may inspect); everyone else gets 404 and cannot learn that it exists.
    The services check the role each action needs."""

    def get_product(self) -> Product:
        return selectors.provider_product_get(request_user(self.request), self.kwargs["slug"])


class VersionScopedView(ProductScopedView):
    """Also resolves ``{version}``, the version string (1.0.0, 2.0.0-beta.1)."""

    @staticmethod
    def versions_of(product: Product) -> QuerySet[ProductVersion]:
        return product.versions.select_related("product__organization")

    def get_version(self) -> ProductVersion:
        return get_object_or_404(self.versions_of(self.get_product()), version=self.kwargs["version"])

    def version_response(self, version: ProductVersion, status_code: int = status.HTTP_200_OK) -> Response:
        """The version in full, read again: a service may have replaced its rows."""
        fresh = self.versions_of(version.product).prefetch_related("operations", "models", "tools").get(pk=version.pk)
        return Response(s.VersionDetailOutput(fresh).data, status=status_code)
