"""Serializers of the console API. Inputs only parse types; the services and models judge
the values (their errors come back keyed by these field names, which are the models').
No Output carries a target's secret: only whether one is stored."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from consumers.models import Plan
from gateway_sync.api.base import NamedChoiceField
from gateway_sync.models_guardrails import GuardrailPolicy, GuardrailRule
from gateway_sync.models_routes import Canary, CanaryEvent, Route, RouteTarget
from marketplace.models import Product


def _kind() -> NamedChoiceField:
    return NamedChoiceField(GuardrailRule.Kind.choices, component_name="GuardrailKindEnum")


def _action(**kwargs: Any) -> NamedChoiceField:
    return NamedChoiceField(GuardrailRule.Action.choices, component_name="GuardrailActionEnum", **kwargs)


def _mode(**kwargs: Any) -> NamedChoiceField:
    return NamedChoiceField(Canary.Mode.choices, component_name="CanaryModeEnum", **kwargs)


# --- Routes ----------------------------------------------------------------------------


class TargetOutput(serializers.ModelSerializer[RouteTarget]):
    has_secret = serializers.BooleanField(read_only=True)

    class Meta:
        model = RouteTarget
        fields = [
            "id",
            "name",
            "upstream_url",
            "auth_header",
            "has_secret",
            "tls_verify",
            "weight",
            "model",
            "created_at",
            "updated_at",
        ]


class TargetInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    upstream_url = serializers.CharField(max_length=500)
    auth_header = serializers.CharField(max_length=100, required=False, allow_blank=True)
    secret = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="Encrypted and never returned. On update: absent keeps the stored secret, empty clears it.",
    )
    tls_verify = serializers.BooleanField(required=False)
    weight = serializers.IntegerField(required=False, help_text="0 to 1000.")
    model = serializers.CharField(max_length=200, required=False, allow_blank=True)


class CanaryOutput(serializers.ModelSerializer[Canary]):
    target_name = serializers.CharField(source="target.name", read_only=True)
    mode = _mode(read_only=True)
    started_by = serializers.EmailField(source="started_by.email", read_only=True, allow_null=True)

    class Meta:
        model = Canary
        fields = [
            "target",
            "target_name",
            "mode",
            "weight",
            "header_name",
            "header_value",
            "app_ids",
            "started_at",
            "started_by",
        ]


class RouteFieldsInput(serializers.Serializer[Any]):
    """Every route setting, each optional."""

    name = serializers.CharField(max_length=100, required=False)
    priority = serializers.IntegerField(required=False, help_text="Higher wins among matching routes.")
    enabled = serializers.BooleanField(required=False)
    path_prefix = serializers.CharField(max_length=500, required=False, allow_blank=True)
    model = serializers.CharField(max_length=100, required=False, allow_blank=True)
    host = serializers.CharField(max_length=253, required=False, allow_blank=True)
    headers = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    connect_timeout_ms = serializers.IntegerField(required=False)
    first_byte_timeout_ms = serializers.IntegerField(required=False)
    total_timeout_ms = serializers.IntegerField(required=False)
    idle_timeout_ms = serializers.IntegerField(required=False)
    retry_count = serializers.IntegerField(required=False, help_text="0 to 5.")
    retry_on_statuses = serializers.ListField(child=serializers.IntegerField(), required=False)
    retry_on_timeout = serializers.BooleanField(required=False)
    retry_backoff_ms = serializers.IntegerField(required=False)
    fallback_target_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Targets of this route, in the order to try."
    )
    fallback_models = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, help_text="Model APIs: models, in order."
    )
    cooldown_failures = serializers.IntegerField(required=False)
    cooldown_window_s = serializers.IntegerField(required=False)
    cooldown_s = serializers.IntegerField(required=False)
    limit_rps = serializers.IntegerField(required=False, allow_null=True)
    limit_rpm = serializers.IntegerField(required=False, allow_null=True)
    cut_stream_on_budget = serializers.BooleanField(
        required=False, help_text="Model APIs: end a stream when the caller's token budget runs out mid-way."
    )


class RouteCreateInput(RouteFieldsInput):
    product = serializers.SlugField(help_text="The product's slug.")
    name = serializers.CharField(max_length=100)


class RouteOutput(serializers.ModelSerializer[Route]):
    product: serializers.SlugRelatedField[Product] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    targets = TargetOutput(many=True, read_only=True)
    canary = CanaryOutput(read_only=True, allow_null=True)
    guardrail_ids: serializers.PrimaryKeyRelatedField[GuardrailPolicy] = serializers.PrimaryKeyRelatedField(
        source="guardrail_policies", many=True, read_only=True
    )

    class Meta:
        model = Route
        fields = [
            "id",
            "product",
            "name",
            "priority",
            "enabled",
            "path_prefix",
            "model",
            "host",
            "headers",
            "connect_timeout_ms",
            "first_byte_timeout_ms",
            "total_timeout_ms",
            "idle_timeout_ms",
            "retry_count",
            "retry_on_statuses",
            "retry_on_timeout",
            "retry_backoff_ms",
            "fallback_target_ids",
            "fallback_models",
            "cooldown_failures",
            "cooldown_window_s",
            "cooldown_s",
            "limit_rps",
            "limit_rpm",
            "cut_stream_on_budget",
            "targets",
            "canary",
            "guardrail_ids",
            "created_at",
            "updated_at",
        ]


class CanaryStartInput(serializers.Serializer[Any]):
    target = serializers.IntegerField(help_text="A target of the route, with weight 0.")
    mode = _mode()
    weight = serializers.IntegerField(required=False, default=0, help_text="Weight mode: percent of requests.")
    header_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    header_value = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    app_ids = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)


class CanaryWeightInput(serializers.Serializer[Any]):
    weight = serializers.IntegerField(help_text="Percent of requests, 0 to 100.")


class CanaryEventOutput(serializers.ModelSerializer[CanaryEvent]):
    kind = NamedChoiceField(CanaryEvent.Kind.choices, component_name="CanaryEventKindEnum", read_only=True)

    class Meta:
        model = CanaryEvent
        fields = ["id", "kind", "target", "target_name", "actor_email", "from_state", "to_state", "created_at"]


# --- Guardrails ------------------------------------------------------------------------


class RuleOutput(serializers.ModelSerializer[GuardrailRule]):
    kind = _kind()
    action = _action()
    words = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = GuardrailRule
        fields = ["id", "kind", "action", "on_request", "on_response", "words", "pattern", "max_chars", "created_at"]


class RuleInput(serializers.Serializer[Any]):
    kind = _kind()
    action = _action(required=False)
    on_request = serializers.BooleanField(required=False)
    on_response = serializers.BooleanField(required=False)
    words = serializers.ListField(child=serializers.CharField(), required=False)
    pattern = serializers.CharField(max_length=600, required=False, allow_blank=True, trim_whitespace=False)
    max_chars = serializers.IntegerField(required=False, allow_null=True)


class PolicyOutput(serializers.ModelSerializer[GuardrailPolicy]):
    rules = RuleOutput(many=True, read_only=True)
    products: serializers.SlugRelatedField[Product] = serializers.SlugRelatedField(
        slug_field="slug", many=True, read_only=True
    )
    plans: serializers.PrimaryKeyRelatedField[Plan] = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    routes: serializers.PrimaryKeyRelatedField[Route] = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = GuardrailPolicy
        fields = [
            "id",
            "name",
            "description",
            "enabled",
            "rules",
            "products",
            "plans",
            "routes",
            "created_at",
            "updated_at",
        ]


class PolicyInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2_000, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class AttachmentInput(serializers.Serializer[Any]):
    """Exactly one of product (slug), plan (id) and route (id)."""

    product = serializers.SlugField(required=False)
    plan = serializers.IntegerField(required=False)
    route = serializers.IntegerField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if len(attrs) != 1:
            raise serializers.ValidationError("Give exactly one of product, plan and route.")
        return attrs


class AttachedProductOutput(serializers.ModelSerializer[Product]):
    class Meta:
        model = Product
        fields = ["id", "slug", "name"]


class AttachedPlanOutput(serializers.ModelSerializer[Plan]):
    product: serializers.SlugRelatedField[Product] = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Plan
        fields = ["id", "product", "name"]


class AttachedRouteOutput(serializers.ModelSerializer[Route]):
    product: serializers.SlugRelatedField[Product] = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Route
        fields = ["id", "product", "name"]


class AttachmentsOutput(serializers.Serializer[Any]):
    products = AttachedProductOutput(many=True)
    plans = AttachedPlanOutput(many=True)
    routes = AttachedRouteOutput(many=True)


class PolicyTestInput(serializers.Serializer[Any]):
    text = serializers.CharField(max_length=100_000, trim_whitespace=False)
    direction = NamedChoiceField(
        [("request", "Request"), ("response", "Response")],
        component_name="GuardrailDirectionEnum",
        required=False,
        default="request",
    )


class FindingOutput(serializers.Serializer[Any]):
    kind = _kind()
    action = _action()
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    text = serializers.CharField()


class PolicyTestOutput(serializers.Serializer[Any]):
    blocked = serializers.BooleanField()
    redacted = serializers.BooleanField()
    text = serializers.CharField(help_text="The text the gateway would pass on (redacted where rules redact).")
    findings = FindingOutput(many=True)
