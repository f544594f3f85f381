"""Subscriptions, from both sides: consumers request and cancel them for their apps;
providers (the product organization's admins and owners) and staff approve, reject,
suspend and resume them. Either side may read one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import request_user
from consumers import selectors, services
from consumers.api import serializers as s
from consumers.api.base import AppScopedView
from consumers.models import Plan, Subscription
from marketplace.models import Product


class AppSubscriptionListView(AppScopedView, generics.ListAPIView[Subscription]):
    """The app's subscriptions, newest first."""

    serializer_class = s.SubscriptionOutput

    def get_queryset(self) -> QuerySet[Subscription]:
        return selectors.subscriptions_of(self.get_app())

    @extend_schema(
        request=s.SubscriptionInput,
        responses={201: s.SubscriptionOutput},
        description="Subscribe the app to a product, under one of its plans (default: the default plan). "
        "Approved at once unless the plan requires the provider's approval (status `pending`).",
    )
    def post(self, request: Request, app_id: int) -> Response:
        app = self.get_app()
        data = s.SubscriptionInput(data=request.data)
        data.is_valid(raise_exception=True)
        # Any slug the catalog does not show the user gets the service's one answer, so
        # that private and unpublished products cannot be told from missing ones.
        product = Product.objects.select_related("organization").filter(slug=data.validated_data["product"]).first()
        if product is None:
            raise ValidationError({"product": "This product is not available for subscription."})
        plan: Plan | None = None
        if data.validated_data["plan"] is not None:
            plan = Plan.objects.filter(pk=data.validated_data["plan"]).first()
            if plan is None:
                raise ValidationError({"plan": "No such plan."})
        subscription = services.subscription_request(actor=request_user(request), app=app, product=product, plan=plan)
        return Response(s.SubscriptionOutput(subscription).data, status=status.HTTP_201_CREATED)


class ProviderSubscriptionListView(generics.ListAPIView[Subscription]):
    """Subscriptions to the products of the organizations where the user is an admin or
    owner (to every product, for staff): what they may approve, suspend and resume."""

    serializer_class = s.SubscriptionOutput

    def get_queryset(self) -> QuerySet[Subscription]:
        query = s.ProviderSubscriptionQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        status_filter = query.validated_data.get("status", "")
        return selectors.provider_subscriptions(request_user(self.request), status=status_filter)

    @extend_schema(parameters=[s.ProviderSubscriptionQuery])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class SubscriptionScopedView(APIView):
    """Resolves ``{subscription_id}`` for members of either side and staff; 404 for
    everyone else."""

    def get_subscription(self) -> Subscription:
        return selectors.subscription_get_for_user(request_user(self.request), self.kwargs["subscription_id"])


class SubscriptionDetailView(SubscriptionScopedView):
    @extend_schema(responses=s.SubscriptionOutput)
    def get(self, request: Request, subscription_id: int) -> Response:
        return Response(s.SubscriptionOutput(self.get_subscription()).data)


class SubscriptionCancelView(SubscriptionScopedView):
    @extend_schema(
        request=None,
        responses=s.SubscriptionOutput,
        description="The consumer ends the subscription (or withdraws a pending request).",
    )
    def post(self, request: Request, subscription_id: int) -> Response:
        subscription = services.subscription_cancel(actor=request_user(request), subscription=self.get_subscription())
        return Response(s.SubscriptionOutput(subscription).data)


class _ProviderDecisionView(SubscriptionScopedView):
    """The provider moves the subscription on, with a note for the consumer."""

    def decide(
        self, service: Callable[..., Subscription], input_class: type[s.DecisionInput | s.ReasonInput]
    ) -> Response:
        subscription = self.get_subscription()
        data = input_class(data=self.request.data)
        data.is_valid(raise_exception=True)
        note = data.validated_data["note"]
        subscription = service(actor=request_user(self.request), subscription=subscription, note=note)
        return Response(s.SubscriptionOutput(subscription).data)


class SubscriptionApproveView(_ProviderDecisionView):
    @extend_schema(
        request=s.DecisionInput,
        responses=s.SubscriptionOutput,
        description="Approve a pending request: the app may call the product.",
    )
    def post(self, request: Request, subscription_id: int) -> Response:
        return self.decide(services.subscription_approve, s.DecisionInput)


class SubscriptionRejectView(_ProviderDecisionView):
    @extend_schema(
        request=s.ReasonInput,
        responses=s.SubscriptionOutput,
        description="Refuse a pending request; the note (why) is emailed to the consumer.",
    )
    def post(self, request: Request, subscription_id: int) -> Response:
        return self.decide(services.subscription_reject, s.ReasonInput)


class SubscriptionSuspendView(_ProviderDecisionView):
    @extend_schema(
        request=s.ReasonInput,
        responses=s.SubscriptionOutput,
        description="Cut an approved subscription off until it is resumed; the note (why) is emailed to the consumer.",
    )
    def post(self, request: Request, subscription_id: int) -> Response:
        return self.decide(services.subscription_suspend, s.ReasonInput)


class SubscriptionResumeView(_ProviderDecisionView):
    @extend_schema(
        request=s.DecisionInput,
        responses=s.SubscriptionOutput,
        description="Restore a suspended subscription.",
    )
    def post(self, request: Request, subscription_id: int) -> Response:
        return self.decide(services.subscription_resume, s.DecisionInput)
