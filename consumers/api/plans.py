"""Plans: anyone may read the plans of a product in the catalog; the provider's members
(and staff) also see archived plans and the plans of products not yet in the catalog;
the provider's admins and owners create, change and archive them."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import request_user
from consumers import selectors, services
from consumers.api import serializers as s
from consumers.api.base import plan_get_managed, plan_get_readable, plans_product_get
from consumers.models import Plan
from marketplace import selectors as marketplace_selectors
from marketplace.models import Product


def _plan_fields(product: Product, validated: dict[str, Any]) -> dict[str, Any]:
    """The service's keyword arguments: ``version`` resolved to one of the product's."""
    fields = dict(validated)
    if "version" in fields:
        version = fields["version"]
        if not version:
            fields["version"] = None
        else:
            found = product.versions.filter(version=version).first()
            if found is None:
                raise ValidationError({"version": f"{product.name} has no version {version}."})
            fields["version"] = found
    return fields


class ProductPlanListView(generics.ListAPIView[Plan]):
    """The default plan first, then by name."""

    serializer_class = s.PlanOutput
    permission_classes = [permissions.IsAuthenticatedOrReadOnly]

    def get_queryset(self) -> QuerySet[Plan]:
        product, provider_side = plans_product_get(self.request, self.kwargs["slug"])
        plans = selectors.plans_of(product, active_only=not provider_side)
        return plans.select_related("product", "version").order_by("-is_default", "name", "pk")

    @extend_schema(
        description="Open to anyone for a product in the catalog. The provider's members and staff also see "
        "archived plans (is_active false)."
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.PlanInput, responses={201: s.PlanOutput})
    def post(self, request: Request, slug: str) -> Response:
        user = request_user(request)
        product = marketplace_selectors.provider_product_get(user, slug)
        data = s.PlanInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = _plan_fields(product, data.validated_data)
        plan = services.plan_create(actor=user, product=product, **fields)
        return Response(s.PlanOutput(plan).data, status=status.HTTP_201_CREATED)


class PlanDetailView(APIView):
    permission_classes = [permissions.IsAuthenticatedOrReadOnly]

    @extend_schema(responses=s.PlanOutput)
    def get(self, request: Request, plan_id: int) -> Response:
        return Response(s.PlanOutput(plan_get_readable(request, plan_id)).data)

    @extend_schema(
        request=s.PlanUpdateInput,
        responses=s.PlanOutput,
        description="The new limits apply to the plan's current subscribers at once.",
    )
    def patch(self, request: Request, plan_id: int) -> Response:
        plan = plan_get_managed(request, plan_id)
        data = s.PlanUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = _plan_fields(plan.product, data.validated_data)
        plan = services.plan_update(actor=request_user(request), plan=plan, **fields)
        return Response(s.PlanOutput(plan).data)


class PlanArchiveView(APIView):
    @extend_schema(
        request=None,
        responses=s.PlanOutput,
        description="Take no new subscriptions on the plan; its current subscribers keep it. "
        "The default plan cannot be archived.",
    )
    def post(self, request: Request, plan_id: int) -> Response:
        plan = services.plan_archive(actor=request_user(request), plan=plan_get_managed(request, plan_id))
        return Response(s.PlanOutput(plan).data)
