"""Serializers of the consumers API: Inputs parse requests for the services, Outputs
describe answers. No Output carries an API key: only the responses that create one add
the plaintext, once (see KeyCreatedOutput)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers

from consumers.models import ApiKey, ConsumerApp, Plan, Subscription
from consumers.services.keys import MAX_OVERLAP
from marketplace.api.serializers import ProductRefOutput
from marketplace.models import Product

MAX_OVERLAP_SECONDS = int(MAX_OVERLAP.total_seconds())
# The ranges of the database columns, so an oversized limit is a 400 and not a 500.
MAX_INT = 2**31 - 1
MAX_BIGINT = 2**63 - 1


def _limit(big: bool = False) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1, max_value=MAX_BIGINT if big else MAX_INT, required=False, allow_null=True
    )


class StrictInput(serializers.Serializer[None]):
    """An Input that refuses fields it does not know, instead of silently ignoring them:
    a misspelt ``overlap`` or ``tokens_per_mintue`` must not pass for the default."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


# --- Enums -----------------------------------------------------------------------------


class NamedChoiceField(serializers.ChoiceField):
    """A choice field whose schema is one named enum component. Left to drf-spectacular,
    every ``status`` enum would collide with the invitation and version statuses and be
    given a hashed name with a warning."""

    enum_name = ""
    enum_choices: list[tuple[str, str]] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=self.enum_choices, **kwargs)


class NamedChoiceFieldExtension(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    target_class = "consumers.api.serializers.NamedChoiceField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field = self.target
        component = ResolvedComponent(  # type: ignore[no-untyped-call]
            name=field.enum_name,
            type=ResolvedComponent.SCHEMA,
            object=field.enum_name,
            schema={
                "type": "string",
                "enum": [value for value, _label in field.enum_choices],
                "description": "\n".join(f"* `{value}` - {label}" for value, label in field.enum_choices),
            },
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


class SubscriptionStatusField(NamedChoiceField):
    enum_name = "SubscriptionStatusEnum"
    enum_choices = Subscription.Status.choices


class ApiKeyStatusField(NamedChoiceField):
    enum_name = "ApiKeyStatusEnum"
    enum_choices = [
        ("active", "Active"),
        ("rotating", "Rotated: works until its expiry, the end of the overlap"),
        ("expired", "Expired"),
        ("revoked", "Revoked"),
    ]


class EnvironmentField(NamedChoiceField):
    enum_name = "AppEnvironmentEnum"
    enum_choices = ConsumerApp.Environment.choices


# --- Apps ------------------------------------------------------------------------------


class AppOutput(serializers.ModelSerializer[ConsumerApp]):
    organization = serializers.CharField(source="organization.slug")
    environment = EnvironmentField()

    class Meta:
        model = ConsumerApp
        fields = ["id", "organization", "name", "description", "environment", "created_at"]


class AppInput(StrictInput):
    organization = serializers.CharField(max_length=50, help_text="The slug of an organization you belong to.")
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2_000, required=False, allow_blank=True, default="")
    environment = EnvironmentField(default=ConsumerApp.Environment.DEVELOPMENT)


class AppUpdateInput(StrictInput):
    """Every field is optional: what is absent stays. The organization never changes."""

    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=2_000, required=False, allow_blank=True)
    environment = EnvironmentField(required=False)


# --- Keys ------------------------------------------------------------------------------


class KeyOutput(serializers.ModelSerializer[ApiKey]):
    status = ApiKeyStatusField(read_only=True)
    products: serializers.SlugRelatedField[Product] = serializers.SlugRelatedField(
        many=True,
        read_only=True,
        slug_field="slug",
        help_text="The products the key is limited to; empty: every product the app subscribes to.",
    )
    replaced_by = serializers.IntegerField(
        source="replaced_by_id", read_only=True, allow_null=True, help_text="The key that replaced this one."
    )

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "status",
            "products",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "replaced_by",
            *ApiKey.REQUEST_WINDOWS,
        ]
        extra_kwargs = {
            field: {"help_text": "The key's own quota, across every product it calls; null: none."}
            for field in ApiKey.REQUEST_WINDOWS
        }


class KeyCreatedOutput(KeyOutput):
    key = serializers.CharField(help_text="The key itself. Shown only in this response: store it now.")

    class Meta(KeyOutput.Meta):
        fields = [*KeyOutput.Meta.fields, "key"]


class KeyRotatedOutput(KeyCreatedOutput):
    replaces = KeyOutput(help_text="The rotated key, which keeps working until its expires_at.")

    class Meta(KeyCreatedOutput.Meta):
        fields = [*KeyCreatedOutput.Meta.fields, "replaces"]


class KeyInput(StrictInput):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    products = serializers.ListField(
        child=serializers.SlugField(),
        required=False,
        default=list,
        max_length=100,
        help_text="Limit the key to these of the app's products (their slugs); empty: all of them.",
    )
    requests_per_second = _limit()
    requests_per_minute = _limit()
    requests_per_day = _limit()
    requests_per_month = _limit()


class KeyLimitsInput(StrictInput):
    """The key's quotas, counted across every product it calls, on top of the plans'
    limits. Every field is optional: what is absent stays; null removes the quota."""

    requests_per_second = _limit()
    requests_per_minute = _limit()
    requests_per_day = _limit()
    requests_per_month = _limit()


class KeyRotateInput(StrictInput):
    overlap_seconds = serializers.IntegerField(
        min_value=0,
        max_value=MAX_OVERLAP_SECONDS,
        default=3600,
        help_text="How long the old key keeps working, so clients can switch without downtime.",
    )


# --- Plans -----------------------------------------------------------------------------


class PlanOutput(serializers.ModelSerializer[Plan]):
    product = serializers.CharField(source="product.slug")
    version = serializers.CharField(
        source="version.version", allow_null=True, default=None, help_text="The only version the plan applies to."
    )

    class Meta:
        model = Plan
        fields = [
            "id",
            "product",
            "version",
            "name",
            "price_label",
            "description",
            "requests_per_second",
            "requests_per_minute",
            "requests_per_day",
            "requests_per_month",
            "tokens_per_minute",
            "tokens_per_day",
            "tokens_per_month",
            "monthly_budget_usd",
            "allowed_models",
            "allowed_tools",
            "approval_required",
            "is_default",
            "is_active",
            "created_at",
            "updated_at",
        ]


class PlanUpdateInput(StrictInput):
    """Every field is optional: what is absent stays. A limit set to null is unlimited."""

    name = serializers.CharField(max_length=60, required=False)
    price_label = serializers.CharField(max_length=60, required=False)
    description = serializers.CharField(max_length=2_000, required=False, allow_blank=True)
    version = serializers.CharField(
        max_length=64,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Apply the plan to this version of the product only; null: to every version.",
    )
    requests_per_second = _limit()
    requests_per_minute = _limit()
    requests_per_day = _limit()
    requests_per_month = _limit()
    tokens_per_minute = _limit(big=True)
    tokens_per_day = _limit(big=True)
    tokens_per_month = _limit(big=True)
    monthly_budget_usd = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=500,
        help_text="Names of the product's models; empty: all of them (model APIs only).",
    )
    allowed_tools = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=500,
        help_text="Names of the product's tools; empty: all of them (MCP servers only).",
    )
    approval_required = serializers.BooleanField(required=False)


class PlanInput(PlanUpdateInput):
    """A new plan: only the name is required. Limits left out or null are unlimited."""

    name = serializers.CharField(max_length=60)


# --- Subscriptions ---------------------------------------------------------------------


class AppRefOutput(serializers.ModelSerializer[ConsumerApp]):
    organization = serializers.CharField(source="organization.slug")

    class Meta:
        model = ConsumerApp
        fields = ["id", "name", "organization"]


class PlanRefOutput(serializers.ModelSerializer[Plan]):
    class Meta:
        model = Plan
        fields = ["id", "name", "price_label"]


class SubscriptionOutput(serializers.ModelSerializer[Subscription]):
    app = AppRefOutput()
    product = ProductRefOutput()
    plan = PlanRefOutput()
    status = SubscriptionStatusField(read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "app",
            "product",
            "plan",
            "status",
            "requested_at",
            "decided_at",
            "decision_note",
            "expires_at",
            "updated_at",
        ]


class SubscriptionInput(StrictInput):
    product = serializers.SlugField(help_text="The slug of a product in the catalog.")
    plan = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The id of one of the product's plans; default: its default plan.",
    )


class ProviderSubscriptionQuery(serializers.Serializer[None]):
    status = SubscriptionStatusField(required=False, help_text="Only subscriptions in this state.")


class DecisionInput(StrictInput):
    note = serializers.CharField(
        max_length=2_000, required=False, allow_blank=True, default="", help_text="Emailed to the consumer."
    )


class ReasonInput(StrictInput):
    note = serializers.CharField(
        max_length=2_000, allow_blank=True, help_text="Why: emailed to the consumer. Required."
    )
