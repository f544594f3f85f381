"""Console API: guardrail policies, their rules and attachments, and trying a policy on a
text (platform staff)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.auth import request_user
from consumers.models import Plan
from gateway_sync import services_guardrails as services
from gateway_sync.api import serializers as s
from gateway_sync.api.base import IsStaff, StaffView
from gateway_sync.models_guardrails import GuardrailPolicy, GuardrailRule
from gateway_sync.models_routes import Route
from marketplace.models import Product


def policies_queryset() -> QuerySet[GuardrailPolicy]:
    return GuardrailPolicy.objects.prefetch_related("rules", "products", "plans", "routes")


class PolicyScopedView(StaffView):
    def get_policy(self) -> GuardrailPolicy:
        return get_object_or_404(GuardrailPolicy, pk=self.kwargs["policy_id"])

    def policy_response(self, policy: GuardrailPolicy, status_code: int = status.HTTP_200_OK) -> Response:
        return Response(s.PolicyOutput(policies_queryset().get(pk=policy.pk)).data, status=status_code)


class PolicyListView(generics.ListAPIView[GuardrailPolicy]):
    permission_classes = [IsStaff]
    serializer_class = s.PolicyOutput

    def get_queryset(self) -> QuerySet[GuardrailPolicy]:
        return policies_queryset().order_by("name")

    @extend_schema(request=s.PolicyInput, responses={201: s.PolicyOutput})
    def post(self, request: Request) -> Response:
        data = s.PolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        policy = services.guardrail_policy_create(actor=request_user(request), **data.validated_data)
        return Response(s.PolicyOutput(policies_queryset().get(pk=policy.pk)).data, status=status.HTTP_201_CREATED)


class PolicyDetailView(PolicyScopedView):
    @extend_schema(responses=s.PolicyOutput)
    def get(self, request: Request, policy_id: int) -> Response:
        return self.policy_response(self.get_policy())

    @extend_schema(request=s.PolicyInput, responses=s.PolicyOutput)
    def patch(self, request: Request, policy_id: int) -> Response:
        policy = self.get_policy()
        data = s.PolicyInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.guardrail_policy_update(actor=request_user(request), policy=policy, **data.validated_data)
        return self.policy_response(policy)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, policy_id: int) -> Response:
        services.guardrail_policy_delete(actor=request_user(request), policy=self.get_policy())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Rules -----------------------------------------------------------------------------


class RuleListView(generics.ListAPIView[GuardrailRule], PolicyScopedView):
    serializer_class = s.RuleOutput

    def get_queryset(self) -> QuerySet[GuardrailRule]:
        return self.get_policy().rules.order_by("pk")

    @extend_schema(request=s.RuleInput, responses={201: s.RuleOutput})
    def post(self, request: Request, policy_id: int) -> Response:
        policy = self.get_policy()
        data = s.RuleInput(data=request.data)
        data.is_valid(raise_exception=True)
        rule = services.guardrail_rule_add(actor=request_user(request), policy=policy, **data.validated_data)
        return Response(s.RuleOutput(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailView(PolicyScopedView):
    def get_rule(self) -> GuardrailRule:
        return get_object_or_404(
            GuardrailRule.objects.select_related("policy"), pk=self.kwargs["rule_id"], policy=self.get_policy()
        )

    @extend_schema(responses=s.RuleOutput)
    def get(self, request: Request, policy_id: int, rule_id: int) -> Response:
        return Response(s.RuleOutput(self.get_rule()).data)

    @extend_schema(request=s.RuleInput, responses=s.RuleOutput)
    def patch(self, request: Request, policy_id: int, rule_id: int) -> Response:
        rule = self.get_rule()
        data = s.RuleInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        rule = services.guardrail_rule_update(actor=request_user(request), rule=rule, **data.validated_data)
        return Response(s.RuleOutput(rule).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, policy_id: int, rule_id: int) -> Response:
        services.guardrail_rule_remove(actor=request_user(request), rule=self.get_rule())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Attachments -----------------------------------------------------------------------


def _attachments(policy: GuardrailPolicy) -> dict[str, Any]:
    return {
        "products": policy.products.order_by("name"),
        "plans": policy.plans.select_related("product").order_by("product__slug", "name"),
        "routes": policy.routes.select_related("product").order_by("product__slug", "name"),
    }


class AttachmentListView(PolicyScopedView):
    """What the policy applies to; POST attaches it to one more product, plan or route
    (attaching twice changes nothing)."""

    @extend_schema(responses=s.AttachmentsOutput)
    def get(self, request: Request, policy_id: int) -> Response:
        return Response(s.AttachmentsOutput(_attachments(self.get_policy())).data)

    @extend_schema(request=s.AttachmentInput, responses=s.AttachmentsOutput)
    def post(self, request: Request, policy_id: int) -> Response:
        policy = self.get_policy()
        data = s.AttachmentInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if "product" in fields:
            target: dict[str, Any] = {"product": get_object_or_404(Product, slug=fields["product"])}
        elif "plan" in fields:
            target = {"plan": get_object_or_404(Plan, pk=fields["plan"])}
        else:
            target = {"route": get_object_or_404(Route, pk=fields["route"])}
        services.guardrail_policy_attach(actor=request_user(request), policy=policy, **target)
        return Response(s.AttachmentsOutput(_attachments(policy)).data)


class _DetachView(PolicyScopedView):
    def detach(self, request: Request, **target: Any) -> Response:
        """Detaching what is not attached changes nothing; either way, the attachments."""
        policy = self.get_policy()
        services.guardrail_policy_detach(actor=request_user(request), policy=policy, **target)
        return Response(s.AttachmentsOutput(_attachments(policy)).data)


class ProductDetachView(_DetachView):
    @extend_schema(responses=s.AttachmentsOutput)
    def delete(self, request: Request, policy_id: int, slug: str) -> Response:
        return self.detach(request, product=get_object_or_404(Product, slug=slug))


class PlanDetachView(_DetachView):
    @extend_schema(responses=s.AttachmentsOutput)
    def delete(self, request: Request, policy_id: int, plan_id: int) -> Response:
        return self.detach(request, plan=get_object_or_404(Plan, pk=plan_id))


class RouteDetachView(_DetachView):
    @extend_schema(responses=s.AttachmentsOutput)
    def delete(self, request: Request, policy_id: int, route_id: int) -> Response:
        return self.detach(request, route=get_object_or_404(Route, pk=route_id))


# --- Trying the policy -----------------------------------------------------------------


class PolicyTestView(PolicyScopedView):
    """What the gateway would do with a text under the policy's rules. Stores nothing."""

    @extend_schema(request=s.PolicyTestInput, responses=s.PolicyTestOutput)
    def post(self, request: Request, policy_id: int) -> Response:
        policy = self.get_policy()
        data = s.PolicyTestInput(data=request.data)
        data.is_valid(raise_exception=True)
        verdict = services.guardrail_policy_test(actor=request_user(request), policy=policy, **data.validated_data)
        return Response(
            s.PolicyTestOutput(
                {
                    "blocked": verdict.blocked,
                    "redacted": verdict.redacted,
                    "text": verdict.text,
                    "findings": [vars(f) for f in verdict.findings],
                }
            ).data
        )
