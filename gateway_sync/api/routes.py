"""Console API: routes, their targets and canaries (platform staff)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.auth import request_user
from gateway_sync import services_routes as services
from gateway_sync.api import serializers as s
from gateway_sync.api.base import IsStaff, StaffView
from gateway_sync.models_routes import CanaryEvent, Route, RouteTarget
from marketplace.models import Product


def routes_queryset() -> QuerySet[Route]:
    return Route.objects.select_related("product", "canary__target", "canary__started_by").prefetch_related(
        "targets", "guardrail_policies"
    )


class RouteScopedView(StaffView):
    def get_route(self) -> Route:
        return get_object_or_404(Route.objects.select_related("product"), pk=self.kwargs["route_id"])

    def route_response(self, route: Route, status_code: int = status.HTTP_200_OK) -> Response:
        """The route in full, read again: a service may have changed its targets."""
        return Response(s.RouteOutput(routes_queryset().get(pk=route.pk)).data, status=status_code)


class RouteListView(generics.ListAPIView[Route]):
    """Every route, or one product's."""

    permission_classes = [IsStaff]
    serializer_class = s.RouteOutput

    def get_queryset(self) -> QuerySet[Route]:
        routes = routes_queryset().order_by("product__slug", "-priority", "name")
        product = self.request.query_params.get("product")
        return routes.filter(product__slug=product) if product else routes

    @extend_schema(parameters=[OpenApiParameter("product", str, description="Only this product's routes (its slug).")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.RouteCreateInput, responses={201: s.RouteOutput})
    def post(self, request: Request) -> Response:
        data = s.RouteCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        product = get_object_or_404(Product, slug=fields.pop("product"))
        route = services.route_create(actor=request_user(request), product=product, **fields)
        return Response(s.RouteOutput(routes_queryset().get(pk=route.pk)).data, status=status.HTTP_201_CREATED)


class RouteDetailView(RouteScopedView):
    @extend_schema(responses=s.RouteOutput)
    def get(self, request: Request, route_id: int) -> Response:
        return self.route_response(self.get_route())

    @extend_schema(request=s.RouteFieldsInput, responses=s.RouteOutput)
    def patch(self, request: Request, route_id: int) -> Response:
        route = self.get_route()
        data = s.RouteFieldsInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.route_update(actor=request_user(request), route=route, **data.validated_data)
        return self.route_response(route)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, route_id: int) -> Response:
        services.route_delete(actor=request_user(request), route=self.get_route())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Targets ---------------------------------------------------------------------------


class TargetListView(generics.ListAPIView[RouteTarget], RouteScopedView):
    serializer_class = s.TargetOutput

    def get_queryset(self) -> QuerySet[RouteTarget]:
        return self.get_route().targets.order_by("pk")

    @extend_schema(request=s.TargetInput, responses={201: s.TargetOutput})
    def post(self, request: Request, route_id: int) -> Response:
        route = self.get_route()
        data = s.TargetInput(data=request.data)
        data.is_valid(raise_exception=True)
        target = services.target_add(actor=request_user(request), route=route, **data.validated_data)
        return Response(s.TargetOutput(target).data, status=status.HTTP_201_CREATED)


class TargetDetailView(RouteScopedView):
    def get_target(self) -> RouteTarget:
        return get_object_or_404(
            RouteTarget.objects.select_related("route__product"), pk=self.kwargs["target_id"], route=self.get_route()
        )

    @extend_schema(responses=s.TargetOutput)
    def get(self, request: Request, route_id: int, target_id: int) -> Response:
        return Response(s.TargetOutput(self.get_target()).data)

    @extend_schema(request=s.TargetInput, responses=s.TargetOutput)
    def patch(self, request: Request, route_id: int, target_id: int) -> Response:
        target = self.get_target()
        data = s.TargetInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        target = services.target_update(actor=request_user(request), target=target, **data.validated_data)
        return Response(s.TargetOutput(target).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, route_id: int, target_id: int) -> Response:
        services.target_remove(actor=request_user(request), target=self.get_target())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Canary ----------------------------------------------------------------------------


class CanaryStartView(RouteScopedView):
    """Send part of the route's traffic to one of its targets (which has weight 0)."""

    @extend_schema(request=s.CanaryStartInput, responses={201: s.RouteOutput})
    def post(self, request: Request, route_id: int) -> Response:
        route = self.get_route()
        data = s.CanaryStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        target = route.targets.filter(pk=fields.pop("target")).first()
        if target is None:
            raise ValidationError({"target": "Not a target of this route."})
        services.canary_start(actor=request_user(request), route=route, target=target, **fields)
        return self.route_response(route, status.HTTP_201_CREATED)


class CanaryWeightView(RouteScopedView):
    """Change the percentage of requests a weight-mode canary takes."""

    @extend_schema(request=s.CanaryWeightInput, responses=s.RouteOutput)
    def post(self, request: Request, route_id: int) -> Response:
        route = self.get_route()
        data = s.CanaryWeightInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.canary_set_weight(actor=request_user(request), route=route, weight=data.validated_data["weight"])
        return self.route_response(route)


class CanaryPromoteView(RouteScopedView):
    """The canary target takes all the route's traffic (weight 100, the others 0)."""

    @extend_schema(request=None, responses=s.RouteOutput)
    def post(self, request: Request, route_id: int) -> Response:
        route = self.get_route()
        services.canary_promote(actor=request_user(request), route=route)
        return self.route_response(route)


class CanaryRollbackView(RouteScopedView):
    """End the canary; its target takes no more traffic."""

    @extend_schema(request=None, responses=s.RouteOutput)
    def post(self, request: Request, route_id: int) -> Response:
        route = self.get_route()
        services.canary_rollback(actor=request_user(request), route=route)
        return self.route_response(route)


class CanaryEventListView(generics.ListAPIView[CanaryEvent], RouteScopedView):
    """The route's canary history, the newest first."""

    serializer_class = s.CanaryEventOutput

    def get_queryset(self) -> QuerySet[CanaryEvent]:
        return CanaryEvent.objects.filter(route=self.get_route()).order_by("-created_at", "-pk")
